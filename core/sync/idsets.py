"""`column IN (a batch of ids)` as one bound value rather than one per id.

A pass asks "which of these 2000 ids ..." several times per batch. Written as an IN list,
each id is its own parameter: SQLAlchemy renders and binds 2000 of them, and psycopg
parses a query text too long for its cache on every call (measured: about a tenth of a
pass's time, spread over those questions). As one value, the statement text is the same
whatever the batch size: PostgreSQL gets `= ANY(uuid[])`, SQLite an IN over
`json_each(<JSON array>)` of the ids as it stores them.

On PostgreSQL a list of UUIDs goes as the text of the array (`{hex,hex,...}`, cast to
uuid[] by the server, which parses the same text either way): psycopg's list dumper
calls a Python-level dumper per element, about 1.5 µs an id (profiled: a quarter of
asking for a batch's key records); the text costs about 0.3 µs. The text is bound
untyped, straight into `CAST(... AS uuid[])`, so the server takes the parameter as a
uuid[] and parses it once. Bound as text (`CAST($1::VARCHAR AS uuid[])`), the cast
was part of the condition and was made again for every row a scan of the whole table
tested: a small table is read that way rather than by index, and asking a new site's
2,000 data keys about a batch's 2,000 keys took 2.7 s instead of 6 ms.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable

from sqlalchemy import Connection, any_, bindparam, cast, func, select, type_coerce
from sqlalchemy.types import NullType, String, Uuid


def among(conn: Connection, column, ids: Iterable):
    """A condition: `column` holds one of `ids` (a list, set or any iterable)."""
    values = list(ids)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY
        if isinstance(column.type, Uuid) and all(v.__class__ is uuid.UUID for v in values):
            text = "{" + ",".join([v.hex for v in values]) + "}"
            return column == any_(cast(bindparam(None, text, type_=NullType()), ARRAY(column.type)))
        return column == any_(bindparam(None, values, type_=ARRAY(column.type)))
    process = column.type._cached_bind_processor(conn.dialect)
    if process is not None:
        values = [process(v) for v in values]
    each = func.json_each(bindparam(None, json.dumps(values), type_=String)).table_valued("value")
    return column.in_(select(each.c.value))


def held(conn: Connection, column, ids: Iterable) -> set:
    """Which of `ids` (UUIDs) `column` holds, as the objects given, in one query. On SQLite
    the ids come back as the hex text it stores and are matched to the ones asked about:
    no UUID made per row (a batch asks this of up to 2000 clients and keys, and making
    them, through a result iterated row by row, was most of its cost)."""
    wanted = [i for i in set(ids) if i is not None]
    if not wanted:
        return set()
    if conn.dialect.name == "sqlite":
        by_hex = {i.hex: i for i in wanted}
        found = conn.execute(select(type_coerce(column, String)).where(among(conn, column, wanted))).scalars().all()
        return {by_hex[h] for h in found if h in by_hex}
    return set(conn.execute(select(column).where(among(conn, column, wanted))).scalars().all())
