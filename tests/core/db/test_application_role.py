"""Strongroom on PostgreSQL as a deployment runs it: an ordinary role that owns its
database, not a superuser. Row-level security binds that role (superusers, which the
rest of the suite uses, bypass it), so here a transaction not scoped to a practice must
still be the system's: the health counts, the integrity scan and the jobs read with
plain connections, and they read every practice's rows. Measured before the fix: the
integrity envelope scan checked 0 of 5 clients and called it ok, and health counted no
client files."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import func, select, text

from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.datadir import init_data_dir
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client
from strongroom.core.integrity.envelopes import check_envelopes
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import create_practice
from tests.conftest import PG_AVAILABLE, PG_DSN, pg_admin, pg_url
from tests.daemon.conftest import insert_demo_rows

pytestmark = pytest.mark.skipif(not PG_AVAILABLE, reason="row-level security is PostgreSQL's")


@pytest.fixture
def ctx(tmp_path):
    """A data directory initialised by an ordinary role on a database it owns."""
    suffix = uuid.uuid4().hex[:8]
    role, dbname = f"sr_app_{suffix}", f"sr_app_db_{suffix}"
    pg_admin(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS")
    pg_admin(f'CREATE DATABASE "{dbname}" OWNER {role}')
    url = pg_url(dbname).replace("//postgres@", f"//{role}@", 1)
    try:
        init_data_dir(tmp_path / "data", practice_name="Role Test Practice", principal=SYSTEM, database_url=url)
        context = open_context(load_settings(tmp_path / "data" / "strongroom.toml"))
        try:
            yield context
        finally:
            context.close()
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        pg_admin(f"DROP ROLE {role}")


def test_the_role_is_bound_by_row_level_security(ctx):
    with psycopg.connect(PG_DSN) as admin:
        super_, bypass = admin.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s",
                                       (ctx.engine.url.username,)).fetchone()
    assert (super_, bypass) == (False, False)


def test_an_unscoped_connection_reads_as_the_system(ctx):
    with transaction(ctx.engine) as conn:
        insert_demo_rows(ctx, conn, clients=5, sessions_per_client=2)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Client.__table__)).scalar_one() == 5
        assert conn.execute(text("SELECT count(*) FROM therapy_sessions")).scalar_one() == 10


def test_the_integrity_scan_checks_every_client(ctx):
    with transaction(ctx.engine) as conn:
        insert_demo_rows(ctx, conn, clients=5, sessions_per_client=0)
    result = check_envelopes(ctx, "clients", lambda *a: None, sample=100, full=True)
    evidence = result["evidence"]
    assert (result["status"], evidence["rows_checked"], evidence["failed_to_open"]) == ("ok", 5, 0)
    assert evidence["opened"] >= 5 * 2                 # every client's names at least, each opened


def test_a_practice_scoped_transaction_still_sees_only_its_practice(ctx):
    with transaction(ctx.engine) as conn:
        insert_demo_rows(ctx, conn, clients=3, sessions_per_client=0)
        other = create_practice(conn, SYSTEM, "Other Practice")
    with transaction(ctx.engine, practice_id=other, system=False) as conn:
        assert conn.execute(select(func.count()).select_from(Client.__table__)).scalar_one() == 0
    with ctx.engine.connect() as conn:         # and the scope ended with that transaction
        assert conn.execute(select(func.count()).select_from(Client.__table__)).scalar_one() == 3
