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
from strongroom.core.errors import IntegrityError
from strongroom.core.jobs import backup, restore
from strongroom.core.backup.repository import open_repository
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import create_session
from strongroom.core.storage import open_target
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
                restore._check_foreign_keys(conn, [TherapySession.__table__])
    finally:
        engine.dispose()
