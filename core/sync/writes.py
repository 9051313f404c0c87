"""A batch's rows written in one statement on either engine.

PostgreSQL goes through COPY (core.db.bulkwrite). On SQLite an executemany through
SQLAlchemy builds a parameter dictionary per row and runs its type processing on it
(profiled: about 7% of a pass's CPU, more than SQLite's own work of storing the rows).
Here the same processors (each column type's own bind processing, so what is stored is
exactly what SQLAlchemy would store) run over plain tuples, and the driver's executemany
takes them: one statement for the batch, as before.

JSON text read as it was stored (core.db.jsoncodec.Encoded, a version's dots and
hashes passing through a pass undecoded, core.sync.stamp.Meta) is written as it is.

Datetimes are the exception: UTCDateTime's processing and then SQLite's DATETIME
formatting (a %-format of a dict per value) cost about 30 µs a row of a session's four
(profiled: as much as SQLite's own work of storing the row). `_sqlite_utc` writes the
same text (tests/core/sync/test_writes.py compares the two). UUIDs and UTC datetimes
are bound in C where built (core.db.rawrows.bind_rows, the same text again), and the
rest by their types' processors.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from datetime import datetime, timezone

from sqlalchemy import JSON, Connection, Table, Uuid
from sqlalchemy.engine import Dialect

from strongroom.core.db import bulkwrite
from strongroom.core.db.jsoncodec import text_or
from strongroom.core.db.rawrows import OTHER, UTC, UUID, Kind, bind_rows
from strongroom.core.db.types import UTCDateTime

_UTC = timezone.utc


def _sqlite_utc(value: datetime | None) -> str | None:
    """What UTCDateTime and SQLite's DATETIME store for an aware datetime: its UTC wall
    time as `YYYY-MM-DD HH:MM:SS.ffffff`."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware UTC")
    if value.tzinfo is not _UTC:
        value = value.astimezone(_UTC)
    return value.isoformat(" ", "microseconds")[:26]


def write_rows(conn: Connection, table: Table, rows: Sequence[Mapping], *, keys: tuple[str, ...] | None = None,
               unchanged: Sequence[str] = ()) -> None:
    """Insert `rows` (every column of `table` present in each) or, with `keys`, insert or
    update them by those key columns. Keys must be unique within `rows`. `unchanged`:
    columns the caller knows hold, in every row that exists, the value they are given
    here; on SQLite the update does not set them, so the indexes over them are not
    rewritten (measured: 32 ms instead of 50 for 2,000 sessions, most of it those
    indexes). PostgreSQL writes a new row version and its index entries either way."""
    if not rows:
        return
    if conn.dialect.name != "sqlite" or len(rows[0]) != len(table.columns) or any(
            c.name not in rows[0] for c in table.columns):
        bulkwrite.write_rows(conn, table, rows, keys=keys)     # PostgreSQL, or defaults to fill
        return
    columns = list(table.columns)
    names = [c.name for c in columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    statement = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
    if keys is not None:
        updates = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n not in keys and n not in unchanged)
        statement += f" ON CONFLICT ({', '.join(chr(34) + k + chr(34) for k in keys)}) DO UPDATE SET {updates}"
    conn.exec_driver_sql(statement, bind_rows(rows, names, [_bind_kind(c.type, conn.dialect) for c in columns]))


def _bind_kind(kind, dialect: Dialect) -> Kind | None:
    """How a value of a column of this type is bound on SQLite (core.db.rawrows): UUIDs
    and UTC datetimes in C where built, the rest by the type's own processing."""
    if isinstance(kind, UTCDateTime):
        return UTC, _sqlite_utc
    process = kind._cached_bind_processor(dialect)
    if isinstance(kind, JSON):
        return OTHER, text_or(process)
    if process is None:
        return None
    if isinstance(kind, Uuid) and kind.as_uuid:
        return UUID, process
    return OTHER, process
