"""Walking a table a batch at a time (core.db.paging.stream), on both engines: every row
once, in order, in batches of at most the size asked; on PostgreSQL the next batch is
fetched by a helper thread while the caller works, which must change nothing the
caller can see: errors arrive in the caller, a caller that stops early leaves no thread
and a usable connection, and the caller may query the same connection between batches."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, literal, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice
from strongroom.core.db.paging import stream
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import create_practice

_practices = Practice.__table__


def helper_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "strongroom-fetch-ahead"]


@pytest.fixture
def practices(engine) -> list:
    with transaction(engine) as conn:
        return sorted(create_practice(conn, SYSTEM, f"Practice {n}") for n in range(23))


def test_every_row_once_in_order_in_bounded_batches(engine, practices):
    with transaction(engine, read_only=True) as conn:
        batches = list(stream(conn, select(_practices.c.id).order_by(_practices.c.id), size=5))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert [row[0] for batch in batches for row in batch] == practices
    assert helper_threads() == []


def test_the_caller_may_query_the_same_connection_between_batches(engine, practices):
    seen = []
    with transaction(engine, read_only=True) as conn:
        for batch in stream(conn, select(_practices.c.id).order_by(_practices.c.id), size=4):
            names = conn.execute(select(_practices.c.name).where(
                _practices.c.id.in_([row[0] for row in batch]))).scalars().all()
            assert len(names) == len(batch)
            seen += [row[0] for row in batch]
    assert seen == practices


def test_a_caller_that_stops_early_leaves_no_thread_and_a_usable_connection(engine, practices):
    with transaction(engine, read_only=True) as conn:
        batches = stream(conn, select(_practices.c.id).order_by(_practices.c.id), size=2)
        first = next(batches)
        batches.close()
        assert len(first) == 2 and helper_threads() == []
        assert conn.execute(select(func.count()).select_from(_practices)).scalar() == len(practices)


def test_an_error_met_while_fetching_ahead_is_raised_in_the_caller(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL fetches ahead (a server-side cursor on its own thread)")
    series = select(func.generate_series(1, 3000).label("n")).subquery()
    query = select((literal(1) / (series.c.n - 2500)).label("x")).select_from(series)
    got = 0
    with pytest.raises(Exception, match="division by zero"):
        with transaction(engine, read_only=True) as conn:
            for batch in stream(conn, query, size=100):
                got += len(batch)
    assert got < 2500 and helper_threads() == []


def test_importing_paging_leaves_psycopg_unloaded():
    """psycopg costs ~140 ms to import; a SQLite process (a file get reads paging through
    core.reconcile) must not pay it."""
    import subprocess
    import sys
    code = "import sys, strongroom.core.db.paging; print('psycopg' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
