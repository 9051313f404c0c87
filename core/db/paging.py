"""Keyset paging: walk a whole table in primary-key order, one bounded batch at a time.

Verifications and scans run over millions of rows; OFFSET paging re-reads everything
before each page and a single SELECT holds it all in memory. Keyset paging does neither.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, Connection, Row, RowMapping, Select, Table, select


def batches(conn: Connection, table: Table, *, size: int,
            where: ColumnElement[bool] | None = None) -> Iterator[Sequence[RowMapping]]:
    """Rows of `table` (those matching `where`, if given) ordered by its `id`, in lists
    of at most `size`."""
    key = table.c.id
    last = None
    while True:
        query = select(table).order_by(key).limit(size)
        if where is not None:
            query = query.where(where)
        if last is not None:
            query = query.where(key > last)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        yield rows
        last = rows[-1]["id"]


def stream(conn: Connection, query: Select, *, size: int) -> Iterator[Sequence[Row]]:
    """The rows of one `query`, in lists of at most `size`, from a single statement: a
    server-side cursor on PostgreSQL (rows arrive `size` at a time, memory stays at one
    batch), the driver's own cursor on SQLite. Keyset paging (`batches`) re-plans a
    query per batch; a bulk reader that holds one transaction open anyway needs only
    one. Rows are tuples in the query's column order, the cheapest to read in a loop."""
    # Per statement: Connection.execution_options would change the connection itself, and
    # every later statement on it (the keys, an audit INSERT) would become a cursor too.
    result = conn.execute(query, execution_options={"yield_per": size})
    try:
        yield from result.partitions(size)
    finally:
        result.close()
