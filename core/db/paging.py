"""Walking a whole table one bounded batch at a time.

Verifications and scans run over millions of rows; OFFSET paging re-reads everything
before each page and a single SELECT holds it all in memory. Keyset paging (`batches`,
a query per batch, each in its own short read) does neither; `stream` (one statement
through a server-side cursor) does neither either, for readers inside one transaction.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import psycopg
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
    with _binary_results(conn):
        result = conn.execute(query, execution_options={"yield_per": size})
    try:
        yield from result.partitions(size)
    finally:
        result.close()


class _BinaryServerCursor(psycopg.ServerCursor):
    """A server-side cursor whose results come in PostgreSQL's binary format: bytea as
    its bytes, not hex text twice the size to decode (measured: half the client CPU of
    reading 300k sessions with 1.5 KB notes). The loaders give the same Python values."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.format = psycopg.pq.Format.BINARY


@contextlib.contextmanager
def _binary_results(conn: Connection) -> Iterator[None]:
    """While the statement is sent, server-side cursors of this connection read binary."""
    driver = conn.connection.driver_connection if conn.dialect.driver == "psycopg" else None
    if not isinstance(driver, psycopg.Connection):
        yield
        return
    previous = driver.server_cursor_factory
    driver.server_cursor_factory = _BinaryServerCursor
    try:
        yield
    finally:
        driver.server_cursor_factory = previous
