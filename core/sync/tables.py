"""What sync moves, table by table, and the unit it merges: the field.

A field is what a person edits: one column, or an encrypted column together with the
blind index computed from it (`email` is `email_enc` and `email_bidx`), so a merge never
pairs one side's ciphertext with the other side's index. Bookkeeping columns are not
fields: `sync_version` and `data_checksum` are each site's own; `updated_at` becomes the
later of the two; `key_id` names the key every ciphertext of the row is sealed with, so
two versions on different keys are never mixed field by field.

Tables sync in dependency order (a practice before its staff, services and clients, a
client, staff member and service before the sessions naming them); data keys travel ahead of the rows they open (core.sync.keys). User accounts
and client files do not sync in this release: accounts are each site's own (a joined
site starts with a copy of them, core.sync.join) and file contents are not carried yet.
"""
from __future__ import annotations

import binascii
import enum
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache, cached_property

from sqlalchemy import PrimaryKeyConstraint, Table, UniqueConstraint

from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import Client, Practice, Service, Staff, TherapySession
from strongroom.core.repository.changes import _canon, _canonical
from strongroom.core.sync.settings import DEFAULT_STRATEGIES

LOCAL_COLUMNS = frozenset({"sync_version", "data_checksum"})
NOT_FIELDS = frozenset({"id", "updated_at", "key_id"}) | LOCAL_COLUMNS
# Blind indexes follow the encrypted field they index.
_INDEX_OF = {"clients": {"email": "email_bidx", "ssn": "ssn_last4_bidx", "last_name": "last_name_bidx"}}


@dataclass(frozen=True)
class SyncTable:
    name: str
    table: Table
    default_strategy: str
    # field name -> the columns it spans
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    client_column: str | None = None   # the column naming the client whose key seals the row

    @cached_property
    def column_names(self) -> list[str]:
        return [c.name for c in self.table.columns]

    @cached_property
    def columns(self) -> list[str]:
        """Every column a version carries between sites (all but the local bookkeeping)."""
        return [c.name for c in self.table.columns if c.name not in LOCAL_COLUMNS]

    @cached_property
    def field_plan(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, tuple[str, ...]], ...]]:
        """The fields split once for hashing: (field, column) of the one-column fields,
        and the fields spanning several columns (an encrypted value with its blind index)."""
        single = tuple((name, columns[0]) for name, columns in self.fields.items() if len(columns) == 1)
        multi = tuple((name, columns) for name, columns in self.fields.items() if len(columns) > 1)
        return single, multi

    @cached_property
    def field_columns(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Every field with its columns, in field order (the C field hasher's plan)."""
        return tuple(self.fields.items())

    @cached_property
    def encrypted(self) -> tuple[str, ...]:
        return CLIENT_KEYED.get(self.name, ())

    @cached_property
    def indexed(self) -> tuple[str, ...]:
        """The columns an index or unique constraint covers, but for the id (the row's
        key) and the local bookkeeping every write changes. On SQLite an update that
        does not set them leaves their indexes alone (core.sync.writes)."""
        names: set[str] = set()
        for index in self.table.indexes:
            names.update(c.name for c in index.columns)
        for constraint in self.table.constraints:
            if isinstance(constraint, (PrimaryKeyConstraint, UniqueConstraint)):
                names.update(c.name for c in constraint.columns)
        return tuple(c for c in self.column_names if c in names and c != "id" and c not in LOCAL_COLUMNS)


def _fields(table: Table) -> dict[str, tuple[str, ...]]:
    indexes = _INDEX_OF.get(table.name, {})
    indexed = set(indexes.values())
    out: dict[str, tuple[str, ...]] = {}
    for column in table.columns:
        name = column.name
        if name in NOT_FIELDS or name in indexed:
            continue
        if name.endswith("_enc"):
            logical = name[:-4]
            out[logical] = (name, indexes[logical]) if logical in indexes else (name,)
        else:
            out[name] = (name,)
    return out


@cache
def synced() -> tuple[SyncTable, ...]:
    """The synced tables in the order a pass moves them."""
    return tuple(SyncTable(m.__tablename__, m.__table__, DEFAULT_STRATEGIES[m.__tablename__], _fields(m.__table__),
                           client)
                 for m, client in ((Practice, None), (Staff, None), (Service, None), (Client, "id"),
                                   (TherapySession, "client_id")))


def by_name(name: str) -> SyncTable:
    for spec in synced():
        if spec.name == name:
            return spec
    raise KeyError(name)


# Hashes of the single-column values rows repeat (None, flags, statuses, a practice's
# or client's id), by (type, value): a sync pass hashes every field of every row it
# stamps, and most fields hold one of a few values. Bounded: cleared when full. Only
# types whose equal values have one canonical form: not floats (0.0 == -0.0), decimals
# (1.0 == 1.00) or datetimes (equal instants in two time zones).
_HASHED: dict[tuple, str] = {}
_HASHED_MAX = 20_000
_MEMO_KINDS: dict[type, bool] = {}


def _memoable(kind: type) -> bool:
    found = _MEMO_KINDS.get(kind)
    if found is None:
        found = _MEMO_KINDS[kind] = kind in (type(None), bool, int, str, uuid.UUID, date) or issubclass(
            kind, enum.Enum)
    return found


def _short_hash(raw: bytes) -> str:
    return binascii.b2a_base64(hashlib.blake2b(raw, digest_size=6).digest(), newline=False).decode()


def field_hashes(spec: SyncTable, row: Mapping) -> dict[str, str]:
    """A short content hash per field (48 bits, base64): how a local edit is noticed and
    how two sites' versions are compared without decrypting (ciphertext is hashed as
    stored, so a value re-sealed by key rotation counts as changed). Short because every
    synced row keeps one per field: BLAKE2b of the field's canonical text
    (changes._canonical; a field of several columns joins theirs with NUL bytes), with
    a 6-byte digest. In C where built (_canon.field_hashes, the same hashes)."""
    if _canon is not None:
        return _canon.field_hashes(row, spec.field_columns, _canonical)
    return _field_hashes(spec, row)


def _field_hashes(spec: SyncTable, row: Mapping) -> dict[str, str]:
    """field_hashes in Python. A pass hashes every field of every row it stamps, so
    the loop is kept tight: the memo of repeated values is asked first (a hit is most
    fields of most rows), and ciphertext is hashed from its hex digits made as bytes
    (the same bytes as its canonical text, encoded)."""
    out = {}
    canonical, blake2b, b64, memo, kinds = _canonical, hashlib.blake2b, binascii.b2a_base64, _HASHED, _MEMO_KINDS
    hexlify = binascii.hexlify
    single, multi = spec.field_plan
    for name, column in single:
        value = row[column]
        kind = value.__class__
        if kind is bytes:               # ciphertext: unique, never memoised
            out[name] = b64(blake2b(b"b:" + hexlify(value), digest_size=6).digest(), newline=False).decode()
            continue
        memoable = kinds.get(kind)
        if memoable is None:
            memoable = _memoable(kind)
        if not memoable:                # JSON, times
            out[name] = b64(blake2b(canonical(value).encode(), digest_size=6).digest(), newline=False).decode()
            continue
        key = (kind, value)
        digest = memo.get(key)
        if digest is None:
            digest = _short_hash(canonical(value).encode())
            if len(memo) >= _HASHED_MAX:
                memo.clear()
            memo[key] = digest
        out[name] = digest
    for name, columns in multi:
        out[name] = _short_hash(b"\0".join([canonical(row[c]).encode() for c in columns]))
    # In the table's field order, as before (the order of a dict is kept where it is stored).
    return {name: out[name] for name in spec.fields} if multi else out
