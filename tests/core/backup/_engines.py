"""Fresh databases of both engines and PostgreSQL COPY through psycopg 3, for the
copytext tests."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import Engine, Table
from strongroom.core.backup import copytext as ct
from strongroom.core.db.engine import make_engine

from tests.conftest import _RUN, pg_admin, pg_url


def new_pg(template: str) -> tuple[str, Engine]:
    name = f"{_RUN}_bk{uuid.uuid4().hex[:8]}"
    pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name, make_engine(pg_url(name))


def drop_pg(name: str, engine: Engine) -> None:
    engine.dispose()
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_sqlite(template: Path, directory: Path) -> Engine:
    path = directory / f"copy-{uuid.uuid4().hex[:8]}.db"
    shutil.copy(template, path)
    return make_engine(f"sqlite:///{path}")


def _libpq(engine: Engine) -> str:
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _session(conn: psycopg.Connection) -> None:
    conn.execute(ct.pg_session_sql())
    # The restore's choice: the application marker (audit-bypass triggers stay quiet),
    # system scope (RLS WITH CHECK passes) and rows as saved (data_keys keep their
    # versions), transaction-local like set_scope.
    conn.execute("SELECT set_config('strongroom.app', 'on', true),"
                 " set_config('strongroom.scope', 'system', true),"
                 " set_config('strongroom.restoring', 'on', true)")


def pg_copy_out(engine: Engine, table: Table) -> bytes:
    with psycopg.connect(_libpq(engine)) as conn:
        _session(conn)
        with conn.cursor().copy(ct.copy_out_sql(table)) as copy:
            return b"".join(bytes(chunk) for chunk in copy)


def pg_copy_in(engine: Engine, table: Table, data: bytes) -> None:
    with psycopg.connect(_libpq(engine)) as conn:
        _session(conn)
        with conn.cursor().copy(ct.copy_in_sql(table)) as copy:
            copy.write(data)


def encode_table(engine: Engine, table: Table) -> bytes:
    """What the backup does on SQLite: select_for_copy -> encode_rows."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT set_config('strongroom.scope', 'system', true)")
        return ct.encode_rows(ct.columns(table), conn.execute(ct.select_for_copy(table)))
