"""Restoring into PostgreSQL: triggers off for speed when allowed, every foreign key and
the append-only audit log still holding afterwards."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from sqlalchemy import text

from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.migrate import upgrade
from strongroom.core.db.models import TherapySession
from strongroom.core.demo import client_records
from strongroom.core.errors import ConflictError, IntegrityError
from strongroom.core import restore
from strongroom.core.restore.load import check_foreign_keys
from strongroom.core.jobs import backup
from strongroom.core.backup.repository import open_repository
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import create_session
from strongroom.core.storage import open_target
from strongroom.core.files.store import open_files_target
from tests.conftest import PG_AVAILABLE, PG_DSN, pg_admin, pg_url

pytestmark = pytest.mark.skipif(not PG_AVAILABLE, reason="PostgreSQL not answering")


@pytest.fixture
def snapshot(ctx, tmp_path):
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"target": str(tmp_path / "repo")})})
    created: list = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Restore Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(20), created=created)
        for cid in created[:5]:
            create_session(conn, ctx.keyring, SYSTEM, {"client_id": cid, "notes": "synthetic note",
                                                       "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
    result = backup.run(ctx, {"actor": "test"}, lambda *a: None)
    return open_repository(open_target(ctx.settings.backup.target), ctx.keyring), uuid.UUID(result["snapshot_id"])


@pytest.fixture
def scratch_db():
    name = f"sr_restore_{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}"')
    yield name
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_triggers_are_back_on_after_a_restore(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    engine = make_engine(pg_url(scratch_db))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW session_replication_role")).scalar() == "origin"
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text("UPDATE audit_logs SET actor = 'x'"))
    finally:
        engine.dispose()


def test_a_restored_database_has_every_index_the_schema_has(snapshot, scratch_db):
    """Plain indexes are dropped while loading and built once each table is in; none may
    be missing or different afterwards."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from strongroom.core.db.models import Base

    repo, snapshot_id = snapshot
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    engine = make_engine(pg_url(scratch_db))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
            defined = set(conn.execute(text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).scalars())
    finally:
        engine.dispose()
    assert {"ix_therapy_sessions_client_starts", "ix_clients_email_bidx", "ix_audit_logs_actor_id"} <= defined


def test_a_role_that_may_not_disable_triggers_restores_with_them_on(snapshot, scratch_db):
    """The database owner with BYPASSRLS but no superuser: the fast path is refused and
    the restore loads with every trigger firing, proven the same way."""
    repo, snapshot_id = snapshot
    role = f"sr_owner_{uuid.uuid4().hex[:8]}"
    pg_admin(f"CREATE ROLE {role} LOGIN BYPASSRLS")
    try:
        pg_admin(f'ALTER DATABASE "{scratch_db}" OWNER TO {role}')
        with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{scratch_db}", autocommit=True) as conn:
            conn.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        url = make_engine(pg_url(scratch_db)).url.set(username=role).render_as_string(hide_password=False)
        result = restore.restore(repo, snapshot_id, url)
        assert result.rows > 25
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')
        pg_admin(f"DROP ROLE {role}")


def test_the_foreign_key_proof_names_a_dangling_reference(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    engine = make_engine(pg_url(scratch_db))
    upgrade(engine)
    try:
        with pytest.raises(IntegrityError, match=r"therapy_sessions.*client_id -> clients \(1 rows\)"):
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text("UPDATE therapy_sessions SET client_id = :c "
                                  "WHERE id = (SELECT id FROM therapy_sessions ORDER BY id LIMIT 1)"), {"c": uuid.uuid4()})
                check_foreign_keys(conn, [TherapySession.__table__])
    finally:
        engine.dispose()


def _schemas(db: str) -> set[str]:
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{db}") as conn:
        return {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
                                           "AND nspname <> 'information_schema'")}


def _count(db: str, sql: str) -> int:
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{db}") as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_staged_restore_leaves_only_public_behind(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    result = restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _schemas(scratch_db) == {"public"}
    assert _count(scratch_db, "SELECT count(*) FROM clients") == 20
    assert result.rows > 25


def test_a_failed_forced_restore_leaves_the_old_database_untouched(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{scratch_db}", autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM therapy_sessions")          # "the database as it was"
    manifest = repo.read_manifest(snapshot_id)
    victim = next(t for t in manifest.tables if t.name == "therapy_sessions").chunks[0]
    path = repo.target.root / "chunks" / victim.address[:2] / victim.address
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        restore.restore(repo, snapshot_id, pg_url(scratch_db), force=True)
    assert _schemas(scratch_db) == {"public"}
    assert _count(scratch_db, "SELECT count(*) FROM therapy_sessions") == 0
    assert _count(scratch_db, "SELECT count(*) FROM clients") == 20


def test_a_forced_restore_replaces_the_database_whole(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{scratch_db}", autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM therapy_sessions")
    with pytest.raises(ConflictError, match="not empty"):
        restore.restore(repo, snapshot_id, pg_url(scratch_db))
    restore.restore(repo, snapshot_id, pg_url(scratch_db), force=True)
    assert _count(scratch_db, "SELECT count(*) FROM therapy_sessions") == 5
    assert _schemas(scratch_db) == {"public"}


def test_a_staging_schema_left_by_a_crash_is_dropped_by_the_next_restore(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    pg_admin_db(scratch_db, "CREATE SCHEMA sr_restore_deadbeef0000; "
                            "CREATE TABLE sr_restore_deadbeef0000.clients (id int)")
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _schemas(scratch_db) == {"public"}


def test_objects_that_are_not_ours_in_public_mean_an_in_place_restore(snapshot, scratch_db):
    repo, snapshot_id = snapshot
    pg_admin_db(scratch_db, "CREATE TABLE public.site_notes (id int); INSERT INTO public.site_notes VALUES (7)")
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _count(scratch_db, "SELECT count(*) FROM clients") == 20
    assert _count(scratch_db, "SELECT id FROM public.site_notes") == 7


def pg_admin_db(db: str, sql: str) -> None:
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{db}", autocommit=True) as conn:
        conn.execute(sql)


def test_a_table_of_many_chunks_loads_in_parts_and_is_proven_whole(ctx, tmp_path, scratch_db, monkeypatch):
    monkeypatch.setattr(backup, "SEGMENT_BYTES", 1024)        # many chunks from little data
    monkeypatch.setattr(backup, "_SQLITE_BATCH", 1)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"target": str(tmp_path / "repo")})})
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Parts Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(40))
    snapshot_id = uuid.UUID(backup.run(ctx, {"actor": "test"}, lambda *a: None)["snapshot_id"])
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    loads = []
    real = restore.load_base
    monkeypatch.setattr(restore, "load_base", lambda conn, plan, name, part, parts, pool: (
        loads.append((name, part, parts)), real(conn, plan, name, part, parts, pool)))
    result = restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert ("clients", 0, 2) in loads and ("clients", 1, 2) in loads
    assert _count(scratch_db, "SELECT count(*) FROM clients") == 40 and result.rows > 40

    # A part that went missing is caught by the whole-table proof, and nothing is swapped in.
    pg_admin(f'DROP DATABASE IF EXISTS "{scratch_db}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{scratch_db}"')
    monkeypatch.setattr(restore, "load_base", lambda conn, plan, name, part, parts, pool: (
        None if (name, part) == ("clients", 1) else real(conn, plan, name, part, parts, pool)))
    with pytest.raises(IntegrityError, match="restored table clients differs"):
        restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _schemas(scratch_db) == {"public"}
    assert _count(scratch_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0

    # A row that differs from what was loaded fails its part's proof, naming the chunk.
    def tampered(conn, plan, name, part, parts, pool):
        real(conn, plan, name, part, parts, pool)
        if (name, part) == ("clients", 1):
            conn.execute(text("UPDATE clients SET updated_at = updated_at + interval '1 second' "
                              "WHERE id = (SELECT id FROM clients ORDER BY id DESC LIMIT 1)"))
    monkeypatch.setattr(restore, "load_base", tampered)
    with pytest.raises(IntegrityError, match=r"clients differs from the snapshot in part 2 of 2, "
                                             r"chunk (\d+) of \1: its rows do not hash"):
        restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _count(scratch_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


def test_a_second_restore_into_the_same_database_is_refused_while_one_runs(snapshot, scratch_db):
    from strongroom.core.db.staging import RESTORE_LOCK_KEY

    repo, snapshot_id = snapshot
    with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{scratch_db}", autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (RESTORE_LOCK_KEY,))       # the running one
        with pytest.raises(ConflictError, match="another restore"):
            restore.restore(repo, snapshot_id, pg_url(scratch_db))
    assert _schemas(scratch_db) == {"public"}
    restore.restore(repo, snapshot_id, pg_url(scratch_db))                   # lock gone: runs
    assert _count(scratch_db, "SELECT count(*) FROM clients") == 20


def test_a_client_erased_after_the_snapshot_restores_tombstoned_into_postgresql(ctx, snapshot, scratch_db):
    from strongroom.core.db.models import Client
    from strongroom.core.retention import certificate, erasure

    repo, snapshot_id = snapshot
    clients = Client.__table__
    with ctx.engine.connect() as conn:
        erased = conn.execute(clients.select().with_only_columns(clients.c.id).order_by(clients.c.id)
                              .limit(1)).scalar()
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=erased, actor="user:alice", reason="written request ref 12")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    certificate.reach_repositories(ctx)
    restore.restore(repo, snapshot_id, pg_url(scratch_db))
    engine = make_engine(pg_url(scratch_db))
    try:
        with engine.connect() as conn:
            gone = conn.execute(clients.select().where(clients.c.id == erased)).mappings().one()
            live = conn.execute(text("SELECT count(*) FROM clients WHERE deleted_at IS NULL")).scalar()
        assert gone["deleted_at"] is not None and live == 19
    finally:
        engine.dispose()
