"""Change bookkeeping shared by every syncable table.

`sync_version` comes from one database-wide counter (a PostgreSQL sequence, SQLite's
`change_counter` row), so "rows changed since snapshot/peer watermark W" is simply
`sync_version > W` on any table. `data_checksum` is SHA-256 over the stored row
(ciphertext included, local counters excluded) so integrity checks and sync can tell
a damaged or diverged row without decrypting it.

The digest is reproducible in SQL: PostgreSQL's sync-bypass triggers (migrations 0009,
0016, 0018) and the integrity check (core.jobs.integrity.pg_checksum_sql) compute the
same lines in PL/pgSQL, JSON columns through `strongroom_canonical_json` (migration
0018), which writes exactly what `canonical_json` writes here.
"""
from __future__ import annotations

import enum
import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Connection, text

from strongroom.core.db.pg import CHANGE_LOCK_KEY

try:        # the same checksums in C, where built (setup.py; core/repository/_canon.c)
    from strongroom.core.repository import _canon
except ImportError:      # no compiler where installed: _row_checksum below, same results
    _canon = None

_NOT_CHECKSUMMED = frozenset({"data_checksum", "sync_version"})


def next_change_version(conn: Connection) -> int:
    """Allocate the next change counter value inside the caller's transaction.

    On PostgreSQL, concurrent transactions could commit out of counter order, so an
    incremental backup reading `sync_version > W` might miss a version below W that was
    still uncommitted. Writers therefore hold CHANGE_LOCK_KEY shared until they commit,
    and a backup takes it exclusively while it opens its snapshot (core.jobs.backup).
    SQLite has one writer at a time and needs none of this.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": CHANGE_LOCK_KEY})
        return conn.execute(text("SELECT nextval('strongroom_change_seq')")).scalar_one()
    return conn.execute(text(
        "UPDATE change_counter SET value = value + 1 WHERE name = 'sync_version' RETURNING value"
    )).scalar_one()


def hold_tracking(conn: Connection) -> None:
    """Rows written in this transaction arrive exactly as saved (restore): the database's
    own change tracking (migration 0005: data_keys versions and no-delete guard) stands
    aside until the transaction ends. PostgreSQL: a transaction-local setting; SQLite,
    which has none: a marker row, removed by `resume_tracking` or by the rollback."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL strongroom.restoring = 'on'"))
    else:
        conn.execute(text("INSERT OR IGNORE INTO change_counter (name, value) VALUES ('restoring', 0)"))


def resume_tracking(conn: Connection) -> None:
    if conn.dialect.name != "postgresql":
        conn.execute(text("DELETE FROM change_counter WHERE name = 'restoring'"))


def current_change_version(conn: Connection) -> int:
    if conn.dialect.name == "postgresql":
        return conn.execute(text(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM strongroom_change_seq"
        )).scalar_one()
    return conn.execute(text("SELECT value FROM change_counter WHERE name = 'sync_version'")).scalar_one()


def _as_datetime(value: datetime) -> str:
    return "t:" + value.isoformat(timespec="microseconds")


def _json_number(value: int | float) -> str:
    """A number as plain decimal digits, no exponent, no trailing fractional zeros: what
    PostgreSQL's `trim_scale(numeric)::text` writes, so 1, 1.0 and 1.00 (which jsonb
    keeps as written) all read `1`, and 1e-07 reads `0.0000001`."""
    if isinstance(value, int):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("a JSON document cannot hold NaN or infinity")
    if value == 0:
        return "0"
    return format(Decimal(repr(value)).normalize(), "f")


def _json_parts(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (int, float)):
        out.append(_json_number(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _json_parts(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _json_parts(item, out)
        out.append("]")
    else:
        raise TypeError(f"a JSON document cannot hold a {type(value).__name__}")


def canonical_json(value: object) -> str:
    """One spelling of a JSON document whatever the engine gave back: keys sorted by code
    point (jsonb reorders them by length, SQLite keeps the writer's order), no spaces,
    non-ASCII as itself, numbers as `_json_number` writes them (the same as PostgreSQL
    for every number the engine's JSON reader returns exactly: integers within 64 bits,
    decimals within a double's precision). Checksums of JSON
    columns use it (before migration 0018 they used Python's repr, which depended on key
    order and which SQL could not reproduce)."""
    out: list[str] = []
    _json_parts(value, out)
    return "".join(out)


def _as_json(value: dict | list) -> str:
    return "j:" + canonical_json(value)


# The common types by exact type, checked first (checksums are computed for every row a
# backup, an integrity scan or a sync pass touches); the rest by isinstance below.
_BY_TYPE = {
    bytes: lambda v: "b:" + v.hex(),
    str: lambda v: "s:" + v,
    int: lambda v: "s:" + str(v),
    bool: lambda v: "i:" + str(int(v)),
    uuid.UUID: lambda v: "s:" + str(v),
    datetime: _as_datetime,
    date: lambda v: "s:" + str(v),
    dict: _as_json,    # JSON columns
    list: _as_json,
}


def _encoder_for(kind: type) -> Callable[[object], str]:
    """The encoding of values of `kind` not listed in _BY_TYPE (subclasses, enums)."""
    if issubclass(kind, (bytes, bytearray, memoryview)):
        return lambda v: "b:" + bytes(v).hex()
    if issubclass(kind, enum.Enum):
        return lambda v: "s:" + str(v.value)
    if issubclass(kind, datetime):
        return _as_datetime
    if issubclass(kind, (date, uuid.UUID)):
        return lambda v: "s:" + str(v)
    if issubclass(kind, bool):
        return lambda v: "i:" + str(int(v))
    if issubclass(kind, (dict, list)):
        return _as_json
    return lambda v: "s:" + str(v)


def _canonical(value: object) -> str:
    if value is None:
        return "~"
    fast = _BY_TYPE.get(type(value))
    if fast is None:
        # The branch depends on the type alone, so it is chosen once per type.
        fast = _BY_TYPE.setdefault(type(value), _encoder_for(type(value)))
    return fast(value)


@functools.lru_cache(maxsize=256)
def _checksummed(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(n for n in names if n not in _NOT_CHECKSUMMED))


def row_checksum(row: dict) -> str:
    """SHA-256 over the row's columns in name order, each as `name=<typed value>`.
    In C where built (_canon.checksum: the same text, spelled there for the common
    types and by `_canonical` for the rest)."""
    if _canon is not None:
        return _canon.checksum(row, _checksummed(tuple(row)), _canonical)
    return _row_checksum(row)


def _row_checksum(row: dict) -> str:
    canonical = _canonical
    body = "".join([f"{name}={canonical(row[name])}\n" for name in _checksummed(tuple(row))])
    return hashlib.sha256(body.encode()).hexdigest()
