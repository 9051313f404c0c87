"""A sync pass between two sites: rows travel both ways, once, readable where they land."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, DataKey, KeyState, SyncConflict, SyncQuarantine, TherapySession
from strongroom.core.errors import ConflictError
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.clients import delete_client, get_client, update_client
from strongroom.core.retention.erasure import erase_client
from strongroom.core.sync.conflicts import resolve_conflict
from strongroom.core.sync.merge import Policy
from tests.core.conftest import WRITER, client_ids, open_site


def _checksums(site, table):
    with transaction(site.engine, read_only=True) as conn:
        return dict(conn.execute(select(table.c.id, table.c.data_checksum)).all())


def test_a_joined_site_receives_every_client_and_session_readable(first_site, join_site):
    laptop = join_site("laptop")
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["applied"] == 12
    assert client_ids(laptop) == client_ids(first_site)
    for table in (Client.__table__, TherapySession.__table__):
        assert _checksums(laptop, table) == _checksums(first_site, table)
    with transaction(laptop.engine) as conn:
        cid = client_ids(laptop)[0]
        assert get_client(conn, laptop.keyring, WRITER, cid)["first_name"]


def test_a_second_pass_moves_nothing_and_nothing_echoes(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    again = laptop.sync(first_site)
    for direction in ("push", "pull"):
        for table in ("practices", "clients", "therapy_sessions"):
            assert again[direction][table]["applied"] == 0, (direction, table)


def test_edits_on_different_fields_merge_on_both_sites(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"email": "new@example.org"})
    laptop.sync(first_site)
    laptop.sync(first_site)
    for site in (first_site, laptop):
        with transaction(site.engine) as conn:
            row = get_client(conn, site.keyring, WRITER, cid)
            assert (row["phone"], row["email"]) == ("555-0001", "new@example.org"), site.name
    assert _checksums(laptop, Client.__table__) == _checksums(first_site, Client.__table__)


def test_the_same_field_changed_on_both_sites_waits_for_a_person(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})
    laptop.sync(first_site)
    for site, phone in ((first_site, "555-0001"), (laptop, "555-0002")):
        with transaction(site.engine) as conn:
            assert get_client(conn, site.keyring, WRITER, cid)["phone"] == phone
            assert conn.execute(select(func.count()).select_from(SyncConflict.__table__)
                                .where(SyncConflict.__table__.c.status == "open")).scalar_one() == 1


# --- strategies ------------------------------------------------------------------------

def _phone(site, cid):
    with transaction(site.engine) as conn:
        return get_client(conn, site.keyring, WRITER, cid, include_deleted=True)["phone"]


def _open_conflicts(site):
    with transaction(site.engine, read_only=True) as conn:
        return conn.execute(select(SyncConflict.__table__).where(SyncConflict.__table__.c.status == "open")
                            ).mappings().all()


def _rule_decisions(site):
    from strongroom.core.db.models import AuditLog
    logs = AuditLog.__table__
    with transaction(site.engine, read_only=True) as conn:
        return [json.loads(d) for d in conn.execute(select(logs.c.details).where(
            logs.c.action == "SYNC", logs.c.details.like('%rule_decision%'))).scalars()]


def test_last_write_wins_takes_the_later_edit_on_both_sites_and_records_who_lost(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})
    with transaction(first_site.engine) as conn:      # later: wins
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    lww = {"clients": Policy("last_write_wins")}
    laptop.sync(first_site, policies=lww)
    laptop.sync(first_site, policies=lww)
    assert _phone(first_site, cid) == _phone(laptop, cid) == "555-0001"
    assert not _open_conflicts(laptop) and not _open_conflicts(first_site)
    decisions = _rule_decisions(laptop) + _rule_decisions(first_site)
    assert any(d["rule"] == "last_write_wins" and "phone" in d["fields"] for d in decisions)
    # names, never values (the whole phone number: "555" alone turns up in a random site id)
    assert all("555-000" not in json.dumps(d) for d in decisions)


def test_a_resolution_on_one_site_settles_the_conflict_on_both(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})
    laptop.sync(first_site)
    (conflict,) = _open_conflicts(laptop)
    with transaction(laptop.engine) as conn:
        resolve_conflict(conn, laptop.keyring, WRITER, conflict["id"], {"phone": "remote"})
    laptop.sync(first_site)
    laptop.sync(first_site)
    assert _phone(first_site, cid) == _phone(laptop, cid) == "555-0001"
    assert not _open_conflicts(laptop) and not _open_conflicts(first_site)
    assert _checksums(laptop, Client.__table__) == _checksums(first_site, Client.__table__)


def test_a_delete_against_an_edit_is_a_conflict_not_a_silent_loss(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        delete_client(conn, WRITER, cid)
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})
    laptop.sync(first_site)
    assert [c["row_id"] for c in _open_conflicts(laptop)] == [cid]
    assert _phone(laptop, cid) == "555-0002"


def test_an_erasure_travels_and_no_later_pass_brings_the_keys_back(first_site, join_site):
    laptop = join_site("laptop")
    tablet = join_site("tablet")
    laptop.sync(first_site)
    tablet.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})   # offline edit
    with transaction(first_site.engine) as conn:
        erase_client(conn, first_site.keyring, cid, now=datetime.now(timezone.utc))
    tablet.sync(first_site)
    tablet.sync(laptop)       # the laptop still holds the live key and its edit
    laptop.sync(first_site)
    for site in (first_site, laptop, tablet):
        with transaction(site.engine, read_only=True) as conn:
            states = set(conn.execute(select(DataKey.__table__.c.state).where(
                DataKey.__table__.c.client_id == cid)).scalars())
            wrapped = set(conn.execute(select(DataKey.__table__.c.wrapped_key).where(
                DataKey.__table__.c.client_id == cid)).scalars())
            deleted = conn.execute(select(Client.__table__.c.deleted_at).where(Client.__table__.c.id == cid)).scalar()
            indexed = conn.execute(select(Client.__table__.c.email_bidx, Client.__table__.c.ssn_last4_bidx,
                                          Client.__table__.c.last_name_bidx)
                                   .where(Client.__table__.c.id == cid)).one()
        assert states == {KeyState.DESTROYED} and wrapped == {None} and deleted is not None, site.name
        assert tuple(indexed) == (None, None, None), site.name      # no blind index left to test a guess
    assert not _open_conflicts(laptop)


def test_a_row_that_went_round_a_chain_is_not_applied_again(first_site, join_site):
    b = join_site("b")
    c = join_site("c")
    b.sync(first_site)
    c.sync(b)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0009"})
    b.sync(first_site)
    c.sync(b)
    back = c.sync(first_site)      # c -> a: a has seen this version
    assert back["push"]["clients"]["applied"] == 0 and _phone(c, cid) == "555-0009"


# --- validation ------------------------------------------------------------------------

def test_a_tampered_row_is_quarantined_and_the_rest_of_the_batch_applies(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    first, second = client_ids(first_site)[:2]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, first, {"phone": "555-0003"})
        update_client(conn, first_site.keyring, WRITER, second, {"phone": "555-0004"})
        # Someone with database access moves a ciphertext from one field to another and
        # fixes the checksum: the AAD binds it to its field, so it must not open here.
        table = Client.__table__
        other = conn.execute(select(table.c.email_enc).where(table.c.id == first)).scalar()
        row = dict(conn.execute(select(table).where(table.c.id == first)).mappings().one())
        row["phone_enc"] = other
        conn.execute(update(table).where(table.c.id == first).values(
            phone_enc=other, data_checksum=row_checksum(row)))
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["quarantined"] == 1
    assert _phone(laptop, second) == "555-0004"
    with transaction(laptop.engine, read_only=True) as conn:
        (held,) = conn.execute(select(SyncQuarantine.__table__)).mappings().all()
    assert (held["row_id"], held["reason"]) == (str(first), "ciphertext_invalid")
    assert "555-000" not in held["detail"]       # the value, not a digit run a site id may hold


def test_a_row_whose_checksum_does_not_match_is_quarantined(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0003"})
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == cid).values(status="VIP"))
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["quarantined"] == 1


# --- refusals and faults ---------------------------------------------------------------

def test_a_peer_with_another_kek_is_refused_naming_the_key_ids(first_site, tmp_path, sqlite_template):
    from strongroom.core.crypto.kek import Kek, generate_kek
    from tests.conftest import sqlite_copy
    stranger = open_site("stranger", sqlite_copy(sqlite_template, tmp_path / "s.db"), [Kek(generate_kek(), "test")])
    with transaction(stranger.engine) as conn:
        stranger.keyring.signing_key(conn)
        stranger.keyring.blind_indexer(conn)
    with pytest.raises(ConflictError, match="KEK") as refused:
        stranger.sync(first_site)
    assert first_site.keyring.kek_id in str(refused.value) and stranger.keyring.kek_id in str(refused.value)
    assert client_ids(stranger) == []


def test_a_peer_at_another_schema_revision_is_refused_before_anything_moves(first_site, join_site):
    laptop = join_site("laptop")
    with transaction(first_site.engine) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0008'")
    with pytest.raises(ConflictError, match="revision 0008"):
        laptop.sync(first_site)
    assert client_ids(laptop) == []


def _sync_killed_after(laptop, first_site, batch: int) -> None:
    """A pass of 5-row batches killed once its `batch`-th batch of clients committed."""
    def crash(direction, table, number):
        if table == "clients" and number == batch:
            raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        laptop.sync(first_site, batch_size=5, after_batch=crash)


def test_a_crash_between_batches_resumes_from_the_last_committed_watermark(first_site, join_site):
    laptop = join_site("laptop")
    _sync_killed_after(laptop, first_site, 2)
    assert 0 < len(client_ids(laptop)) < 12
    laptop.sync(first_site, batch_size=5)
    assert client_ids(laptop) == client_ids(first_site)
    assert _checksums(laptop, TherapySession.__table__) == _checksums(first_site, TherapySession.__table__)


def test_a_pulled_batch_and_its_watermark_commit_together(first_site, join_site):
    """Pulling, the receiving side is this site, which keeps the watermarks: a batch
    and the watermark past it are one transaction, so a crash right after the batch
    committed finds the watermark already there (nothing is read twice)."""
    from strongroom.core.sync.passes import watermarks
    laptop = join_site("laptop")
    _sync_killed_after(laptop, first_site, 1)
    landed = client_ids(laptop)
    assert len(landed) == 5
    mark, after_id = watermarks(laptop.engine, laptop.peers[first_site.name])[("clients", "pull")]
    assert after_id == landed[-1] and mark > 0


def test_the_collector_stays_paused_between_a_tables_batches_and_is_back_after_the_pass(first_site, join_site):
    """Each time the cyclic collector came back on between batches, its next pass scanned
    the batch in hand and the one read ahead (0.9 s of a 100k-row pass's CPU): it is
    paused for a whole table, collecting every few batches, and on again after."""
    import gc
    laptop = join_site("laptop")
    seen = []
    laptop.sync(first_site, batch_size=2, after_batch=lambda *where: seen.append(gc.isenabled()))
    assert seen and not any(seen)
    assert gc.isenabled()


def test_a_pass_asked_for_its_timings_says_where_each_directions_time_went(first_site, join_site):
    """The benchmark's question (bench/sync.py): how long the applying thread spent on
    each direction's batches, how much of it on its own CPU (the rest waits on the
    receiving database), and how long it waited for the next batch to be read."""
    from strongroom.core.sync.passes import Timing
    laptop = join_site("laptop")
    timings: dict = {}
    laptop.sync(first_site, batch_size=5, timings=timings)
    pulled = timings["pull"]
    assert pulled.batches >= 3           # 12 clients in batches of 5, and their sessions
    assert 0 < pulled.apply_cpu_seconds <= pulled.apply_seconds + 0.01
    assert pulled.read_wait_seconds > 0
    assert timings["push"].batches == 0  # nothing on the laptop to send
    again: dict = {}
    laptop.sync(first_site, batch_size=5, timings=again)
    for direction in ("push", "pull"):      # read, found nothing, applied nothing
        assert again[direction] == Timing(read_wait_seconds=again[direction].read_wait_seconds)
    # A pass not asked for timings (the job's) runs as before.
    assert laptop.sync(first_site)["push"]["clients"]["applied"] == 0


def test_a_batch_is_read_and_applied_with_plans_of_one_process(first_site, join_site, monkeypatch):
    """A batch is a page of at most a few thousand rows by (sync_version, id), which
    PostgreSQL's planner read with two parallel workers (Gather Merge): starting them
    cost more than the scan itself (2,000 sessions: 24-35 ms a batch with them, 12-13
    without). A pass's batches, read and applied, are planned for one process."""
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("parallel plans are PostgreSQL's")
    from strongroom.core.sync import passes
    laptop = join_site("laptop")
    laptop.sync(first_site)
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, client_ids(laptop)[0], {"phone": "555-0142"})
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, client_ids(first_site)[1], {"phone": "555-0143"})
    workers = []
    real = passes.read_with_meta

    def reading(conn, *args, **kwargs):
        if conn.dialect.name == "postgresql":
            workers.append(conn.exec_driver_sql("SHOW max_parallel_workers_per_gather").scalar())
        return real(conn, *args, **kwargs)

    monkeypatch.setattr(passes, "read_with_meta", reading)
    result = laptop.sync(first_site, batch_size=2)
    assert result["push"]["clients"]["applied"] == result["pull"]["clients"]["applied"] == 1
    assert len(workers) >= 2 and set(workers) == {"0"}


def test_two_passes_of_one_pair_at_once_are_refused(first_site, join_site):
    laptop = join_site("laptop")
    from strongroom.core.sync.passes import pair_of, take_lease
    from strongroom.core.sync.site import site_id
    with transaction(laptop.engine, read_only=True) as conn:
        mine = site_id(conn)
    with transaction(first_site.engine, read_only=True) as conn:
        theirs = site_id(conn)
    take_lease(first_site.engine, pair_of(mine, theirs), "another-process", datetime.now(timezone.utc))
    with pytest.raises(ConflictError, match="already running"):
        laptop.sync(first_site)


# --- consistency -----------------------------------------------------------------------

def test_the_consistency_check_names_the_rows_that_differ_and_nothing_else(first_site, join_site):
    from strongroom.core.sync.consistency import compare
    laptop = join_site("laptop")
    laptop.sync(first_site)
    assert compare(laptop.engine, first_site.engine)["consistent"]
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    report = compare(laptop.engine, first_site.engine)
    clients = next(t for t in report["tables"] if t["table"] == "clients")
    assert not report["consistent"]
    assert (clients["differing"], clients["missing_here"], clients["ranges_differing"]) == (1, 0, 1)
    assert clients["examples"] == [{"row_id": str(cid), "problem": "differing"}]
    laptop.sync(first_site)
    assert compare(laptop.engine, first_site.engine)["consistent"]


def test_a_write_made_outside_strongroom_on_postgresql_syncs_too(first_site, join_site):
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("writes bypassing the application are caught by PostgreSQL triggers")
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with first_site.engine.begin() as conn:        # psql, another program: no strongroom.app marker
        conn.exec_driver_sql("UPDATE clients SET status = 'VIP' WHERE id = %(id)s", {"id": cid})
    with transaction(first_site.engine, read_only=True) as conn:
        row = dict(conn.execute(select(Client.__table__).where(Client.__table__.c.id == cid)).mappings().one())
    assert row["data_checksum"] == row_checksum(row)
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["applied"] == 1 and result["pull"]["clients"]["quarantined"] == 0
    assert _checksums(laptop, Client.__table__) == _checksums(first_site, Client.__table__)


def test_an_edit_of_an_indexed_column_lands_and_so_does_an_edit_beside_it(first_site, join_site):
    """Updates that keep every indexed column are written without setting them (SQLite);
    one that moves a session (starts_at, indexed) must still move it."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    sessions = TherapySession.__table__
    with transaction(first_site.engine, read_only=True) as conn:
        two = conn.execute(select(sessions).order_by(sessions.c.id).limit(2)).mappings().all()
    moved, lengthened = dict(two[0]), dict(two[1])
    moved["starts_at"] = moved["starts_at"] + timedelta(days=3)
    lengthened["duration_minutes"] += 15
    with transaction(first_site.engine) as conn:
        from strongroom.core.repository.changes import next_change_version
        version = next_change_version(conn)
        for row in (moved, lengthened):
            row["sync_version"] = version
            row["data_checksum"] = row_checksum(row)
            conn.execute(update(sessions).where(sessions.c.id == row["id"]).values(
                starts_at=row["starts_at"], duration_minutes=row["duration_minutes"], sync_version=version,
                data_checksum=row["data_checksum"]))
    result = laptop.sync(first_site)
    assert result["pull"]["therapy_sessions"]["applied"] == 2
    assert _checksums(laptop, sessions) == _checksums(first_site, sessions)
    with transaction(laptop.engine, read_only=True) as conn:
        found = conn.execute(select(sessions.c.id).where(sessions.c.client_id == moved["client_id"],
                                                         sessions.c.starts_at == moved["starts_at"])).scalars().all()
    assert moved["id"] in found


def test_a_pass_with_nothing_to_do_reads_no_table(first_site, join_site, monkeypatch):
    """A short last batch read everything up to the table's highest version, so the
    watermark says so and the next pass asks only for that version (it re-read past the
    last row sent, on every pass, at a cost that grew with the table)."""
    from strongroom.core.sync import passes
    laptop = join_site("laptop")
    laptop.sync(first_site)
    laptop.sync(first_site)
    reads = []
    real = passes.read_with_meta

    def counted(conn, spec, *where, **kwargs):
        reads.append(spec.name)
        return real(conn, spec, *where, **kwargs)
    monkeypatch.setattr(passes, "read_with_meta", counted)
    laptop.sync(first_site)
    assert reads == []
