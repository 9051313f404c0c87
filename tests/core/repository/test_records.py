"""Bulk reads (core.repository.records) print ids, dates and times as `plain_value`
prints the row's values, on either engine (PostgreSQL sends some as text or naive UTC
for speed), so an export does not depend on the engine or the session's time zone; and
they open PHI in C where it was built (core.crypto.bulk) and through `cryptography`
where not, with the same values and the same refusals, naming the row at fault."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from strongroom.core.db.engine import transaction
from strongroom.core.crypto import bulk
from strongroom.core.db.models import Client, DataKey
from strongroom.core.demo import client_records
from strongroom.core.export import spec
from strongroom.core.errors import CryptoError
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.records import plain_value, stream_records

MOMENTS = [datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc),                     # no microseconds
           datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone.utc),
           datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc),
           datetime(987, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc),               # year under 1000
           datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=45)))]


def test_bulk_records_print_values_as_the_row_holds_them(ctx):
    """On each engine (PostgreSQL in a session time zone neither UTC nor a whole hour
    off it): times with and without microseconds, an early year, missing dates."""
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Records Practice")
        created: list = []
        repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(len(MOMENTS), seed=9), created=created)
        ids = sorted(c if isinstance(c, uuid.UUID) else c["id"] for c in created)
        for n, (client, moment) in enumerate(zip(ids, MOMENTS)):
            conn.execute(update(Client).where(Client.id == client).values(
                created_at=moment, intake_date=None if n % 2 else date(987 + n, 1, 31)))
    fields = spec.EXPORTABLE["clients"]
    plain = [c for c in fields if c not in spec.phi_fields("clients")]
    with transaction(ctx.engine, read_only=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Kathmandu'")
        records = [r for batch in stream_records(conn, ctx.keyring, SYSTEM, "clients", fields, reveal=True,
                                                 batch_size=2) for r in batch]
        table = Client.__table__
        rows = conn.execute(select(table).where(table.c.deleted_at.is_(None)).order_by(table.c.id)).mappings().all()
    assert len(records) == len(MOMENTS)
    assert [{f: r[f] for f in plain} for r in records] == [{f: plain_value(row[f]) for f in plain} for row in rows]


@pytest.fixture(params=["native", "cryptography"])
def way(request, monkeypatch):
    """A bulk read once through the C loop (when built) and once through `cryptography`."""
    if request.param == "native" and not bulk.NATIVE:
        pytest.skip("core/crypto/_gcm.c was not built here")
    if request.param == "cryptography":
        monkeypatch.setattr(bulk, "NATIVE", False)
    return request.param


def _clients_of(ctx, n: int, seed: int) -> list[uuid.UUID]:
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, f"Bulk Practice {seed}")
        created: list = []
        repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(n, seed=seed), created=created)
    ctx.keyring._ciphers.clear()            # as a fresh daemon: every key unwrapped from its record
    return sorted(c if isinstance(c, uuid.UUID) else c["id"] for c in created)


def _read_all(ctx, fields=("id", "first_name", "ssn", "notes")) -> list[dict]:
    with transaction(ctx.engine, read_only=True) as conn:
        return [r for batch in stream_records(conn, ctx.keyring, SYSTEM, "clients", fields, reveal=True,
                                              batch_size=7) for r in batch]


def test_both_ways_read_what_one_record_at_a_time_reads(ctx, way):
    ids = _clients_of(ctx, 20, seed=11)
    with transaction(ctx.engine, read_only=True) as conn:
        one_by_one = [repo.get_client(conn, ctx.keyring, SYSTEM, i) for i in ids]
    records = _read_all(ctx)
    assert [(r["first_name"], r["ssn"], r["notes"]) for r in records] == \
        [(c["first_name"], c["ssn"], c["notes"]) for c in one_by_one]


def _flip_a_bit(ctx, client_id: uuid.UUID, column: str) -> None:
    """One bit of a client's stored ciphertext flipped (in the tag), as tampering would."""
    table = Client.__table__
    with transaction(ctx.engine) as conn:
        blob = bytearray(conn.execute(select(table.c[column]).where(table.c.id == client_id)).scalar_one())
        blob[-3] ^= 0x01
        conn.execute(update(table).where(table.c.id == client_id).values({column: bytes(blob)}))


def test_a_tampered_field_in_a_bulk_read_is_refused_naming_its_row_and_field(ctx, way):
    ids = _clients_of(ctx, 20, seed=12)
    victim = ids[9]
    _flip_a_bit(ctx, victim, "ssn_enc")
    with pytest.raises(CryptoError, match=f"clients.ssn of row {victim}: ciphertext failed authentication"):
        _read_all(ctx)


def test_a_tampered_key_record_in_a_bulk_read_is_refused_naming_the_key(ctx, way):
    """One wrapped key of the batch does not unwrap: its client's fields are refused with
    the key named; the other keys of the same batch unwrapped are not the error."""
    ids = _clients_of(ctx, 20, seed=13)
    table, keys = Client.__table__, DataKey.__table__
    with transaction(ctx.engine) as conn:
        key_id = conn.execute(select(table.c.key_id).where(table.c.id == ids[4])).scalar_one()
        wrapped = bytearray(conn.execute(select(keys.c.wrapped_key).where(keys.c.id == key_id)).scalar_one())
        wrapped[20] ^= 0x01
        conn.execute(update(keys).where(keys.c.id == key_id).values(wrapped_key=bytes(wrapped)))
    with pytest.raises(CryptoError, match=f"data key {key_id} failed to unwrap"):
        _read_all(ctx)
    with transaction(ctx.engine, read_only=True) as conn:
        assert repo.get_client(conn, ctx.keyring, SYSTEM, ids[5])["ssn"]     # a neighbour reads


def test_a_field_moved_to_another_row_is_refused_in_bulk(ctx, way):
    ids = _clients_of(ctx, 10, seed=14)
    table = Client.__table__
    with transaction(ctx.engine) as conn:
        source = conn.execute(select(table.c.first_name_enc, table.c.key_id).where(table.c.id == ids[2])).one()
        conn.execute(update(table).where(table.c.id == ids[3]).values(first_name_enc=source[0], key_id=source[1]))
    with pytest.raises(CryptoError, match=f"clients.first_name of row {ids[3]}: ciphertext failed authentication"):
        _read_all(ctx)


# --- masked bulk reads --------------------------------------------------------------------

def _read_masked(ctx, fields=("id", "first_name", "ssn", "notes", "medical_history")) -> list[dict]:
    with transaction(ctx.engine, read_only=True) as conn:
        return [r for batch in stream_records(conn, ctx.keyring, SYSTEM, "clients", fields, batch_size=7)
                for r in batch]


def test_a_masked_bulk_read_masks_what_a_revealed_one_opens(ctx, way):
    """Partial masks of the plaintext, free text replaced whole, None kept None, and the
    fields of a client whose keys were destroyed read erased, row by row."""
    from strongroom.core.masking import mask_record
    from strongroom.core.repository.records import ERASED

    ids = _clients_of(ctx, 20, seed=15)
    fields = ("id", "first_name", "ssn", "notes", "medical_history")
    table = Client.__table__
    with transaction(ctx.engine) as conn:
        conn.execute(update(table).where(table.c.id == ids[1]).values(medical_history_enc=None))
        conn.execute(update(table).where(table.c.id == ids[6]).values(notes_enc=None))
        revealed = [repo.get_client(conn, ctx.keyring, SYSTEM, i) for i in ids]
        ctx.keyring.destroy_client_keys(conn, ids[6])
    masked = _read_masked(ctx, fields)
    assert masked[1]["medical_history"] is None
    assert masked[6] == {"id": str(ids[6]), "first_name": ERASED, "ssn": ERASED, "notes": None,
                         "medical_history": ERASED}
    expected = [{f: str(r["id"]) if f == "id" else r[f] for f in fields} for r in revealed]
    assert [r for n, r in enumerate(masked) if n != 6] == \
        [mask_record(e, fields[1:]) for n, e in enumerate(expected) if n != 6]
    assert "[redacted]" in {r["medical_history"] for r in masked}


def test_a_masked_bulk_read_does_not_open_a_field_it_replaces_whole(ctx, way):
    """What a masked reader sees of free text does not depend on it, so it is not
    decrypted: a tampered medical history still reads [redacted] there (the integrity
    job, which opens every envelope, is what finds it), while a revealed read refuses it."""
    fields = ("id", "ssn", "medical_history")
    ids = _clients_of(ctx, 10, seed=16)
    victim = ids[4]
    _flip_a_bit(ctx, victim, "medical_history_enc")
    assert _read_masked(ctx, fields)[4]["medical_history"] == "[redacted]"
    with pytest.raises(CryptoError, match=f"clients.medical_history of row {victim}: ciphertext failed authentication"):
        _read_all(ctx, fields)


def test_a_masked_bulk_read_refuses_a_replaced_field_moved_from_another_row(ctx, way):
    """Not opening a field is not taking it on trust: one sealed with another row's key
    is opened as before, and refused, naming its row and field."""
    ids = _clients_of(ctx, 10, seed=17)
    source, victim = ids[2], ids[3]
    table = Client.__table__
    with transaction(ctx.engine) as conn:
        moved = conn.execute(select(table.c.medical_history_enc).where(table.c.id == source)).scalar_one()
        conn.execute(update(table).where(table.c.id == victim).values(medical_history_enc=moved))
    with pytest.raises(CryptoError, match=f"clients.medical_history of row {victim}: ciphertext failed"):
        _read_masked(ctx)
