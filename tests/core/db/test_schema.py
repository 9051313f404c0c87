"""The schema: migrations, engine settings and PostgreSQL's row-level security."""
import uuid
from datetime import datetime

import psycopg
import pytest
from sqlalchemy import insert, inspect, select, text

from strongroom.core.db import migrate
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Base, Practice
from strongroom.core.db.types import utcnow
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.changes import current_change_version, next_change_version
from strongroom.core.repository.practices import create_practice
from tests.conftest import PG_DSN, pg_admin


def test_migrations_create_every_model_table(engine):
    names = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= names
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_schema_matches_the_models_exactly(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(engine):
    from alembic import command

    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "clients" not in inspect(engine).get_table_names()
    before, after = migrate.upgrade(engine)
    assert before is None and after == migrate.head_revision()


def test_upgrade_is_idempotent(engine):
    assert migrate.upgrade(engine) == (migrate.head_revision(), migrate.head_revision())


def test_sqlite_runs_wal_with_foreign_keys(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite settings")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_foreign_keys_are_enforced(engine):
    from sqlalchemy.exc import IntegrityError as SAIntegrityError

    with pytest.raises(SAIntegrityError):
        with transaction(engine) as conn:
            conn.execute(text("INSERT INTO legal_holds (id, practice_id, reason, created_by, created_at) "
                              "VALUES (:id, :p, 'x', 'y', :t)"),
                         {"id": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(),
                          "p": uuid.uuid4().hex if engine.dialect.name == "sqlite" else uuid.uuid4(), "t": utcnow()})


def test_naive_datetimes_are_refused(engine):
    with pytest.raises(Exception, match="naive datetime"):
        with transaction(engine) as conn:
            conn.execute(insert(Practice.__table__), [{"id": uuid.uuid4(), "name": "p", "settings": {},
                                                      "created_at": datetime(2026, 1, 1)}])


def test_timestamps_come_back_as_utc(engine):
    with transaction(engine) as conn:
        pid = create_practice(conn, SYSTEM, "Clock Practice")
        created = conn.execute(select(Practice.__table__.c.created_at).where(Practice.__table__.c.id == pid)).scalar_one()
    assert created.utcoffset().total_seconds() == 0


def test_change_counter_is_monotonic_across_transactions(engine):
    seen = []
    for _ in range(3):
        with transaction(engine) as conn:
            seen.append(next_change_version(conn))
    with engine.connect() as conn:
        assert current_change_version(conn) == seen[-1]
    assert seen == sorted(seen) and len(set(seen)) == 3


def test_row_level_security_confines_a_session_to_its_practice(engine, db_url):
    if engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    with transaction(engine) as conn:
        a = create_practice(conn, SYSTEM, "A")
        b = create_practice(conn, SYSTEM, "B")
        for practice in (a, b):
            key = uuid.uuid4()
            conn.execute(text("INSERT INTO data_keys (id, purpose, version, kek_id, state, created_at) "
                              "VALUES (:k, 'client', 1, 'x', 'active', now())"), {"k": key})
            conn.execute(text("INSERT INTO clients (id, practice_id, key_id, first_name_enc, last_name_enc, "
                              "status, data_sensitivity, created_at, updated_at, sync_version) VALUES "
                              "(gen_random_uuid(), :p, :k, '\\x00', '\\x00', 'ACTIVE', 'high', now(), now(), 1)"),
                         {"p": practice, "k": key})
    # Superusers bypass RLS, as PostgreSQL intends; the application's role does not.
    role = f"sr_app_{uuid.uuid4().hex[:8]}"
    dbname = engine.url.database
    pg_admin(f"CREATE ROLE {role} LOGIN")
    try:
        admin_engine = make_engine(db_url)
        with admin_engine.begin() as conn:
            conn.execute(text(f"GRANT SELECT, INSERT ON clients TO {role}"))
        admin_engine.dispose()
        app = make_engine(engine.url.set(username=role).render_as_string(hide_password=False))
        with transaction(app, practice_id=a, system=False) as conn:
            seen = set(conn.execute(text("SELECT practice_id FROM clients")).scalars())
        assert seen == {a}
        with app.begin() as conn:  # not scoped by transaction(): the session's default, the system's
            assert set(conn.execute(text("SELECT practice_id FROM clients")).scalars()) == {a, b}
        with pytest.raises(Exception, match="row-level security"):
            with transaction(app, practice_id=a, system=False) as conn:
                conn.execute(text("INSERT INTO clients (id, practice_id, key_id, first_name_enc, last_name_enc, "
                                  "status, data_sensitivity, created_at, updated_at, sync_version) SELECT "
                                  "gen_random_uuid(), :b, key_id, first_name_enc, last_name_enc, status, "
                                  "data_sensitivity, now(), now(), 2 FROM clients LIMIT 1"), {"b": b})
        app.dispose()
    finally:
        pg_admin(f'REASSIGN OWNED BY {role} TO postgres')
        with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{dbname}", autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        pg_admin(f"DROP ROLE {role}")
