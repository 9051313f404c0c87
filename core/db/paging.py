"""Keyset paging: walk a whole table in primary-key order, one bounded batch at a time.

Verifications and scans run over millions of rows; OFFSET paging re-reads everything
before each page and a single SELECT holds it all in memory. Keyset paging does neither.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import ColumnElement, Connection, RowMapping, Table, select


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
