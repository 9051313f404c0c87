"""core.db.engine: statements that ask for binary results (BINARY_RESULTS, sync's bulk
reads on PostgreSQL) load the same values, of the same types, as text results."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import BINARY_RESULTS, transaction
from strongroom.core.db.models import SyncRow
from strongroom.core.sync.tables import synced


def test_binary_results_load_what_text_results_load(first_site, join_site):
    """Every synced table, and the sync metadata (JSON), after a first pass."""
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("binary results are PostgreSQL's")
    join_site("laptop").sync(first_site)
    with transaction(first_site.engine, read_only=True) as conn:
        for table in [spec.table for spec in synced()] + [SyncRow.__table__]:
            query = select(table).order_by(*table.primary_key.columns)
            as_text = [tuple(r) for r in conn.execute(query).all()]
            as_binary = [tuple(r) for r in conn.execute(query.execution_options(**{BINARY_RESULTS: True})).all()]
            assert as_binary == as_text, table.name
            assert [[type(v) for v in r] for r in as_binary] == [[type(v) for v in r] for r in as_text], table.name
            if table.name in ("clients", "therapy_sessions", "sync_rows"):
                assert as_text, f"{table.name}: nothing to compare"


def test_only_the_statements_that_ask_get_binary_results(first_site):
    """Every other statement keeps text results (what the rest of the code was written
    and tested against)."""
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("binary results are PostgreSQL's")
    formats = []
    from sqlalchemy import event

    def seen(conn, cursor, statement, parameters, context, executemany):
        formats.append(cursor.pgresult.fformat(0) if cursor.pgresult is not None else None)

    event.listen(first_site.engine, "after_cursor_execute", seen)
    try:
        with transaction(first_site.engine, read_only=True) as conn:
            conn.execute(select(synced()[0].table.c.id).limit(1).execution_options(**{BINARY_RESULTS: True})).all()
            conn.execute(select(synced()[0].table.c.id).limit(1)).all()
    finally:
        event.remove(first_site.engine, "after_cursor_execute", seen)
    assert formats[-2:] == [1, 0]
