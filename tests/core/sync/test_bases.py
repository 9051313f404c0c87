"""The base of a manual conflict: the version both sites last agreed on.

Each site keeps, for a row it edited since the row last travelled, the version before
that edit (core/db/sync_bases.py keeps it by trigger, core/sync/bases.py reads and drops
it). A conflict a pass queues carries it, so a person sees base, local and remote and can
tell which side moved; the shadows hold only edits waiting to travel, never an erased
client's data, and a base both sides have since moved past is not offered."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import func, inspect, select, text, update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import SYNC_BASES, Client
from strongroom.core.db.sync_bases import TABLES, shadow_name
from strongroom.core.repository.changes import next_change_version
from strongroom.core.repository.clients import update_client
from strongroom.core.retention.erasure import tombstone
from strongroom.core.sync.bases import meet
from strongroom.core.sync.conflicts import get_conflict, list_conflicts
from tests.core.conftest import WRITER, client_ids

_bases = SYNC_BASES["clients"]
_clients = Client.__table__


def _kept(site) -> set:
    with transaction(site.engine, read_only=True) as conn:
        return set(conn.execute(select(_bases.c.id)).scalars())


def _edit(site, cid, **values) -> None:
    with transaction(site.engine) as conn:
        update_client(conn, site.keyring, WRITER, cid, values)


def _the_conflict(site) -> dict:
    with transaction(site.engine) as conn:
        (summary,) = list_conflicts(conn, site.keyring, WRITER)
        return get_conflict(conn, site.keyring, WRITER, summary["id"])


def _field(conflict: dict, name: str) -> dict:
    return next(f for f in conflict["field_values"] if f["name"] == name)


def test_each_shadow_has_exactly_its_tables_columns_and_the_base_vector(engine):
    names = inspect(engine).get_table_names()
    for table in TABLES:
        columns = [c["name"] for c in inspect(engine).get_columns(table)]
        shadow = [c["name"] for c in inspect(engine).get_columns(shadow_name(table))]
        assert shadow_name(table) in names
        assert sorted(shadow) == sorted(columns + ["base_vv"])


def test_meet_is_what_both_vectors_have_seen():
    assert meet({"a": 3, "b": 1}, {"a": 2, "c": 5}) == {"a": 2}
    assert meet({}, {"a": 1}) == {}


def test_a_conflict_shows_the_value_both_sites_agreed_on(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    _edit(first_site, cid, phone="555-0001")
    _edit(laptop, cid, phone="555-0002")
    laptop.sync(first_site)
    field = _field(_the_conflict(laptop), "phone")
    assert (field["local"], field["remote"]) == ("555-0002", "555-0001")
    assert field["base"] not in (None, "555-0001", "555-0002")
    assert field["changed"] == "both"
    # The other site queued the same conflict with the same base.
    assert _field(_the_conflict(first_site), "phone")["base"] == field["base"]


def test_a_second_local_edit_keeps_the_base_of_the_first(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(laptop.engine, read_only=True) as conn:
        agreed = conn.execute(select(_clients.c.phone_enc).where(_clients.c.id == cid)).scalar()
    _edit(laptop, cid, phone="555-0002")
    _edit(laptop, cid, phone="555-0003")
    with transaction(laptop.engine, read_only=True) as conn:
        kept = conn.execute(select(_bases.c.phone_enc).where(_bases.c.id == cid)).scalar()
    assert bytes(kept) == bytes(agreed)


def test_rows_a_pass_applies_keep_no_base(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    assert _kept(laptop) == set()                 # every row arrived by sync
    cid = client_ids(first_site)[0]
    _edit(first_site, cid, phone="555-0001")
    laptop.sync(first_site)                       # pulled: agreed, nothing kept here
    assert _kept(laptop) == set()


def test_a_base_is_dropped_once_the_peer_holds_the_edit(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    _edit(laptop, cid, phone="555-0002")
    assert _kept(laptop) == {cid}
    laptop.sync(first_site)                       # pushed and applied there
    assert _kept(laptop) == set()
    assert _kept(first_site) == set()


def test_an_unsynced_site_keeps_no_bases(first_site):
    cid = client_ids(first_site)[0]
    _edit(first_site, cid, phone="555-0001")      # never stamped: no version was ever agreed
    assert _kept(first_site) == set()


def test_a_tombstone_drops_the_base_so_an_erased_client_leaves_nothing_behind(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    _edit(laptop, cid, phone="555-0002")
    assert _kept(laptop) == {cid}
    with transaction(laptop.engine) as conn:
        tombstone(conn, _clients, [cid], now=datetime.now(timezone.utc), version=next_change_version(conn))
    assert _kept(laptop) == set()


def test_a_deleted_row_takes_its_base_with_it(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    sid = None
    from strongroom.core.db.models import TherapySession
    sessions, session_bases = TherapySession.__table__, SYNC_BASES["therapy_sessions"]
    with transaction(laptop.engine) as conn:
        sid = conn.execute(select(sessions.c.id).limit(1)).scalar()
        conn.execute(update(sessions).where(sessions.c.id == sid).values(sync_version=sessions.c.sync_version + 1))
        assert conn.execute(select(func.count()).select_from(session_bases)).scalar() == 1
        conn.execute(text("PRAGMA foreign_keys = OFF") if conn.dialect.name == "sqlite" else text("SELECT 1"))
        conn.execute(sessions.delete().where(sessions.c.id == sid))
        assert conn.execute(select(func.count()).select_from(session_bases)).scalar() == 0


def test_a_base_both_sides_have_moved_past_is_not_offered(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    _edit(first_site, cid, phone="555-0001")
    _edit(laptop, cid, phone="555-0002")
    with transaction(laptop.engine) as conn:        # a base from an older agreement than the last
        vv = conn.execute(select(_bases.c.base_vv).where(_bases.c.id == cid)).scalar()
        conn.execute(update(_bases).where(_bases.c.id == cid).values(base_vv={s: v - 1 for s, v in vv.items()}))
    laptop.sync(first_site)
    conflict = _the_conflict(laptop)
    assert conflict["has_base"] is False
    assert _field(conflict, "phone")["base"] is None


def test_a_write_outside_the_application_keeps_a_base_on_postgresql(first_site, join_site):
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("writes outside the application are PostgreSQL's (its triggers version them)")
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with first_site.engine.begin() as conn:
        conn.execute(text("UPDATE clients SET status = 'INACTIVE' WHERE id = :id"), {"id": cid})
    assert _kept(first_site) == {cid}


def test_keeping_a_base_looks_up_one_row_of_sync_metadata_not_all_of_them(engine, ctx):
    """The PostgreSQL trigger finds the edited row's metadata by the primary key
    (table_name, row_id). Compared as `name` (the type of TG_TABLE_NAME) the key's first
    column was not usable, so every UPDATE of a synced row read all of sync_rows: a
    100k-row update on a site holding 400k rows of metadata ran for over 16 minutes."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's triggers name their table as a literal")
    import json
    import uuid
    from strongroom.core import demo
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository.clients import insert_clients
    from strongroom.core.repository.practices import create_practice
    meta = {"origin": "x", "hlc": 1, "vv": json.dumps({}), "dots": json.dumps({}), "hashes": json.dumps({}),
            "version": 1}
    with transaction(engine) as conn:
        created: list = []
        practice = create_practice(conn, SYSTEM, "Base Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(1), created=created)
    with engine.connect() as conn:     # one backend: its own statistics, flushed on demand
        conn.execute(text("INSERT INTO sync_rows (table_name, row_id, origin, hlc, vv, dots, hashes, version) "
                          "VALUES (:t, :r, :origin, :hlc, CAST(:vv AS jsonb), CAST(:dots AS jsonb), "
                          "CAST(:hashes AS jsonb), :version)"),
                     [{"t": "clients", "r": uuid.uuid4(), **meta} for _ in range(20000)])
        conn.execute(text("ANALYZE sync_rows"))
        conn.commit()

        def blocks_read() -> int:       # pages of sync_rows and its indexes read so far
            conn.execute(text("SELECT pg_stat_force_next_flush()"))
            conn.commit()
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            value = conn.execute(text("SELECT heap_blks_read + heap_blks_hit + idx_blks_read + idx_blks_hit "
                                      "FROM pg_statio_user_tables WHERE relname = 'sync_rows'")).scalar_one()
            conn.commit()
            return value
        before = blocks_read()
        conn.execute(update(_clients).where(_clients.c.id == created[0]).values(status="VIP"))
        conn.commit()
        assert blocks_read() - before < 10


_ROW_TRIGGER_FUNCTIONS = ("strongroom_audit_bypass", "strongroom_sync_bypass_clients", "strongroom_sync_base")


def _sessions(conn) -> set[int]:
    return set(conn.execute(text("SELECT pid FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalars())


def _trigger_function_calls(engine, lasting: set[int]) -> dict[str, int]:
    """Calls of the per-row trigger functions in this database so far, once every session
    of it but `lasting` (the fixtures', which write nothing here) has ended: a backend
    hands in its counts when it exits."""
    import time
    engine.dispose()
    with engine.connect() as conn:
        deadline = time.monotonic() + 10
        while _sessions(conn) - lasting and time.monotonic() < deadline:
            time.sleep(0.01)
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = conn.execute(text("SELECT funcname, calls FROM pg_stat_user_functions")).all()
    counts = dict.fromkeys(_ROW_TRIGGER_FUNCTIONS, 0)
    counts.update((name, calls) for name, calls in rows if name in counts)
    return counts


def test_on_postgresql_rows_a_pass_writes_fire_none_of_the_per_row_trigger_functions(first_site, join_site):
    """The audit, bypass-versioning and sync-base triggers have nothing to do for a row a
    pass writes (the application audits and versions its own writes; applied rows keep no
    base), yet each was a PL/pgSQL call per row, about 0.8 s of the server's time for
    100k clients. Their WHEN clauses skip them; a write outside the application still
    fires all three (migration 0021)."""
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's triggers; SQLite's carry their conditions in WHEN already")
    laptop = join_site("laptop")
    laptop.sync(first_site)
    edited = client_ids(laptop)[:3]
    for cid in edited:
        _edit(laptop, cid, phone="555-0100")
    database = first_site.engine.url.database
    with first_site.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" SET track_functions = \'pl\''))
    first_site.engine.dispose()
    with first_site.engine.connect() as conn:
        lasting = _sessions(conn)
    before = _trigger_function_calls(first_site.engine, lasting)
    result = laptop.sync(first_site)
    assert result["push"]["clients"]["applied"] == 3
    assert _trigger_function_calls(first_site.engine, lasting) == before
    with first_site.engine.begin() as conn:        # outside the application
        conn.execute(text("UPDATE clients SET status = 'INACTIVE' WHERE id = :id"), {"id": edited[0]})
    after = _trigger_function_calls(first_site.engine, lasting)
    assert all(after[name] == before[name] + 1 for name in _ROW_TRIGGER_FUNCTIONS), (before, after)
