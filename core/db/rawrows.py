"""Values to and from SQLite's stored text, made the cheap way, for sync's bulk reads
and writes (and the rows of PostgreSQL's COPY, core.db.bulkwrite).

Why: a sync pass reads rows from SQLite by the thousand (the sender's batches, the
receiver's own versions of them), and SQLAlchemy's per-value result processing was
most of what that cost. On a read of 2,000 sessions' versions (seven columns and
their metadata), SQLite's own work and the driver's fetch took 5.8 ms and the whole
read 25 ms: a UUID went through `uuid.UUID(hex)` (its Python `__init__`, about a
microsecond), an aware datetime through two processors and a TypeDecorator call. With
the C module (gc paused, as a pass runs): 13 ms for that read, 19 ms for a whole batch
where it was 36; binding 2,000 sessions for SQLite 3.4 ms where it was 15.7.

What: the columns are selected untyped (`raw`), `read_kinds` says how each column's
values are made, and `typed_rows` makes them, with the same results as SQLAlchemy's
processors (the tests compare them): UUIDs and UTC datetimes in C where built
(core/db/_rows.c), or here in Python, a UUID from its integer without `UUID.__init__`
and a datetime from one `fromisoformat` call; every other type through SQLAlchemy's own
processor. `bind_rows` is the other way, for writes (core.sync.writes).

A kind is None (the value as it is) or (code, fallback): UUID or UTC for the two kinds
converted in C, OTHER for the rest; `fallback` is the Python function that converts any
value, and the only one that runs without the C module or for a value the C code does
not take as it is (a subclass, another zone, another spelling). None stays None for
UUID and UTC; OTHER's fallback takes every value, None included, as SQLAlchemy's
processors do (JSON binds None as the text null).
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Uuid, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.types import NullType

from strongroom.core.db.types import UTCDateTime

try:        # the same conversions in C, where built (setup.py; core/db/_rows.c)
    from strongroom.core.db import _rows
except ImportError:      # no compiler where installed: the fallbacks, same results
    _rows = None

OTHER, UUID, UTC = 0, 1, 2
Kind = tuple[int, Callable[[Any], Any]]

_UTC = timezone.utc
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown
_fromisoformat = datetime.fromisoformat


def uuid_of_int(value: int) -> uuid.UUID:
    """The UUID with this integer, made as UUID.__setstate__ makes one, without its
    Python-level calls (`uuid.UUID(int=...)` checks and converts; an integer read from
    a UUID needs neither)."""
    made = _new(uuid.UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _UNKNOWN)
    return made


def uuid_of_hex(value: str) -> uuid.UUID:
    """The UUID SQLite stores as 32 hex digits (SQLAlchemy's Uuid on SQLite); any other
    spelling goes to `uuid.UUID`, which takes braces and dashes (and refuses what it
    refuses). For 32 characters `uuid.UUID` itself is `int(value, 16)`."""
    if len(value) == 32:
        return uuid_of_int(int(value, 16))
    return uuid.UUID(value)


def utc_of_text(value: str) -> datetime:
    """An aware UTC datetime from SQLite's text, as SQLAlchemy's DateTime on SQLite
    (`fromisoformat`) and then UTCDateTime (naive means UTC) make it."""
    moment = _fromisoformat(value)
    return moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)


def raw(column) -> Any:
    """`column` selected without SQLAlchemy's result processing (the same SQL)."""
    return type_coerce(column, NullType())


def read_kinds(columns: Sequence, dialect: Dialect) -> list[Kind | None]:
    """How the values stored for each of `columns` (typed column expressions, in the
    order selected) are made on `dialect`."""
    out: list[Kind | None] = []
    for column in columns:
        kind = column.type
        if isinstance(kind, Uuid) and kind.as_uuid and not (dialect.supports_native_uuid and kind.native_uuid):
            out.append((UUID, uuid_of_hex))
        elif isinstance(kind, UTCDateTime) and dialect.name == "sqlite":
            out.append((UTC, utc_of_text))
        else:
            process = kind._cached_result_processor(dialect, None)
            out.append(None if process is None else (OTHER, process))
    return out


def _plan(kinds: Sequence[Kind | None]) -> list[tuple[int, int, Callable[[Any], Any]]]:
    return [(position, *kind) for position, kind in enumerate(kinds) if kind is not None]


def _converted(values: list, plan: list[tuple[int, int, Callable[[Any], Any]]]) -> list:
    """`values` converted in place by the kinds' fallbacks (the C module's rule for None)."""
    for position, code, make in plan:
        if (value := values[position]) is not None or code == OTHER:
            values[position] = make(value)
    return values


def typed_rows(records: Sequence[Sequence], kinds: Sequence[Kind | None]) -> list[list]:
    """A list per record of its values made by `kinds`."""
    if _rows is not None:
        return _rows.typed_rows(records, len(kinds), kinds)
    plan = _plan(kinds)
    return [_converted(list(record), plan) for record in records]


def bind_rows(rows: Sequence[Mapping], names: Sequence[str], kinds: Sequence[Kind | None]) -> list[tuple]:
    """A tuple per row of its values under `names`, bound by `kinds` (fallbacks: the
    column types' bind processing)."""
    if _rows is not None:
        return _rows.bind_rows(rows, names, kinds)
    plan = _plan(kinds)
    return [tuple(_converted([row[name] for name in names], plan)) for row in rows]
