"""The consistency check: its cost beyond one read grows with the differences, not the table."""
from __future__ import annotations

from sqlalchemy import text

from strongroom.core.db.engine import transaction
from strongroom.core.sync import consistency
from tests.core.conftest import WRITER, client_ids
from strongroom.core.repository.clients import update_client


def _reread(monkeypatch) -> list[int]:
    """How many rows each descent into differing ranges read, per side."""
    sizes: list[int] = []
    real = consistency._rows_in

    def counting(*args, **kwargs):
        rows = real(*args, **kwargs)
        sizes.append(len(rows))
        return rows
    monkeypatch.setattr(consistency, "_rows_in", counting)
    return sizes


def test_one_changed_row_among_many_rereads_a_small_range_not_the_table(first_site, join_site, monkeypatch):
    # Ids are UUIDv7: time-ordered, so every id of a practice shares its leading bits.
    # Ranges cut at fixed points of the id space would hold the whole table in one.
    monkeypatch.setattr(consistency, "RANGES", 8)
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[5]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0101"})
    sizes = _reread(monkeypatch)
    report = consistency.compare(laptop.engine, first_site.engine)
    clients = next(t for t in report["tables"] if t["table"] == "clients")
    assert clients["rows_here"] == 12 and clients["ranges"] == 6          # cut at every 2nd id
    assert (clients["ranges_differing"], clients["differing"]) == (1, 1)
    assert clients["examples"] == [{"row_id": str(cid), "problem": "differing"}]
    assert sizes == [2, 2]                # one range of two rows, read on each side


def test_sites_on_different_engines_agree_on_every_range(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    for spec in ("clients", "therapy_sessions"):
        cuts = consistency.cut_points(first_site.engine, spec)
        assert consistency.digests(first_site.engine, spec, cuts) == consistency.digests(laptop.engine, spec, cuts)


def test_a_missing_or_malformed_checksum_counts_without_breaking_the_check(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    first, second = client_ids(first_site)[:2]
    with transaction(first_site.engine) as conn:
        conn.execute(text("UPDATE clients SET data_checksum = :bad WHERE id = :id"),
                      {"bad": "z" * 64, "id": first if first_site.engine.dialect.name == "postgresql" else first.hex})
        conn.execute(text("UPDATE clients SET data_checksum = NULL WHERE id = :id"),
                      {"id": second if first_site.engine.dialect.name == "postgresql" else second.hex})
    report = consistency.compare(laptop.engine, first_site.engine)
    clients = next(t for t in report["tables"] if t["table"] == "clients")
    assert clients["rows_there"] == 12 and clients["differing"] == 2
    assert {e["row_id"] for e in clients["examples"]} == {str(first), str(second)}
