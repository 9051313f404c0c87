"""PostgreSQL COPY TEXT as the canonical backup segment format, on both engines.

On PostgreSQL a backup reads `COPY (SELECT <cols> FROM t ORDER BY id) TO STDOUT` and a
restore writes `COPY t (<cols>) FROM STDIN`, in a session set up with
`PG_SESSION_SETTINGS`. SQLite has no COPY, so this module renders SQLAlchemy rows into
the bytes PostgreSQL 15 would have printed for the same values, and parses such bytes
back into typed Python values for SQLAlchemy Core inserts. Byte identity is the point:
a restore drill re-encodes restored tables and compares per-table SHA-256 with the
manifest, whichever engine wrote the backup and whichever received the restore.

Rendering rules, each checked against a real PostgreSQL 15 server in
tests/core/backup/test_copytext_pg.py:

- NULL is `\\N`; fields are separated by TAB, rows end with LF.
- text/varchar (and non-native Enum columns: the enum's value): backslash, BS, TAB, LF,
  VT, FF and CR are escaped as `\\\\ \\b \\t \\n \\v \\f \\r`; every other character,
  other control characters and DEL included, is written as raw UTF-8.
- integer/bigint: decimal; boolean: `t`/`f`; uuid: lowercase with dashes.
- date: `YYYY-MM-DD` (year zero-padded to 4 digits).
- timestamptz: UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]+00`, fraction trailing zeros trimmed
  and omitted when zero.
- bytea: `\\\\x` + lowercase hex (hex output's `\\x`, COPY-escaped).
- JSON (JSONB on PostgreSQL): jsonb's text form -- object keys ordered shorter first,
  then bytewise by UTF-8; `", "` and `": "` separators; strings escaped as json.dumps
  with ensure_ascii=False does (which is what PostgreSQL's escape_json does); numbers
  as PostgreSQL numeric prints them: never an exponent, scale kept (`2.50`, `1e3` ->
  `1000`, `1e-5` -> `0.00001`), negative zero printed unsigned. Then COPY-escaped.

Restoring into PostgreSQL with `copy_in_sql`: run each COPY in a transaction scoped
like `set_scope(system=True)` -- the `strongroom.app` marker keeps the audit-bypass
triggers from writing audit rows for restored data (the restored audit_logs is the
chain), and system scope satisfies the RLS WITH CHECK. We prefer this over
`session_replication_role = replica`, which needs superuser and also silences the
foreign-key triggers, so a damaged backup could restore dangling references. But
PostgreSQL refuses COPY FROM on a table whose RLS applies to the role ("COPY FROM not
supported with row-level security", checked on 15), so the restoring role must be a
superuser or have BYPASSRLS. Self-references (backups.parent_id) are fine: foreign keys
are checked at the end of each COPY statement. Sequences (strongroom_change_seq and the
audit_logs / security_events identities) must be advanced after the load.

JSON columns are read for encoding as their stored *text* (see `select_for_copy`):
SQLAlchemy's JSON type returns None both for SQL NULL and for a stored JSON `null`,
which PostgreSQL prints differently (`\\N` vs `null`), and both occur in our tables.
"""
from __future__ import annotations

import binascii
import enum
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    Text,
    Uuid,
    cast,
    null,
    select,
)
from strongroom.core.errors import IntegrityError

# The session settings under which PostgreSQL's COPY output is the canonical format.
PG_SESSION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
)

NULL_FIELD = b"\\N"
_UTC = UTC
_ZERO = timedelta(0)

Encoder = Callable[[object], bytes]
Decoder = Callable[[bytes], object]


# --- columns -----------------------------------------------------------------------

def columns(table: Table) -> list[Column]:
    """The table's columns in declaration order: the segment's column list.

    Declaration order is stable for a schema version, so it is what the manifest records
    and what COPY's column list names on both sides.
    """
    return list(table.columns)


# Columns a snapshot never carries: the wrapped data keys. Erasure destroys a client's
# key; an immutable snapshot holding a KEK-unwrappable copy would undo it for anyone
# with the KEK or the recovery kit. The live keys travel in the repository's mutable
# key bag instead (core/backup/keybag.py), and restore fills them back in.
REDACTED: dict[str, frozenset[str]] = {"data_keys": frozenset({"wrapped_key"})}


def _redacted(table: Table, redact: bool) -> frozenset[str]:
    return REDACTED.get(table.name, frozenset()) if redact else frozenset()


def column_names(table_columns: Sequence[Column]) -> list[str]:
    return [c.name for c in table_columns]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def pg_session_sql() -> str:
    """The SET statements that make PostgreSQL's COPY output the canonical format."""
    return "; ".join(f"SET {name} = '{value}'" for name, value in PG_SESSION_SETTINGS)


def copy_out_sql(table: Table, *, after: tuple[str, int] | None = None,
                 key_range: tuple[str | None, str | None] | None = None, redact: bool = False) -> str:
    """`COPY (SELECT <cols> FROM t ORDER BY <pk>) TO STDOUT` in the canonical column order.

    Text keys sort with COLLATE "C" (bytewise, as SQLite's BINARY does), so both engines
    emit rows in the same order whatever the database's collation. `after=(column, n)`
    keeps only rows whose integer `column` exceeds n (incremental snapshots).
    `key_range=(low, high)` keeps low <= key < high (either end open when None), for a
    single-column uuid or integer key; the bounds are key texts as COPY writes them.
    `redact` writes NULL for the REDACTED columns (what a snapshot stores).
    """
    hidden = _redacted(table, redact)
    cols = ", ".join(f"NULL AS {_quote(c.name)}" if c.name in hidden else _quote(c.name)
                     for c in columns(table))
    order = ", ".join(_quote(c.name) + (' COLLATE "C"' if _kind(c) in ("text", "enum") else "")
                      for c in table.primary_key.columns)
    conditions = [f"{_quote(after[0])} > {int(after[1])}"] if after else []
    if key_range is not None:
        key = range_key(table)
        if key is None:
            raise ValueError(f"{table.name}: key ranges need a single uuid or integer key column")
        for op, bound in ((">=", key_range[0]), ("<", key_range[1])):
            if bound is not None:
                conditions.append(f"{_quote(key.name)} {op} {_key_literal(key, bound)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"COPY (SELECT {cols} FROM {_quote(table.name)}{where} ORDER BY {order}) TO STDOUT"


def range_key(table: Table) -> Column | None:
    """The table's key column when rows can be selected by key range: a single uuid or
    integer column (the kinds whose literal can be checked exactly)."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or _kind(keys[0]) not in ("uuid", "int"):
        return None
    return keys[0]


def first_key(table: Table, segment: bytes) -> str:
    """The key text of a segment's first row (segments start at a row start)."""
    key = range_key(table)
    position = [c.name for c in columns(table)].index(key.name)
    line = segment[:segment.index(b"\n")]
    return line.split(b"\t")[position].decode("ascii")


def _key_literal(key: Column, text: str) -> str:
    if _kind(key) == "uuid":
        return f"'{uuid.UUID(text)}'::uuid"
    return str(int(text))


def copy_in_sql(table: Table) -> str:
    """`COPY t (<cols>) FROM STDIN` in the canonical column order."""
    cols = ", ".join(_quote(c.name) for c in columns(table))
    return f"COPY {_quote(table.name)} ({cols}) FROM STDIN"


def select_for_copy(table: Table, *, after: tuple[str, int] | None = None, redact: bool = False) -> Select:
    """SELECT the table's columns in canonical order, ordered by primary key, ready for
    `encode_rows`: JSON columns come back as their stored text (None only for SQL NULL).
    `after` and `redact` as in `copy_out_sql`.
    """
    hidden = _redacted(table, redact)
    exprs = [null().label(c.name) if c.name in hidden
             else cast(c, Text).label(c.name) if _kind(c) == "json" else c for c in columns(table)]
    query = select(*exprs).order_by(*table.primary_key.columns)
    if after:
        query = query.where(table.c[after[0]] > int(after[1]))
    return query


def _kind(col: Column) -> str:
    """The COPY rendering family of a column's type; unknown types are refused up front."""
    t = col.type
    # Order matters: Enum is a String, UTCDateTime a TypeDecorator over DateTime.
    if isinstance(t, Enum):
        if t.enum_class is not None and not issubclass(t.enum_class, str):
            raise TypeError(f"{col.table.name}.{col.name}: only str-valued enums are supported")
        return "enum"
    impl = getattr(t, "impl", t)  # TypeDecorator
    if isinstance(t, JSON) or isinstance(impl, JSON):
        return "json"
    if isinstance(impl, Boolean):
        return "bool"
    if isinstance(impl, Integer):
        return "int"
    if isinstance(impl, Float):
        return "float"
    if isinstance(impl, Uuid):
        return "uuid"
    if isinstance(impl, DateTime):
        return "timestamptz"
    if isinstance(impl, Date):
        return "date"
    if isinstance(impl, LargeBinary):
        return "bytea"
    if isinstance(impl, String):
        return "text"
    raise TypeError(f"{col.table.name}.{col.name}: no COPY text rendering for {t!r}")


# --- encoding ------------------------------------------------------------------------

_TEXT_SPECIAL = re.compile("[\\\\\x08-\x0d]")
_TEXT_ESCAPES = {"\\": "\\\\", "\x08": "\\b", "\t": "\\t", "\n": "\\n",
                 "\x0b": "\\v", "\x0c": "\\f", "\r": "\\r"}


def _escape_match(m: re.Match) -> str:
    return _TEXT_ESCAPES[m.group()]


def _enc_text(value: str) -> bytes:
    # Most values need no escaping; one regex scan in C is cheaper than seven replaces.
    if _TEXT_SPECIAL.search(value) is None:
        return value.encode()
    return _TEXT_SPECIAL.sub(_escape_match, value).encode()


def _enc_int(value: int) -> bytes:
    return b"%d" % value


def _enc_bool(value: bool) -> bytes:
    return b"t" if value else b"f"


def _enc_float(value: float) -> bytes:
    """float8 as PostgreSQL 12+ writes it: the shortest digits that read back as the same
    double, exponent form below 1e-4 or from 1e15 (DBL_DIG), its special spellings."""
    if value != value:
        return b"NaN"
    if value in (float("inf"), float("-inf")):
        return b"Infinity" if value > 0 else b"-Infinity"
    if value == 0:
        return b"-0" if math.copysign(1.0, value) < 0 else b"0"
    sign, digits, exp = Decimal(repr(float(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    power = len(text) + exp - 1
    minus = "-" if sign else ""
    if power < -4 or power >= 15:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'+' if power >= 0 else '-'}{abs(power):02d}".encode()
    return (minus + format(Decimal(text).scaleb(exp), "f")).encode()


def _enc_uuid(value: uuid.UUID) -> bytes:
    return str(value).encode()


def _enc_date(value: date) -> bytes:
    return value.isoformat().encode()


def _enc_timestamptz(value: datetime) -> bytes:
    if value.tzinfo is not _UTC:
        if value.utcoffset() is None:
            raise ValueError("naive datetime")
        value = value.astimezone(_UTC)
    text = value.isoformat(" ")[:-6]  # drop "+00:00"
    if value.microsecond:
        text = text.rstrip("0")
    return (text + "+00").encode()


def _enc_bytea(value: bytes) -> bytes:
    return b"\\\\x" + binascii.hexlify(value)


def _enc_json(value: str) -> bytes:
    # `value` is the stored JSON document text (see select_for_copy), parsed with
    # Decimal numbers so that "2.50" keeps its scale the way jsonb's numeric does.
    return _enc_text(render_jsonb(json.loads(value, parse_float=Decimal)))


_ENCODERS: dict[str, Encoder] = {
    "text": _enc_text, "enum": _enc_text,  # str-valued enum members are str instances
    "int": _enc_int, "bool": _enc_bool, "uuid": _enc_uuid, "date": _enc_date,
    "timestamptz": _enc_timestamptz, "bytea": _enc_bytea, "json": _enc_json, "float": _enc_float,
}


def _jsonb_key(key: str) -> tuple[int, bytes]:
    raw = key.encode()
    return len(raw), raw


def _render_number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError("JSON number is not finite")
    if value.is_zero():
        value = abs(value)  # numeric has no negative zero
    return format(value, "f")


def _render(value: object, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_render_number(Decimal(repr(value))))
    elif isinstance(value, Decimal):
        out.append(_render_number(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        first = True
        for key in sorted(value, key=_jsonb_key):
            if not isinstance(key, str):
                raise TypeError("JSON object key is not a string")
            if not first:
                out.append(", ")
            first = False
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(": ")
            _render(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _render(item, out)
        out.append("]")
    else:
        raise TypeError(f"not a JSON value: {type(value).__name__}")


def render_jsonb(value: object) -> str:
    """A JSON value as PostgreSQL's jsonb prints it (before COPY escaping).

    Used for values that never went through PostgreSQL: keys shorter-first then
    bytewise, `, `/`: ` separators, numbers as numeric prints them.
    """
    out: list[str] = []
    _render(value, out)
    return "".join(out)


_ENCODER_CACHE: dict[tuple[Column, ...], tuple[Encoder, ...]] = {}


def encoders(table_columns: Sequence[Column]) -> tuple[Encoder, ...]:
    """One encoder per column, resolved once per column list rather than per value."""
    key = tuple(table_columns)
    found = _ENCODER_CACHE.get(key)
    if found is None:
        found = _ENCODER_CACHE[key] = tuple(_ENCODERS[_kind(c)] for c in key)
    return found


def _encode_error(table_columns: Sequence[Column], line: int, index: int) -> IntegrityError:
    col = table_columns[index]
    return IntegrityError(f"{col.table.name}: row {line}, column {col.name}: "
                          "value cannot be encoded as COPY text")


def encode_row(table_columns: Sequence[Column], row: Mapping[str, object]) -> bytes:
    """One COPY text line (with its LF) for a row given by column name."""
    return encode_rows(table_columns, ([row[c.name] for c in table_columns],))


def _compile_row_encoder(encs: tuple[Encoder, ...]) -> Callable[[Sequence[object]], bytes]:
    """Build `row -> line` for one column list as straight-line code.

    The generated function unpacks the row once and calls each column's encoder inline,
    so the hot loop pays no per-value loop or dispatch overhead. Only indexes appear in
    the source (never a column or table name), so nothing from the schema is executed.
    """
    n = len(encs)
    names = ", ".join(f"v{i}" for i in range(n)) + ("," if n == 1 else "")
    fields = ", ".join(f"N if v{i} is None else e{i}(v{i})" for i in range(n))
    source = (f"def encode(row):\n"
              f"    {names} = row\n"
              f"    return TAB.join(({fields},))\n")
    scope: dict[str, object] = {f"e{i}": enc for i, enc in enumerate(encs)}
    scope |= {"N": NULL_FIELD, "TAB": b"\t"}
    exec(compile(source, "<copytext row encoder>", "exec"), scope)  # noqa: S102 -- indexes only
    return scope["encode"]  # type: ignore[return-value]


_ROW_ENCODER_CACHE: dict[tuple[Column, ...], Callable[[Sequence[object]], bytes]] = {}


def row_encoder(table_columns: Sequence[Column]) -> Callable[[Sequence[object]], bytes]:
    """The compiled `row -> COPY line (without its LF)` function for a column list."""
    key = tuple(table_columns)
    found = _ROW_ENCODER_CACHE.get(key)
    if found is None:
        found = _ROW_ENCODER_CACHE[key] = _compile_row_encoder(encoders(key))
    return found


def _locate_encode_error(table_columns: Sequence[Column], row: Sequence[object],
                         line: int) -> IntegrityError:
    """Re-run a failed row column by column to name the column (never the value)."""
    table = table_columns[0].table.name
    if len(row) != len(table_columns):
        return IntegrityError(f"{table}: row {line}: expected {len(table_columns)} columns, "
                              f"got {len(row)}")
    for index, (enc, value) in enumerate(zip(encoders(table_columns), row)):
        if value is None:
            continue
        try:
            enc(value)
        except (ValueError, TypeError, AttributeError, UnicodeError, OverflowError):
            return _encode_error(table_columns, line, index)
    return IntegrityError(f"{table}: row {line}: value cannot be encoded as COPY text")


def encode_rows(table_columns: Sequence[Column], rows: Iterable[Sequence[object]], *,
                first_line: int = 1) -> bytes:
    """COPY text for rows given as sequences in `table_columns` order (SQLAlchemy `Row`s
    from `select_for_copy` qualify); JSON values as document text.

    Rows are positional because the backup's hot loop reads millions of them: a compiled
    per-table row encoder (see `row_encoder`) keeps the per-value cost to one call.
    """
    encode = row_encoder(table_columns)
    out: list[bytes] = []
    append = out.append
    for row in rows:
        try:
            append(encode(row))
        except (ValueError, TypeError, AttributeError, UnicodeError, OverflowError):
            # The exception text may quote the value: never chain it.
            raise _locate_encode_error(table_columns, row, first_line + len(out)) from None
    if not out:
        return b""
    append(b"")  # the last line's LF; joining once avoids copying every line to add it
    return b"\n".join(out)


# --- decoding ------------------------------------------------------------------------

_UNESCAPES = {"\\": "\\", "b": "\x08", "t": "\t", "n": "\n", "v": "\x0b", "f": "\x0c", "r": "\r"}
_ESCAPED = re.compile(r"\\(.?)", re.DOTALL)


def _unescape_match(m: re.Match) -> str:
    # PostgreSQL output only ever uses these seven; anything else means the stream was
    # not written by COPY TO / encode_rows (octal and \x forms included).
    return _UNESCAPES[m.group(1)]


def _dec_text(field: bytes) -> str:
    value = field.decode()
    if "\\" in value:
        value = _ESCAPED.sub(_unescape_match, value)
    return value


_INT = re.compile(rb"-?[0-9]+")


def _dec_int(field: bytes) -> int:
    if _INT.fullmatch(field) is None:
        raise ValueError("not an integer")
    return int(field)


_FLOAT = re.compile(rb"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?|NaN|-?Infinity")


def _dec_float(field: bytes) -> float:
    if _FLOAT.fullmatch(field) is None:
        raise ValueError("not a number")
    return float(field.decode())


def _dec_bool(field: bytes) -> bool:
    if field == b"t":
        return True
    if field == b"f":
        return False
    raise ValueError("not a boolean")


def _dec_uuid(field: bytes) -> uuid.UUID:
    if len(field) != 36:
        raise ValueError("not a uuid")
    return uuid.UUID(field.decode("ascii"))


_DATE = re.compile(rb"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _dec_date(field: bytes) -> date:
    if _DATE.fullmatch(field) is None:
        raise ValueError("not a date")
    return date.fromisoformat(field.decode("ascii"))


_TIMESTAMP = re.compile(
    rb"([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?\+00")


def _dec_timestamptz(field: bytes) -> datetime:
    m = _TIMESTAMP.fullmatch(field)
    if m is None:
        raise ValueError("not a UTC timestamp")
    y, mo, d, h, mi, s, frac = m.groups()
    micro = int(frac.ljust(6, b"0")) if frac else 0
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=_UTC)


def _dec_bytea(field: bytes) -> bytes:
    if not field.startswith(b"\\\\x"):
        raise ValueError("not hex bytea")
    return binascii.unhexlify(field[3:])


def _dec_json(field: bytes) -> object:
    return json.loads(_dec_text(field))


def _enum_decoder(enum_class: type[enum.Enum] | None) -> Decoder:
    if enum_class is None:
        return _dec_text

    def decode(field: bytes) -> object:
        return enum_class(_dec_text(field))
    return decode


_DECODERS: dict[str, Decoder] = {
    "text": _dec_text, "int": _dec_int, "bool": _dec_bool, "uuid": _dec_uuid,
    "date": _dec_date, "timestamptz": _dec_timestamptz, "bytea": _dec_bytea,
    "json": _dec_json, "float": _dec_float,
}


def decoders(table_columns: Sequence[Column]) -> tuple[Decoder, ...]:
    out = []
    for col in table_columns:
        kind = _kind(col)
        out.append(_enum_decoder(col.type.enum_class) if kind == "enum" else _DECODERS[kind])
    return tuple(out)


def _null_values(table_columns: Sequence[Column]) -> tuple[object, ...]:
    # SQLAlchemy's JSON type stores Python None as the JSON document `null`; SQL NULL
    # must be passed as the null() construct.
    return tuple(null() if _kind(c) == "json" else None for c in table_columns)


def decode_lines(table_columns: Sequence[Column], data: bytes, *,
                 first_line: int = 1) -> Iterator[dict]:
    """Parse COPY text into dicts of Python values ready for a SQLAlchemy Core insert.

    Values: str, enum member, int, bool, uuid.UUID, date, aware UTC datetime, bytes, and
    for JSON columns the parsed value -- where JSON `null` is None (stored as JSON null)
    and SQL NULL is `sqlalchemy.null()` (stored as SQL NULL). Errors name the table,
    line (counted from `first_line`) and column, never the value.
    """
    if not data:
        return
    table = table_columns[0].table.name
    names = column_names(table_columns)
    decs = decoders(table_columns)
    nulls = _null_values(table_columns)
    width = len(names)
    triples = tuple(zip(names, decs, nulls))
    lines = data.split(b"\n")
    if lines[-1] != b"":
        raise IntegrityError(f"{table}: line {first_line + len(lines) - 1}: truncated (no newline)")
    del lines[-1]
    for number, line in enumerate(lines, first_line):
        fields = line.split(b"\t")
        if len(fields) != width:
            raise IntegrityError(f"{table}: line {number}: expected {width} columns, got {len(fields)}")
        row = {}
        for (name, dec, null_value), field in zip(triples, fields):
            if field == NULL_FIELD:
                row[name] = null_value
                continue
            try:
                row[name] = dec(field)
            except KeyError:
                raise IntegrityError(f"{table}: line {number}, column {name}: bad escape") from None
            except (ValueError, TypeError, UnicodeError, OverflowError, binascii.Error):
                raise IntegrityError(f"{table}: line {number}, column {name}: bad value") from None
        yield row
