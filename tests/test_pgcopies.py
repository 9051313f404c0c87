"""The suite's PostgreSQL databases (tests/pgcopies.py): one a test has finished with is
handed to a later test only when it is as the template was, and is dropped otherwise."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.conftest import PG_DSN, _copies, libpq_url
from tests.pgcopies import FINGERPRINT, Copies


@pytest.fixture
def copies(pg_template):
    """Copies of this process's template beside the suite's own (`_copies`), whose
    reading of the template they share: nothing may connect to it while it is copied."""
    made = Copies(PG_DSN, libpq_url, pg_template, f"sr_tpc{uuid.uuid4().hex[:6]}", source=_copies[pg_template].source)
    yield made
    made.close()


def _write_some(name: str) -> None:
    with psycopg.connect(libpq_url(name), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for n in range(300):
            conn.execute("INSERT INTO security_events (occurred_at, event_type, severity, description, details) "
                         "VALUES (now(), 'login_failed', 'warning', %s, '{}')", (f"synthetic {n}",))
        conn.execute("SELECT nextval('strongroom_change_seq')")
        conn.execute("DELETE FROM security_events WHERE id % 2 = 0")    # pages with gaps in them


def _state(name: str) -> dict:
    with psycopg.connect(libpq_url(name)) as conn:
        return {
            "pages": conn.execute("SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
                                  "AND relnamespace = 'public'::regnamespace AND pg_relation_size(oid) > 0 "
                                  "ORDER BY 1").fetchall(),
            "rows": conn.execute("SELECT version_num FROM alembic_version").fetchall(),
            "sequences": conn.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall(),
            "site": conn.execute("SELECT id FROM sync_site").fetchall(),
            "schema": conn.execute(FINGERPRINT).fetchone()[0],
        }


def test_a_database_given_back_is_handed_out_again_as_a_new_copy_would_be(copies):
    first = copies.take()
    fresh = _state(first)          # as the template is (the template itself is left alone:
    _write_some(first)             # a connection to it would stop other workers copying it)
    copies.give_back(first)
    second = copies.take()                 # made while `first` was in use
    assert copies.take() == first          # then `first`, put back
    again = _state(first)
    assert again["site"] != fresh["site"]          # a site of its own, as a new copy has
    assert {k: v for k, v in again.items() if k not in ("site", "pages")} == {
        k: v for k, v in fresh.items() if k not in ("site", "pages")}
    # A page only where the template has rows (its copy may also keep an empty one the
    # migrations left: sync_applying's).
    assert again["pages"] == [(table, 8192) for table in ("alembic_version", "sync_site")]
    assert set(again["pages"]) <= set(fresh["pages"])
    with psycopg.connect(libpq_url(first)) as conn:
        conn.execute("SET session_replication_role = replica")
        written = conn.execute("INSERT INTO security_events (occurred_at, event_type, severity, description, "
                               "details) VALUES (now(), 'x', 'info', 'synthetic', '{}') RETURNING id, ctid::text")
        assert written.fetchone() == (1, "(0,1)")      # the sequence's first value, the first page's first slot
    copies.give_back(second)


def test_a_connection_left_open_is_ended_before_the_database_is_put_back(copies):
    first = copies.take()
    fresh = _state(first)
    left = psycopg.connect(libpq_url(first))
    left.execute("INSERT INTO alembic_version VALUES ('synthetic')")   # uncommitted, holding its locks
    copies.give_back(first)
    copies.take()
    assert copies.take() == first
    assert _state(first)["rows"] == fresh["rows"]
    with pytest.raises(psycopg.OperationalError):
        left.execute("SELECT 1")
    left.close()


def test_a_database_whose_schema_a_test_changed_is_dropped_not_reused(copies):
    first = copies.take()
    with psycopg.connect(libpq_url(first), autocommit=True) as conn:
        conn.execute("ALTER TABLE security_events ADD COLUMN synthetic integer")
    copies.give_back(first)
    handed = {copies.take(), copies.take(), copies.take()}
    assert first not in handed
    copies.finishing[-1].result()
    with psycopg.connect(PG_DSN) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (first,)).fetchone()[0] == 0
