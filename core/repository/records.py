"""Bulk reads: clinical rows a batch at a time, PHI decrypted with each row's data key
and masked unless the reader may and wants to see it in full.

The single-record reads (clients.get_client) serve people looking at one client; this
serves whatever walks many rows: exports, `clients list`, integrity scans, sync views.
A whole walk is one statement, read through a server-side cursor on PostgreSQL, and
each row arrives with the record of its data key (a join on `key_id`): a batch's keys
are unwrapped once each (`Keyring.batch_keys`) and held for that batch only; on
PostgreSQL the key ids come as their 16 bytes (uuid_send), so no UUID object is made
per row or key. Fields sealed with another key than their row's (none, unless
something wrote around the repository) cost one more query for their column. Per field
there is one AES-GCM open: no UUID object, no statement, no cache churn. (Measured at 100k clients: one key query per client was two
thirds of an export's time; see bench/export.py.)

Nothing here holds more than one batch, and nothing it raises names a value: fields by
name, rows by id.
"""
from __future__ import annotations

import enum
import functools
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

from cryptography.exceptions import InvalidTag
from sqlalchemy import (JSON, Column, ColumnElement, Connection, Date, DateTime, Enum, LargeBinary, String, Uuid, select,
                        type_coerce)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from strongroom.core.bulk import collector_paused, heap_frozen
from strongroom.core.crypto.fields import FORMAT_VERSION, MIN_CIPHERTEXT
from strongroom.core.crypto.keyring import KEY_RECORD, BatchKeys, Keyring, with_keys
from strongroom.core.db.encrypted import CLIENT_KEYED, column
from strongroom.core.db.models import Client, ClientFile, Service, Staff, TherapySession
from strongroom.core.db.paging import stream
from strongroom.core.db.types import UTCDateTime
from strongroom.core.errors import CryptoError, KeyUnavailableError, PermissionDenied
from strongroom.core.masking import RULES, mask_field
from strongroom.core.principal import Principal

try:
    from strongroom.core.repository import _text
except ImportError:         # not built here (no C compiler): the comprehensions print the same
    _text = None

ERASED = "[erased]"
_VERSION_BYTE = bytes([FORMAT_VERSION])
# The tables read in bulk (exports): the clinical ones, then the practice's staff and
# service catalogue, which hold no client's data (no PHI, no client key).
MODELS = {"clients": Client, "therapy_sessions": TherapySession, "client_files": ClientFile,
          "staff": Staff, "services": Service}


def plain_value(value: object) -> object:
    """A column value as JSON-ready data: enums by value, ids and dates as ISO text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def plain_converter(col: Column) -> Callable[[object], object] | None:
    """`plain_value` decided once per column from its type instead of once per value
    (None: the value is already plain). Same results, a fraction of the calls."""
    kind = col.type
    if isinstance(kind, Uuid):
        return lambda v: None if v is None else str(v)
    if isinstance(kind, (Date, DateTime)) or isinstance(getattr(kind, "impl", None), (Date, DateTime)):
        return lambda v: None if v is None else v.isoformat()
    if isinstance(kind, Enum) and kind.enum_class is not None:
        return lambda v: None if v is None else v.value
    python_type = _python_type(col)
    if python_type in (int, str, bool, float, bytes):
        return None
    return plain_value


def json_text(value: object) -> str | None:
    """A list or map column (staff's working hours, say) as compact JSON text with sorted
    keys: one value that every export format carries alike (a CSV cell, an XML element
    the schema calls a string) and that reads back with any JSON parser."""
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _utc_iso(value: datetime) -> str:
    """UTCDateTime's reading (naive from SQLite means UTC) as ISO text. A value already at
    offset zero prints the same whatever its tzinfo object (PostgreSQL's Etc/UTC comes
    as a ZoneInfo), so only another offset pays for a conversion."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc).isoformat()
    if value.tzinfo is timezone.utc or not value.utcoffset():
        return value.isoformat()
    return value.astimezone(timezone.utc).isoformat()


def _python_type(col: Column) -> type | None:
    try:
        return col.type.python_type
    except NotImplementedError:
        return None


def require_read(principal: Principal, table: str) -> None:
    if not principal.can(f"table:{table}:read"):
        raise PermissionDenied(f"{principal.actor} lacks permission table:{table}:read")


# --- values made text a column at a time -----------------------------------------------
# A bulk reader prints ids, dates and times as text. Made text one value at a time, a
# UUID costs a Python call to print and a datetime three (measured at 300k sessions:
# about a fifth of an export's client time). On PostgreSQL ids and enums come as text
# from the server (uuid_out is cheap there), times as naive UTC (`AT TIME ZONE 'UTC'`,
# cheap too; to_char was not: it cost the server more than Python saved) and dates as
# they are; times and dates are then printed a column at a time, by a comprehension
# calling the C isoformat. Every path prints what `plain_value` prints for the value,
# on either engine; a test holds them equal.

class _uuid_text(FunctionElement):
    type = String()
    inherit_cache = True


class _utc_naive(FunctionElement):
    type = DateTime()
    inherit_cache = True


class _uuid_bytes(FunctionElement):
    """A uuid column as its 16 bytes (PostgreSQL's uuid_send): what a bulk reader keys its
    batch's data keys by, without a uuid.UUID made (in Python) per row and per key."""
    type = LargeBinary()
    inherit_cache = True


@compiles(_uuid_bytes, "postgresql")
def _uuid_bytes_pg(element, compiler, **kw) -> str:
    return f"uuid_send({compiler.process(element.clauses, **kw)})"


@compiles(_uuid_text, "postgresql")
def _uuid_text_pg(element, compiler, **kw) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(_utc_naive, "postgresql")
def _utc_naive_pg(element, compiler, **kw) -> str:
    return f"({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC')"


def _iso(value) -> str:
    return value.isoformat()


def enum_value(member):
    """An enum member's value: what `layout(convert=...)` names for a record that keeps
    enums by value (on PostgreSQL the stored text is then read as it is)."""
    return member.value


def _naive_as_utc(value) -> datetime:
    return value.replace(tzinfo=timezone.utc)


def _naive_utc_iso(value) -> str:
    return value.isoformat() + "+00:00"


def _naive_utc_str(value) -> str:
    """str() of the aware UTC time that the naive UTC `value` stands for."""
    return value.isoformat(" ") + "+00:00"


# Per-value converters that open_columns applies to a whole column in one call: dates and
# times in C where core/repository/_text.c was built (the same text; a test holds them
# equal), else in one comprehension.
_COLUMN_WISE: dict[Callable, Callable[[Sequence], list]] = {
    _iso: lambda values: [None if v is None else v.isoformat() for v in values],
    _naive_utc_iso: lambda values: [None if v is None else v.isoformat() + "+00:00" for v in values],
    _naive_utc_str: lambda values: [None if v is None else v.isoformat(" ") + "+00:00" for v in values],
    _naive_as_utc: lambda values: [None if v is None else v.replace(tzinfo=timezone.utc) for v in values],
    str: lambda values: [None if v is None else str(v) for v in values],
}
if _text is not None:
    _COLUMN_WISE.update({
        _iso: _text.iso_dates,
        _naive_utc_iso: lambda values: _text.iso_times(values, "T", "+00:00"),
        _naive_utc_str: lambda values: _text.iso_times(values, " ", "+00:00"),
    })


def _in_sql(col: Column):
    """(what to select, what to apply) for `col` on PostgreSQL, or None for the default."""
    kind = col.type
    if isinstance(kind, Uuid):
        return _uuid_text(col), None
    if isinstance(kind, UTCDateTime):
        return _utc_naive(col), _naive_utc_iso
    if isinstance(kind, Date):
        return col, _iso
    if isinstance(kind, Enum) and kind.enum_class is not None:
        # Stored as the member's value (models._enum): the value is the text.
        return type_coerce(col, String()), None
    return None


# --- a batch of rows opened --------------------------------------------------------------

@dataclass(frozen=True)
class Columns:
    """A batch of records as columns: `names` in the records' order, and per name one
    sequence of values, all as long as the batch (what `open_columns` gives). For a
    writer that prints from columns, without a dict made per record."""

    names: tuple[str, ...]
    columns: list[Sequence]

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def records(self) -> list[dict]:
        names = self.names
        return [dict(zip(names, values)) for values in zip(*self.columns)]


@dataclass(frozen=True)
class Layout:
    """How the rows of one query become records.

    `columns` is the select list: the row id first, then one column per field (an
    encrypted field's `<field>_enc` column). `fields` says, in output order, each
    record key, its column's index, whether it is PHI and what to apply to its value
    (for PHI: to the plaintext, e.g. a mask; never to None or an erased value)."""

    table: str
    columns: tuple[Column, ...]
    fields: tuple[tuple[str, int, bool, Callable[[object], object] | None], ...]
    key_at: int | None = None    # where the row's key_id and its key record (KEY_RECORD) start
    own_key: bool = False        # every field must be sealed with the row's key_id
    id_text: bool = False        # the row id (column 0) comes as text, not as a uuid.UUID
    key_bytes: bool = False      # the row's key_id comes as its 16 bytes, not as a uuid.UUID

    @property
    def phi_indexes(self) -> tuple[int, ...]:
        return tuple(index for _, index, phi, _ in self.fields if phi)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _, _ in self.fields)

    def select(self):
        """The select list, from the table joined with its rows' keys when it has them."""
        query = select(*self.columns)
        if self.key_at is not None:
            query = query.select_from(with_keys(MODELS[self.table].__table__))
        return query

    def query(self, where: ColumnElement[bool] | None = None):
        """Every row (matching `where`) in id order (the id column itself: its index)."""
        query = self.select().order_by(MODELS[self.table].__table__.c.id)
        return query if where is None else query.where(where)


def layout(table: str, fields: Sequence[str], *, convert: dict[str, Callable | None] | None = None,
           phi_convert: Callable[[str], Callable[[str], object] | None] = lambda field: None,
           own_key: bool = False, text_in_sql: bool = False) -> Layout:
    """The Layout reading `fields` of `table` (logical names: `ssn`, not `ssn_enc`).
    Plain fields are made JSON-ready (`plain_value`) unless `convert` names another
    function (None: as stored; `str`: as str() prints the stored value, what a JSON
    writer with `default=str` would print, made a column at a time); `phi_convert(field)` gives what to apply to a PHI
    field's plaintext. With `own_key`, every field must be sealed with the row's
    `key_id` (what single-record reads hold to). With `text_in_sql` (PostgreSQL only),
    ids and enums are selected as their text and times as naive UTC, to be printed a
    column at a time (same values; see `_in_sql`); of fields kept as stored (`convert`
    None) times are made aware a column at a time, and enums converted by `enum_value`
    are read as their stored text."""
    model = MODELS[table].__table__
    phi = set(CLIENT_KEYED.get(table, ()))
    id_text = text_in_sql and (convert is None or convert.get("id", str) is str)
    columns: list = [_uuid_text(model.c.id).label("id") if id_text else model.c.id]
    plan = []
    for field in fields:
        if field in phi:
            columns.append(model.c[column(field)])
            plan.append((field, len(columns) - 1, True, phi_convert(field)))
            continue
        col = model.c[field]
        if convert is not None and field in convert:
            fn = convert[field]
            if text_in_sql and fn is enum_value and isinstance(col.type, Enum):
                col, fn = type_coerce(col, String()).label(field), None       # stored as the value
            elif text_in_sql and fn is None and isinstance(col.type, UTCDateTime):
                # As UTCDateTime reads it (aware, tzinfo timezone.utc), a column at a time.
                col, fn = _utc_naive(col).label(field), _naive_as_utc
            elif text_in_sql and fn is str and isinstance(col.type, UTCDateTime):
                # str() of that aware time, without making it first.
                col, fn = _utc_naive(col).label(field), _naive_utc_str
            elif text_in_sql and fn is str and isinstance(col.type, Uuid):
                col, fn = _uuid_text(col).label(field), None
        elif text_in_sql and (chosen := _in_sql(col)) is not None:
            col, fn = chosen[0].label(field), chosen[1]
        elif isinstance(col.type, JSON):
            fn = json_text
        elif isinstance(col.type, UTCDateTime):
            # Read as the plain type and made UTC ISO text in one step: the same text
            # UTCDateTime then isoformat() gives, with one call per value, not three.
            col, fn = type_coerce(col, col.type.impl).label(field), _utc_iso
        else:
            fn = plain_converter(col)
        if field == "id":
            index = 0
            fn = None if id_text else fn
        else:
            columns.append(col)
            index = len(columns) - 1
        plan.append((field, index, False, fn))
    key_at = None
    if any(is_phi for _, _, is_phi, _ in plan):
        key_at = len(columns)
        columns += [_uuid_bytes(model.c.key_id).label("key_id") if text_in_sql else model.c.key_id, *KEY_RECORD]
    return Layout(table, tuple(columns), tuple(plan), key_at, own_key, id_text, key_at is not None and text_in_sql)


def key_ids_of(rows: Sequence[Sequence], indexes: Sequence[int]) -> set[bytes]:
    """The 16-byte key ids inside the well-formed ciphertexts at `indexes` of `rows`
    (a malformed one is reported by `open_rows`, with its row and field)."""
    return _key_ids([[row[i] for row in rows] for i in indexes])


def _key_ids(columns: Sequence[Sequence]) -> set[bytes]:
    heads = {blob[:17] for col in columns for blob in col if blob is not None}
    return {head[1:] for head in heads if len(head) == 17 and head[0] == FORMAT_VERSION}


def open_rows(conn: Connection, keyring: Keyring, shape: Layout, rows: Sequence[Sequence], *,
              erased: str | None = None) -> list[dict]:
    """`rows` (tuples in `shape.columns` order) as records, PHI decrypted.

    The keys the batch needs come with its rows (`Layout.select` joins them; fields
    sealed with another key than their row's cost one query per column that has them)
    and are dropped on return.
    A field whose key was shredded reads `erased` when given, else raises
    KeyUnavailableError. With a layout made `own_key`, a field sealed with any key but
    the row's `key_id` is refused (CryptoError), as single-record reads refuse it. A
    malformed or tampered ciphertext, or one moved from another row or field, is a
    CryptoError naming the table, field and row id."""
    names = shape.names
    return [dict(zip(names, values)) for values in zip(*open_columns(conn, keyring, shape, rows, erased=erased))]


def open_columns(conn: Connection, keyring: Keyring, shape: Layout, rows: Sequence[Sequence], *,
                 erased: str | None = None) -> list[list]:
    """`open_rows` a column at a time: one list per field of `shape.fields`, in its
    order, each as long as `rows`. Bulk work goes column by column: one comprehension
    per field instead of a dictionary and a loop step per field and row (same checks,
    same errors)."""
    if not rows:
        return [[] for _ in shape.fields]
    columns = list(zip(*rows))
    out: list[list] = []
    phi = shape.phi_indexes
    if phi:
        key_at = shape.key_at
        end = key_at + 1 + len(KEY_RECORD)
        # The rows' own keys, which came with them; a key only some field names (sealed
        # with another key than its row's) is looked up when its column is opened.
        row_keys = (list(columns[key_at]) if shape.key_bytes
                    else [None if k is None else k.bytes for k in columns[key_at]])
        own = set(row_keys)
        own.discard(None)
        keys = keyring.batch_keys(conn, own, fetched=zip(row_keys, *columns[key_at + 1:end]))
        ids = columns[0]
        rids = [i.encode() for i in ids] if shape.id_text else [str(i).encode() for i in ids]
        row_heads = [None if k is None else _VERSION_BYTE + k for k in row_keys]
        batch = _Batch(shape.table, ids, rids, row_keys, keys, erased, shape.own_key, row_heads,
                       keys.deks_of(row_keys), conn, keyring)
        opened = _open_batch(batch, [(name, columns[i]) for name, i, is_phi, fn in shape.fields
                                     if is_phi and not isinstance(fn, Replaced)])
    for name, i, is_phi, fn in shape.fields:
        values = columns[i]
        if is_phi:
            plain = opened.get(name)
            if isinstance(fn, Replaced):
                out.append(_replace_column(batch, name, values, fn))
            elif plain is None:
                out.append(_open_column(batch, name, values, fn))
            elif fn is None:
                out.append(plain)
            else:
                out.append([None if v is None else fn(v) for v in plain] if None in plain else list(map(fn, plain)))
        elif fn is None:
            out.append(values)
        elif fn in _COLUMN_WISE:
            out.append(_COLUMN_WISE[fn](values))
        else:
            out.append([None if v is None else fn(v) for v in values])
    return out


@dataclass
class _Batch:
    """What opening any field of one batch needs, per row (id, AAD tail, row key id) and
    for the batch (its keys)."""

    table: str
    ids: Sequence
    rids: list[bytes]
    row_keys: list[bytes | None]
    keys: BatchKeys
    erased: str | None
    strict: bool
    row_heads: list[bytes | None]    # the header a field sealed with its row's key starts with
    row_deks: list[bytes] | None     # each row's own key, when every one of them opened
    conn: Connection
    keyring: Keyring

    @functools.cached_property
    def openers(self) -> dict:
        """{key id: AES-GCM decrypt} of the batch's keys, made on first use: only a
        column that `_open_batch` and `_open_column` cannot open at once goes field by
        field (`_open_each`)."""
        return self.keys.openers()

    @functools.cached_property
    def row_openers(self) -> list:
        """Each row's own key's opener (None where it is not usable), once per batch."""
        openers = self.openers
        return [None if k is None else openers.get(k) for k in self.row_keys]

    def add_keys(self, blobs: Sequence) -> None:
        """The keys that `blobs` name beyond those of the batch so far, in one query: a
        column with fields sealed with another key than their row's (a strict layout
        refuses them anyway, but names them as it does)."""
        wanted = {raw for raw in _key_ids([blobs]) if not self.keys.knows(raw)}
        if wanted:
            more = self.keyring.batch_keys(self.conn, wanted)
            self.keys.update(more)
            if "openers" in self.__dict__:          # made already: it learns the new keys too
                self.openers.update(more.openers())


def _open_batch(batch: _Batch, columns: list[tuple[str, Sequence]]) -> dict[str, list]:
    """The usual batch (every row's own key usable, every field well formed and sealed
    with it, some perhaps None) opened whole, in one call (core.crypto.bulk): {field:
    plaintexts}. Empty when the batch is not that usual, or a field fails: then each
    column goes through `_open_column`, which finds the field at fault and names it."""
    deks = batch.row_deks
    if deks is None or not columns:
        return {}
    prefixes = [f"{batch.table}\0{name}\0".encode() for name, _ in columns]
    opened = batch.keys.open_rows(deks, [values for _, values in columns], prefixes, batch.rids, batch.row_heads)
    return {} if opened is None else {name: values for (name, _), values in zip(columns, opened)}


class Replaced:
    """A `phi_convert` that replaces a field whole (a mask with no partial form): what it
    gives does not depend on the plaintext, so a bulk read does not open the field
    (`_replace_column`)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, plain: str) -> str:
        return self.text


def _replace_column(batch: _Batch, name: str, blobs: Sequence, fn: Replaced) -> list:
    """A PHI column that `fn` replaces whole: the usual field (well formed, sealed with its
    row's usable key) reads `fn.text` without being opened, None stays None. Opening it
    would cost an AES-GCM call a field and show nothing of what it proved: a masked
    reader sees the same text whatever the field holds; authenticating every envelope
    is the integrity job's (core.integrity). A column with any other field (malformed,
    sealed with another key, whose key is erased or does not unwrap) goes through
    `_open_column`, as when it is opened: same values (erased where the key was
    destroyed), same errors."""
    heads = batch.row_heads
    if batch.row_deks is not None and all(
            blob is None or (blob[:17] == head and len(blob) >= MIN_CIPHERTEXT) for blob, head in zip(blobs, heads)):
        text = fn.text
        return [None if blob is None else text for blob in blobs]
    return _open_column(batch, name, blobs, fn)


def _open_column(batch: _Batch, name: str, blobs: Sequence, fn: Callable | None) -> list:
    """One PHI field of a batch that `_open_batch` did not open. The usual column (every
    field well formed and sealed with its row's usable key, some perhaps None) is opened
    in one call still; any other goes field by field (`_open_each`). Same checks, same
    values, same errors."""
    prefix = f"{batch.table}\0{name}\0".encode()
    deks = batch.row_deks
    opened = None if deks is None else batch.keys.open_rows(deks, [blobs], [prefix], batch.rids, batch.row_heads)
    if opened is not None:
        values = opened[0]
        return values if fn is None else [None if v is None else fn(v) for v in values]
    batch.add_keys(blobs)      # then _open_each finds the field at fault and names it
    return _open_each(batch, name, prefix, blobs, fn)


def _open_each(batch: _Batch, name: str, prefix: bytes, blobs: Sequence, fn: Callable | None) -> list:
    """`_open_column` a field at a time: the usual field (well formed, sealed with its
    row's usable key) costs a few slices, one comparison and one AES-GCM call; anything
    else is `_open_field`'s."""
    table = batch.table
    out = []
    append = out.append
    for blob, rid, row_key, opener, row_id in zip(blobs, batch.rids, batch.row_keys, batch.row_openers, batch.ids):
        if blob is None:
            append(None)
        elif (opener is not None and blob[1:17] == row_key and blob[0] == FORMAT_VERSION
              and len(blob) >= MIN_CIPHERTEXT):
            try:
                text = opener(blob[17:29], blob[29:], prefix + rid).decode()
            except InvalidTag:
                raise CryptoError(f"{table}.{name} of row {row_id}: ciphertext failed authentication "
                                  "(tampered, or moved from another row)") from None
            append(text if fn is None else fn(text))
        else:
            append(_open_field(batch, name, prefix, blob, rid, row_key, row_id, fn))
    return out


def _open_field(batch: _Batch, name: str, prefix: bytes, blob: bytes, rid: bytes, row_key: bytes | None,
                row_id, fn: Callable | None):
    """One field the fast path of `_open_column` does not take: malformed, sealed with
    another key than its row's (refused when the layout is `own_key`), or whose key is
    not usable (erased or raised)."""
    table = batch.table
    if len(blob) < MIN_CIPHERTEXT or blob[0] != FORMAT_VERSION:
        raise CryptoError(f"{table}.{name} of row {row_id}: ciphertext is malformed "
                          "(too short or unknown format version)")
    raw = bytes(blob[1:17])
    if batch.strict and raw != row_key:
        raise CryptoError(f"{table}.{name} of row {row_id}: sealed with key {uuid.UUID(bytes=raw)}, "
                          f"not the row's key {None if row_key is None else uuid.UUID(bytes=row_key)}")
    opener = batch.openers.get(raw)
    if opener is None:
        error = batch.keys.unavailable(raw)
        if batch.erased is None or not isinstance(error, KeyUnavailableError):
            raise error
        return batch.erased
    try:
        text = opener(blob[17:29], blob[29:], prefix + rid).decode()
    except InvalidTag:
        raise CryptoError(f"{table}.{name} of row {row_id}: ciphertext failed authentication "
                          "(tampered, or moved from another row)") from None
    return text if fn is None else fn(text)


# --- whole tables -----------------------------------------------------------------------

def stream_records(conn: Connection, keyring: Keyring, principal: Principal, table: str,
                   fields: tuple[str, ...], *, where: ColumnElement[bool] | None = None,
                   reveal: bool = False, batch_size: int = 500) -> Iterator[list[dict]]:
    """Batches of `table`'s rows (id order) as {field: value} for `fields`, plain values
    JSON-ready (`plain_value`).

    Encrypted fields are decrypted and then masked (core.masking) unless `reveal`,
    which needs `phi:read`; a field whose client was erased (key shredded) reads
    ERASED, the row itself stays, as a tombstone would, so counts still add up. The
    caller audits the read (an export audits it once, as EXPORT, with the row count)."""
    for columns in stream_columns(conn, keyring, principal, table, fields, where=where, reveal=reveal,
                                  batch_size=batch_size):
        with collector_paused():
            batch = [[dict(zip(fields, values)) for values in zip(*columns)]]
            del columns
        yield batch.pop()


def stream_columns(conn: Connection, keyring: Keyring, principal: Principal, table: str,
                   fields: tuple[str, ...], *, where: ColumnElement[bool] | None = None,
                   reveal: bool = False, batch_size: int = 500) -> Iterator[list[list]]:
    """`stream_records` a column at a time: per batch, one list per field of `fields`
    (in that order), as many values each as the batch has rows. What a writer that
    works by column (CSV) takes without a dictionary per row.

    The collector is paused while a batch is fetched and opened (core.bulk). Nothing
    here keeps a batch once it is handed out, so a caller that pauses the collector
    around taking and writing a batch (core.jobs.export) can drop it before the
    collector is back: then the collector finds nothing young to scan, instead of
    promoting every batch to the old generation and scanning the whole heap for it."""
    require_read(principal, table)
    if reveal and not principal.can("phi:read"):
        raise PermissionDenied(f"{principal.actor} lacks permission phi:read")
    shape = layout(table, fields, phi_convert=(lambda field: None) if reveal else _masker,
                   text_in_sql=conn.dialect.name == "postgresql")
    batches = stream(conn, shape.query(where), size=batch_size)
    try:
        with heap_frozen():
            yield from _opened(conn, keyring, shape, batches)
    finally:
        batches.close()


def _opened(conn: Connection, keyring: Keyring, shape: Layout, batches) -> Iterator[list[list]]:
    """`stream_columns` body: each batch fetched and opened with the collector paused."""
    while True:
        with collector_paused():
            rows = next(batches, None)
            if rows is None:
                return
            batch = [open_columns(conn, keyring, shape, rows, erased=ERASED)]
            del rows
        yield batch.pop()


def _masker(field: str) -> Callable[[str], str]:
    """mask_field(field, ·) for a plaintext (never None here), without the dispatch per value."""
    rule = RULES.get(field)
    if rule is not None:
        return rule
    return Replaced(mask_field(field, ""))     # a field without a rule is replaced whole, whatever it says
