"""Writing a batch of rows into PostgreSQL through COPY.

A sync pass writes thousands of rows and their metadata per batch. As an executemany,
psycopg pipelines one INSERT ... ON CONFLICT per row and the server plans and runs each
(measured: about 45 µs a row for `sync_rows`); COPY into a temporary staging table and one
INSERT ... SELECT from it does the same work as one statement. Values go through each
column's SQLAlchemy bind processing first, so what is stored is exactly what the
executemany stored. SQLite keeps the executemany: its driver runs it in C.

The staging table lives as long as the connection (ON COMMIT DELETE ROWS empties it at
each commit; within a transaction it is emptied before each batch), so creating it costs
once per pooled connection. The database role needs the TEMPORARY privilege, which
PostgreSQL grants to every role by default.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import JSON, Column, Connection, LargeBinary, Table, insert
from sqlalchemy.sql.elements import Null

from strongroom.core.db.jsoncodec import Encoded, loads, text_or


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
    Python-level dumpers. Bytes go as they are (psycopg's C dumper writes them as the
    Binary wrapper's would); JSON goes as the text the Jsonb wrapper's dumper would have
    written, and JSON text already encoded (jsoncodec.Encoded) as it is. Profiled: those
    two dumpers were a tenth of writing a batch of clients and their sync metadata
    (twelve binary and four JSON values a row)."""
    kind = type(column.type)
    if kind is LargeBinary:
        return None
    if kind is JSON:
        return text_or(_json_text(column.type, dialect._json_serializer or json.dumps))
    return column.type._cached_bind_processor(dialect)


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
    stage = f"_stage_{table.name}"
    quoted = ", ".join(f'"{n}"' for n in names)
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(f'CREATE TEMP TABLE IF NOT EXISTS "{stage}" (LIKE "{table.name}") ON COMMIT DELETE ROWS')
        cursor.execute(f'TRUNCATE "{stage}"')
        with cursor.copy(f'COPY "{stage}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([value if process is None else process(value)
                                for value, process in zip([row[n] for n in names], processors)])
        statement = f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM "{stage}"'
        if keys is not None:
            updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names if n not in keys)
            target = ", ".join(f'"{k}"' for k in keys)
            statement += f" ON CONFLICT ({target}) DO UPDATE SET {updates}"
        cursor.execute(statement)
    finally:
        cursor.close()
