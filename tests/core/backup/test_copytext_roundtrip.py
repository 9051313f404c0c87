"""Round trips through the canonical COPY text, both engines both ways, over a database
seeded the way the application writes one (demo clients and sessions, users, audit
chain, JSON columns holding both JSON null and SQL NULL).

Source is each engine in turn (the `ctx` fixture). Its bytes -- PostgreSQL's own COPY TO
output, or encode_rows over SQLite -- are restored into a fresh SQLite (decode_lines ->
Core executemany) and into a fresh PostgreSQL (COPY FROM STDIN); both must re-encode to
the identical bytes, and every syncable row must keep its row_checksum.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import insert, null, select
from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.backup import copytext as ct
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (
    Base,
    Client,
    JobRun,
    Role,
    SecurityEvent,
    SyncConflict,
    SyncPeer,
)
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import hold_tracking, resume_tracking, row_checksum
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import insert_sessions

from tests.conftest import PG_AVAILABLE
from tests.core.backup._engines import (
    drop_pg,
    encode_table,
    new_pg,
    new_sqlite,
    pg_copy_in,
    pg_copy_out,
)

SYSTEM = Principal("system", frozenset({"*"}))
PASSWORD = "correct horse battery staple 42"
# The change counter is seeded by the SQLite migration, so an "empty" SQLite already has
# its row; a restore sets it rather than inserting it.
SKIP = {"change_counter"}
TABLES = [t for t in Base.metadata.sorted_tables if t.name not in SKIP]


def _seed(ctx) -> None:
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Copytext Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "clinician", PASSWORD, Role.PRACTITIONER,
                    full_name="Dana\tTab \\ Back", actor="test")
        create_user(conn, ctx.keyring, ctx.settings, practice, "staff1", PASSWORD, Role.STAFF, actor="test")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(25))
        ids = list(conn.execute(select(Client.id).order_by(Client.id)).scalars())
        insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(ids[:10], 3))
        conn.execute(insert(SecurityEvent.__table__), [
            {"occurred_at": datetime(2026, 3, 1, 12, 0, 0, 120000, UTC), "event_type": "login_failed",
             "severity": "warning", "description": "bad password\nfor 'x'", "details": {"n": 1, "why": "é😀"}},
            {"occurred_at": datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC), "event_type": "login",
             "severity": "info", "description": "", "details": {}}])
        peer = uuid.uuid4()
        conn.execute(insert(SyncPeer.__table__), [{"id": peer, "name": "hq", "url": "tcp://hq", "strategies": {"clients": "manual"}}])
        conn.execute(insert(SyncConflict.__table__), [
            {"peer_id": peer, "table_name": "clients", "row_id": ids[0], "base": None,
             "local": {"status": "VIP", "n": [1.5, 2]}, "remote": {"status": "ACTIVE"}, "resolution": null()},
            {"peer_id": peer, "table_name": "clients", "row_id": ids[1], "base": null(),
             "local": {}, "remote": [], "resolution": None}])
        conn.execute(insert(JobRun.__table__), [
            {"job_kind": "backup", "params": {"full": True}, "result": None, "message": None},
            {"job_kind": "verify", "params": {}, "result": null(), "message": "line\r\nbreak"}])


def _source_bytes(ctx) -> dict[str, bytes]:
    if ctx.engine.dialect.name == "postgresql":
        return {t.name: pg_copy_out(ctx.engine, t) for t in TABLES}
    return {t.name: encode_table(ctx.engine, t) for t in TABLES}


def _restore_sqlite(engine, source: dict[str, bytes]) -> None:
    # Parents first (sorted_tables); deferred FK checks for self-references (backups).
    with transaction(engine) as conn:
        conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        hold_tracking(conn)             # rows as saved: data_keys keep their versions
        conn.exec_driver_sql("DELETE FROM sync_site")   # the saved site replaces the seeded one, as restore does
        for table in TABLES:
            rows = list(ct.decode_lines(ct.columns(table), source[table.name]))
            if rows:
                conn.execute(insert(table), rows)
        resume_tracking(conn)


def _checksums(engine, table) -> dict:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT set_config('strongroom.scope', 'system', true)")
        return {r["id"]: row_checksum(dict(r)) for r in conn.execute(select(table)).mappings()}


def test_round_trip_into_sqlite_and_postgresql(ctx, sqlite_template, request, tmp_path):
    _seed(ctx)
    source = _source_bytes(ctx)
    counts = {name: data.count(b"\n") for name, data in source.items()}
    assert counts["clients"] == 25 and counts["therapy_sessions"] == 30 and counts["users"] == 2
    assert counts["audit_logs"] > 0 and counts["data_keys"] >= 25
    assert b"\tnull\t" in source["sync_conflicts"] and b"\t\\N\t" in source["sync_conflicts"]

    # encode -> decode -> encode on the bytes themselves
    for table in TABLES:
        cols = ct.columns(table)
        again = ct.encode_rows(cols, [[_as_input(c, d[c.name]) for c in cols]
                                      for d in ct.decode_lines(cols, source[table.name])])
        assert again == source[table.name], table.name

    lite = new_sqlite(sqlite_template, tmp_path)
    try:
        _restore_sqlite(lite, source)
        for table in TABLES:
            assert encode_table(lite, table) == source[table.name], table.name
            if "data_checksum" in table.c:
                assert _checksums(lite, table) == _checksums(ctx.engine, table), table.name
    finally:
        lite.dispose()

    if not PG_AVAILABLE:
        return
    name, pg = new_pg(request.getfixturevalue("pg_template"))
    try:
        with pg.begin() as conn:
            conn.exec_driver_sql("DELETE FROM sync_site")
        for table in TABLES:
            if source[table.name]:
                pg_copy_in(pg, table, source[table.name])
        for table in TABLES:
            # No audit-bypass trigger fired: audit_logs holds exactly the restored chain.
            assert pg_copy_out(pg, table) == source[table.name], table.name
            if "data_checksum" in table.c:
                assert _checksums(pg, table) == _checksums(ctx.engine, table), table.name
    finally:
        drop_pg(name, pg)


def _as_input(col, value):
    """A decoded value back in encode_rows' input shape (JSON columns as document text)."""
    if ct._kind(col) != "json":
        return value
    if value is not None and not isinstance(value, (dict, list, str, int, float, bool)):
        return None  # sqlalchemy.null(): SQL NULL
    return ct.render_jsonb(value)
