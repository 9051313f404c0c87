"""Writing a batch of rows into PostgreSQL through COPY.

A sync pass writes thousands of rows and their metadata per batch. As an executemany,
psycopg pipelines one INSERT ... ON CONFLICT per row and the server plans and runs each
(measured: about 45 µs a row for `sync_rows`); COPY into a temporary staging table and one
INSERT ... SELECT from it does the same work as one statement. Values go through each
column's SQLAlchemy bind processing first, so what is stored is exactly what the
executemany stored. SQLite keeps the executemany: its driver runs it in C.

COPY is binary where every column is of a kind whose values psycopg's dumper for the
column's PostgreSQL type takes as they come (`_BINARY_KINDS`): bytes then go as they
are, where text COPY spelled each byte as two hex digits for psycopg to write and the
server to read back, and UUIDs, integers and timestamps go as their fixed-width forms.
Measured on 2,000 clients and their sync metadata: 36-55 ms of this process's CPU in
text, 19-24 in binary. Other tables keep text COPY, where the server parses each value
as its column's type whatever Python type it came as.

The staging table lives as long as the connection (ON COMMIT DELETE ROWS empties it at
each commit; within a transaction it is emptied before each batch), so creating it costs
once per pooled connection. Its JSON columns are text, cast by the INSERT ... SELECT:
what is copied is the JSON text the column's bind processing made (or was given,
jsoncodec.Encoded), the same text either COPY format. The database role needs the
TEMPORARY privilege, which PostgreSQL grants to every role by default.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from psycopg.types.string import BytesBinaryDumper
from sqlalchemy import JSON, Boolean, Column, Connection, Date, Integer, LargeBinary, String, Table, Uuid, insert
from sqlalchemy.sql.elements import Null

from strongroom.core.db.jsoncodec import Encoded, loads, text_or
from strongroom.core.db.rawrows import OTHER, bind_rows
from strongroom.core.db.types import UTCDateTime

_TEXT_OID = 25
# Column types whose bind-processed values binary COPY takes through the dumper of the
# column's PostgreSQL type, with the types (oids) the column may have there, each one
# psycopg has a binary dumper for: strings (Enum included: varchar, text; not char,
# which it has none for), integers (bigint, integer, smallint), booleans,
# dates, aware datetimes (UTCDateTime refuses naive ones; timestamptz only), and
# exactly these three: UUIDs (as UUIDs, which SQLAlchemy's Uuid requires of a bind on
# SQLite too), bytes, and JSON (`copy_processor` makes it text, staged as text). A
# column of any other type, or of another type in the database than these (a schema
# that drifted), keeps its table in text COPY.
_BINARY_KINDS = ((String, {1043, 25}), (Integer, {20, 23, 21}), (Boolean, {16}), (Date, {1082}),
                 (UTCDateTime, {1184}))
_BINARY_EXACT = {Uuid: {2950}, LargeBinary: {17}, JSON: {_TEXT_OID}}


def _binary_ok(column: Column, oid: int | None) -> bool:
    """Whether binary COPY takes `column`'s values as they come, its type in the
    database being `oid` (JSON: as staged)."""
    exact = _BINARY_EXACT.get(type(column.type))
    if exact is not None:
        return oid in exact
    return any(isinstance(column.type, kind) and oid in oids for kind, oids in _BINARY_KINDS)


def upsert(conn: Connection, table: Table, keys: tuple[str, ...]):
    """INSERT ... ON CONFLICT (keys) DO UPDATE every other column, for either engine: one
    statement for a whole batch of new and changed rows (SQLAlchemy sends many rows per
    statement), where UPDATE would take one round trip per row."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(keys),
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys})


def _json_text(column_type: JSON, serializer: Callable[[object], str]) -> Callable[[object], str | None]:
    """SQLAlchemy's JSON bind processing, ending in the text instead of a psycopg Jsonb
    wrapper: the wrapper's dumper calls the same serializer (the dialect installs it on
    each connection), once per value from Python."""
    def process(value):
        if value is column_type.NULL:
            value = None
        elif isinstance(value, Null) or (value is None and column_type.none_as_null):
            return None
        return serializer(value)
    return process


def copy_processor(column: Column, dialect) -> Callable | None:
    """What a value of `column` goes through before COPY takes it: the column type's own
    bind processing, except where that only wraps the value for one of psycopg's
    Python-level dumpers. Bytes go as they are; JSON goes as the text the Jsonb
    wrapper's dumper would have written, and JSON text already encoded
    (jsoncodec.Encoded) as it is. Profiled: those two dumpers were a tenth of writing a
    batch of clients and their sync metadata (twelve binary and four JSON values a row)."""
    kind = type(column.type)
    if kind is LargeBinary:
        return None
    if kind is JSON:
        return text_or(_json_text(column.type, dialect._json_serializer or json.dumps))
    return column.type._cached_bind_processor(dialect)


@dataclass(frozen=True)
class _Stage:
    """A table's staging table on one connection: its columns' definitions (JSON as
    text), their type oids there, the casts back to JSON, and whether COPY is binary."""

    ddl: str
    oids: dict[str, int]
    casts: dict[str, str]
    binary: bool


def _stage_of(conn: Connection, cursor, table: Table) -> _Stage:
    """The staging table's shape for `table`, read from the catalogue once per pooled
    connection (kept in its `info`, which lives as long as the database connection)."""
    stages = conn.connection.info.setdefault("copy_stages", {})
    stage = stages.get(table.name)
    if stage is not None:
        return stage
    found = cursor.execute("SELECT attname, format_type(atttypid, atttypmod), atttypid FROM pg_attribute "
                           "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                           (f'"{table.name}"',)).fetchall()
    definitions, oids, casts = [], {}, {}
    for name, type_name, oid in found:
        if type_name in ("json", "jsonb"):
            casts[name] = type_name
            type_name, oid = "text", _TEXT_OID
        definitions.append(f'"{name}" {type_name}')
        oids[name] = oid
    binary = all(_binary_ok(c, oids.get(c.name)) for c in table.columns)
    stage = stages[table.name] = _Stage(", ".join(definitions), oids, casts, binary)
    return stage


def write_rows(conn: Connection, table: Table, rows: Sequence[Mapping], *, keys: tuple[str, ...] | None = None,
               ) -> None:
    """Insert `rows` (every column of `table` present in each) or, with `keys`, insert or
    update them by those key columns. Keys must be unique within `rows`."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        # SQLAlchemy encodes JSON itself: text already encoded goes to it decoded.
        rows = [{k: loads(v) if v.__class__ is Encoded else v for k, v in row.items()} for row in rows]
        conn.execute(insert(table) if keys is None else upsert(conn, table, keys), rows)
        return
    columns = [c for c in table.columns if c.name in rows[0]]
    names = [c.name for c in columns]
    processors = [copy_processor(c, conn.dialect) for c in columns]
    name = f"_stage_{table.name}"
    quoted = ", ".join(f'"{n}"' for n in names)
    cursor = conn.connection.driver_connection.cursor()
    try:
        stage = _stage_of(conn, cursor, table)
        cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{name}" ({stage.ddl}) ON COMMIT DELETE ROWS')
        cursor.execute(f'TRUNCATE "{name}"')
        if stage.binary:
            # bytea's default binary dumper is the DB-API Binary wrapper's, in Python;
            # bytes need only psycopg's own, in C (this cursor's adapters only).
            cursor.adapters.register_dumper(bytes, BytesBinaryDumper)
        with cursor.copy(f'COPY "{name}" ({quoted}) FROM STDIN' + (" (FORMAT BINARY)" if stage.binary else "")) as copy:
            if stage.binary:
                copy.set_types([stage.oids[n] for n in names])
            # Each row's values under `names`, processed, in one C call where built
            # (core.db.rawrows: every processor gets every value, None included).
            for values in bind_rows(rows, names, [None if p is None else (OTHER, p) for p in processors]):
                copy.write_row(values)
        selected = ", ".join(f'"{n}"::{stage.casts[n]}' if n in stage.casts else f'"{n}"' for n in names)
        statement = f'INSERT INTO "{table.name}" ({quoted}) SELECT {selected} FROM "{name}"'
        if keys is not None:
            updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names if n not in keys)
            target = ", ".join(f'"{k}"' for k in keys)
            statement += f" ON CONFLICT ({target}) DO UPDATE SET {updates}"
        cursor.execute(statement)
    finally:
        cursor.close()
