"""The keyring: data keys (DEKs) stored wrapped by the KEK in `data_keys`.

One DEK per client makes erasure real: destroying it (crypto-shredding) leaves that
client's ciphertext unreadable everywhere, in old backups too. Secrets that belong to no
client (TOTP seeds) use the system DEK; blind indexes use their own HMAC key.

Wrapping is AES-256-GCM under the KEK with the key id and purpose as associated data, so
a wrapped key copied onto another key record does not unwrap.

Where unwrapped keys live, and for how long:
- single-record reads (one client, one login) go through `cipher`, which keeps the DEK
  in a bounded LRU cache for the life of the Keyring; `forget` is the one way a key
  leaves that cache (shredding calls it), so anything that destroys or must stop using
  a key calls `forget` and nothing else;
- bulk reads (exports, `clients list --all`, integrity scans, sync views) go through
  `batch_keys`: the keys a batch of rows needs, read with the rows (`with_keys`) or in
  one query, unwrapped once, held by the returned BatchKeys alone and dropped with it
  when the batch is done. They never enter the cache, so a 100k-client export neither
  evicts the working set nor leaves 100k unwrapped keys behind.
"""
from __future__ import annotations

import functools
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Join, String, Table, event, insert, select, text, type_coerce, update

from strongroom.core.crypto.blind_index import BlindIndexer
from strongroom.core.crypto.bulk import open_rows
from strongroom.core.crypto.fields import FieldCipher, raw_key_id_of
from strongroom.core.crypto.kek import Kek
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.pg import SINGLETON_KEY_LOCK_KEY
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError, KeyUnavailableError, StrongroomError
from strongroom.core.ids import new_id

_keys = DataKey.__table__


# Unwrapped keys kept in memory: enough for a working set of clients, bounded so the
# daemon's memory does not grow with the number of clients in the database.
CIPHER_CACHE_SIZE = 4096
# Key ids per query of `batch_keys` (SQLite allows 32766 parameters; stay well below).
KEY_QUERY_CHUNK = 2000
# What unwrapping a key needs, in the order `batch_keys(fetched=...)` takes it after the id.
# Purpose and state as their stored text (models._enum stores an enum's value): a bulk
# read carries them on every row, and the Enum type's processing of each was a tenth of
# fetching 300k sessions; `_take_record` takes either form.
KEY_RECORD = (type_coerce(_keys.c.purpose, String()).label("key_purpose"),
              type_coerce(_keys.c.state, String()).label("key_state"), _keys.c.wrapped_key, _keys.c.kek_id)


def with_keys(table: Table) -> Join:
    """`table` joined with the record of each row's data key (`table.key_id`), so a bulk
    reader gets the wrapped keys with the rows, in the same statement: select
    `table.c.key_id, *KEY_RECORD` from it and hand those to `batch_keys(fetched=...)`."""
    return table.outerjoin(_keys, _keys.c.id == table.c.key_id)


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        value = super().get(key, default)
        if value is not default:
            self.move_to_end(key)
        return value

    def peek(self, key, default=None):
        """The value without marking it recently used (bulk readers look, not use)."""
        return super().get(key, default)

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


_WRAP_AAD_HEAD = b"strongroom-dek\0"


def _wrap_aad(key_id: uuid.UUID, purpose: KeyPurpose) -> bytes:
    return _WRAP_AAD_HEAD + key_id.bytes + purpose.value.encode()


@functools.lru_cache(maxsize=None)
def _purpose_bytes(purpose: str) -> bytes:
    """A purpose (its member or its stored text) as it goes into the wrapping AAD."""
    return KeyPurpose(purpose).value.encode()


def active_singleton(conn: Connection, purpose: KeyPurpose) -> uuid.UUID | None:
    """The newest active key of a practice-wide purpose, or None before its first use.

    Practice-wide keys belong to no client: asked with `client_id IS NULL`, the query
    reads them through ix_data_keys_client_id instead of every client's key (there is
    no index on purpose; a sync pass's preflight asks this of both sites, and at 300k
    clients the scan cost 22-33 ms a time, most of a pass with nothing to do)."""
    return conn.execute(
        select(_keys.c.id).where(_keys.c.client_id.is_(None), _keys.c.purpose == purpose,
                                 _keys.c.state == KeyState.ACTIVE)
        # Oldest first among equals: a database from before _lock_singletons may hold
        # twins of one version, and every reader must settle on the same one.
        .order_by(_keys.c.version.desc(), _keys.c.created_at, _keys.c.id).limit(1)).scalar()


def _lock_singletons(conn: Connection) -> None:
    """Wait for any other transaction creating a practice-wide key, until ours ends.

    PostgreSQL reads at READ COMMITTED, so after the wait the caller's next query sees a
    key the other transaction committed. SQLite needs nothing: a writing transaction
    there began IMMEDIATE, so it is the only writer already."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SINGLETON_KEY_LOCK_KEY})


@dataclass(frozen=True)
class NewKey:
    """A freshly generated DEK and the row that stores it wrapped."""

    cipher: FieldCipher
    row: dict


class _Unwrapping:
    """Key records of one batch waiting to be unwrapped, by KEK: key ids, wrapped keys
    and the tail of each one's associated data (key id and purpose)."""

    __slots__ = ("by_kek", "ids")

    def __init__(self) -> None:
        self.by_kek: dict[str, tuple[list[bytes], list[bytes], list[bytes]]] = {}
        self.ids: set[bytes] = set()

    def add(self, kek_id: str, raw: bytes, wrapped: bytes, tail: bytes) -> None:
        group = self.by_kek.get(kek_id)
        if group is None:
            group = self.by_kek[kek_id] = ([], [], [])
        group[0].append(raw)
        group[1].append(wrapped)
        group[2].append(tail)
        self.ids.add(raw)


class BatchKeys:
    """The data keys one batch of rows needs, unwrapped, by the 16-byte key id that every
    field ciphertext carries (core.crypto.fields). Hold it for the batch, then drop it:
    nothing else keeps these keys.

    Each key is held as its 32 bytes alone: a bulk read opens its fields through
    `open_rows` (core.crypto.bulk, in C where built), which takes keys as bytes; the
    AESGCM object and FieldCipher around a key are made only when `get` or `openers`
    asks (measured at 100k clients, one key each: an AESGCM object per key was 0.28 s
    of a 2 s export)."""

    __slots__ = ("_deks", "_ciphers", "_unavailable", "_aeads")

    def __init__(self, deks: dict[bytes, bytes], unavailable: dict[bytes, StrongroomError],
                 ciphers: dict[bytes, FieldCipher] | None = None) -> None:
        self._deks = deks
        self._ciphers = ciphers if ciphers is not None else {}
        self._unavailable = unavailable
        self._aeads: dict[bytes, AESGCM] = {}    # by key bytes, for bulk.open_rows without C

    def get(self, raw_key_id: bytes) -> FieldCipher | None:
        """The cipher for a key id, or None if the key cannot be used (then `unavailable`
        says why, for the caller to raise or to show as erased)."""
        cipher = self._ciphers.get(raw_key_id)
        if cipher is None:
            dek = self._deks.get(raw_key_id)
            if dek is None:
                return None
            cipher = self._ciphers[raw_key_id] = FieldCipher(uuid.UUID(bytes=raw_key_id), dek, raw_key_id)
        return cipher

    def openers(self) -> dict[bytes, object]:
        """{16-byte key id: FieldCipher.opener} for every usable key of the batch (a
        missing id: see `unavailable`). Same lifetime as this BatchKeys: the batch's.
        An AESGCM object per key: for readers that go field by field."""
        return {raw: self.get(raw).opener for raw in self._deks}

    def deks_of(self, raw_key_ids: Iterable[bytes | None]) -> list[bytes] | None:
        """Each id's key bytes, for `open_rows`; None if any of them is not usable here."""
        deks = self._deks
        found = [deks.get(raw) for raw in raw_key_ids]
        return None if None in found else found

    def open_rows(self, deks: list[bytes], columns: list, prefixes: list[bytes], tails: list[bytes],
                  heads: list[bytes], *, text: bool = True) -> list[list] | None:
        """core.crypto.bulk.open_rows under keys of this batch (`deks_of`), or None when the
        batch does not open whole: a value of unusual shape, or one that fails
        authentication. Every bulk reader then goes value by value to name the one at
        fault, so none of them has to tell the two apart."""
        try:
            return open_rows(deks, columns, prefixes, tails, heads, text=text, aeads=self._aeads)
        except InvalidTag:
            return None

    def knows(self, raw_key_id: bytes) -> bool:
        """Whether the key was asked for in this batch (usable or not)."""
        return raw_key_id in self._deks or raw_key_id in self._unavailable

    def update(self, other: BatchKeys) -> None:
        """Take in the keys of `other` (more keys for the same batch)."""
        self._deks.update(other._deks)
        self._ciphers.update(other._ciphers)
        self._unavailable.update(other._unavailable)

    def unavailable(self, raw_key_id: bytes) -> StrongroomError:
        """Why a key cannot be used, as the error to raise: KeyUnavailableError when it is
        destroyed (crypto-shredded), missing or wrapped by a KEK not loaded here,
        CryptoError when its record does not unwrap (tampered)."""
        error = self._unavailable.get(raw_key_id)
        if error is None:
            return KeyUnavailableError(f"data key {uuid.UUID(bytes=raw_key_id)} was not asked for in this batch")
        return type(error)(*error.args)

    def open_text(self, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> str:
        """One field's plaintext, with every check `FieldCipher.decrypt_text` makes; raises
        CryptoError (malformed, tampered, moved) or KeyUnavailableError (shredded)."""
        blob = bytes(blob)
        raw = raw_key_id_of(blob)
        cipher = self.get(raw)
        if cipher is None:
            raise self.unavailable(raw)
        return cipher.decrypt_text(blob, table, column, row_id)

    def __len__(self) -> int:
        return len(self._deks)


class Keyring:
    def __init__(self, keks: list[Kek]) -> None:
        if not keks:
            raise KeyUnavailableError("no key-encryption key loaded")
        self._keks = {k.kek_id: AESGCM(k.key) for k in keks}
        self._kek_keys = {k.kek_id: k.key for k in keks}     # as bulk.open_rows takes them
        self.primary = keks[0]
        self._ciphers = _Lru(CIPHER_CACHE_SIZE)
        self._singletons: dict[KeyPurpose, uuid.UUID] = {}
        self._indexer: BlindIndexer | None = None
        # Practice-wide keys created by transactions still open (see _singleton_id), and
        # for each purpose the connection of the transaction that made it, which alone
        # may use it (again and again: a first bulk import indexes every row with it).
        self._uncommitted: set[uuid.UUID] = set()
        self._made_by: dict[KeyPurpose, tuple[Connection, uuid.UUID]] = {}
        self._made_indexer: tuple[Connection, BlindIndexer] | None = None

    @property
    def kek_id(self) -> str:
        return self.primary.kek_id

    def kek_ids(self) -> list[str]:
        return list(self._keks)

    # -- wrapping --------------------------------------------------------------------
    def wrap(self, key: bytes, key_id: uuid.UUID, purpose: KeyPurpose,
             kek_id: str | None = None) -> bytes:
        aead = self._keks[kek_id or self.kek_id]
        nonce = os.urandom(12)
        return nonce + aead.encrypt(nonce, key, _wrap_aad(key_id, purpose))

    def unwrap(self, key_id: uuid.UUID, purpose: KeyPurpose, wrapped: bytes, kek_id: str) -> bytes:
        aead = self._keks.get(kek_id)
        if aead is None:
            raise KeyUnavailableError(
                f"data key {key_id} is wrapped by KEK {kek_id}, but the loaded KEK is "
                f"{self.kek_id}: wrong key file, or a KEK rotation was not finished"
            )
        wrapped = bytes(wrapped)
        try:
            return aead.decrypt(wrapped[:12], wrapped[12:], _wrap_aad(key_id, purpose))
        except InvalidTag:
            raise CryptoError(f"data key {key_id} failed to unwrap (tampered key record)") from None

    # -- creating keys ---------------------------------------------------------------
    def new_key(self, purpose: KeyPurpose, client_id: uuid.UUID | None = None,
                version: int = 1) -> NewKey:
        """Generate a DEK; the caller inserts `row` (so bulk inserts can batch them)."""
        key_id = new_id()
        key = os.urandom(32)
        row = {
            "id": key_id, "purpose": purpose, "client_id": client_id, "version": version,
            "wrapped_key": self.wrap(key, key_id, purpose), "kek_id": self.kek_id,
            "state": KeyState.ACTIVE, "created_at": utcnow(),
        }
        cipher = FieldCipher(key_id, key)
        self._ciphers[key_id] = cipher
        return NewKey(cipher, row)

    def create_key(self, conn: Connection, purpose: KeyPurpose,
                   client_id: uuid.UUID | None = None, version: int = 1) -> FieldCipher:
        new = self.new_key(purpose, client_id, version)
        conn.execute(insert(_keys), [new.row])
        return new.cipher

    # -- reading keys ----------------------------------------------------------------
    def cipher(self, conn: Connection, key_id: uuid.UUID) -> FieldCipher:
        """The cipher for a stored DEK; a destroyed (shredded) key raises KeyUnavailableError."""
        cached = self._ciphers.get(key_id)
        if cached is not None:
            return cached
        cipher = FieldCipher(key_id, self._load_key(conn, key_id))
        self._ciphers[key_id] = cipher
        return cipher

    def _load_key(self, conn: Connection, key_id: uuid.UUID) -> bytes:
        row = conn.execute(select(_keys).where(_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise KeyUnavailableError(f"data key {key_id} does not exist")
        if row["state"] == KeyState.DESTROYED or row["wrapped_key"] is None:
            raise KeyUnavailableError(f"data key {key_id} was destroyed (crypto-shredded)")
        return self.unwrap(key_id, row["purpose"], row["wrapped_key"], row["kek_id"])

    def batch_keys(self, conn: Connection, key_ids: Iterable[bytes], *,
                   fetched: Iterable[tuple] = ()) -> BatchKeys:
        """The keys named by `key_ids` (16-byte ids as field ciphertexts carry them), for
        one batch of rows, each unwrapped once: from `fetched` (key records that came
        with the rows, as `(id, *KEY_RECORD)` tuples from a query joined with
        `with_keys`; the id a uuid.UUID or its 16 bytes), from the cache, and the rest in
        one query (per KEY_QUERY_CHUNK ids). A destroyed, missing or unopenable key is
        not an error here: BatchKeys.get says None and the reader decides (erased, or
        raise). The keys unwrapped here stay out of the cache (see the module
        docstring)."""
        wanted = key_ids if isinstance(key_ids, (set, frozenset)) else set(key_ids)
        deks: dict[bytes, bytes] = {}
        ciphers: dict[bytes, FieldCipher] = {}
        unavailable: dict[bytes, StrongroomError] = {}
        unwrapping = _Unwrapping()
        seen: set[bytes] = set()
        for record in fetched:
            # Rows of one client repeat its key record: skip a repeat by its wrapped bytes
            # (hashed in C) before asking its id for its bytes (a Python property).
            wrapped = record[3]
            if wrapped is not None:
                if wrapped in seen:
                    continue
                seen.add(wrapped)
            key_id = record[0]
            if key_id is None or record[1] is None:
                continue
            raw = key_id if key_id.__class__ is bytes else key_id.bytes
            if raw in wanted and raw not in unwrapping.ids and raw not in unavailable:
                self._take_record(record, unwrapping, unavailable, raw)
        missing: list[uuid.UUID] = []
        for raw in wanted.difference(unwrapping.ids, unavailable):
            key_id = uuid.UUID(bytes=raw)
            cached = self._ciphers.peek(key_id)
            if cached is not None:
                deks[raw] = cached.key
                ciphers[raw] = cached
            else:
                missing.append(key_id)
                unavailable[raw] = KeyUnavailableError(f"data key {key_id} does not exist")
        for start in range(0, len(missing), KEY_QUERY_CHUNK):
            query = select(_keys.c.id, *KEY_RECORD).where(_keys.c.id.in_(missing[start:start + KEY_QUERY_CHUNK]))
            for record in conn.execute(query):
                raw = record[0].bytes
                del unavailable[raw]
                self._take_record(record, unwrapping, unavailable, raw)
        self._unwrap_all(unwrapping, deks, unavailable)
        return BatchKeys(deks, unavailable, ciphers)

    def _take_record(self, record: tuple, unwrapping: _Unwrapping, unavailable: dict, raw: bytes) -> None:
        """One key record of a batch: checked as `unwrap` checks it, then either set
        aside to be unwrapped with the others under its KEK (`_unwrap_all`) or made the
        error that says why it cannot be (the key id made a UUID only for its text)."""
        _, purpose, state, wrapped, kek_id = record
        if state == KeyState.DESTROYED or wrapped is None:
            unavailable[raw] = KeyUnavailableError(f"data key {uuid.UUID(bytes=raw)} was destroyed (crypto-shredded)")
            return
        if kek_id not in self._keks:
            unavailable[raw] = KeyUnavailableError(
                f"data key {uuid.UUID(bytes=raw)} is wrapped by KEK {kek_id}, but the loaded KEK is "
                f"{self.kek_id}: wrong key file, or a KEK rotation was not finished")
            return
        unwrapping.add(kek_id, raw, wrapped if wrapped.__class__ is bytes else bytes(wrapped),
                       raw + _purpose_bytes(purpose))

    def _unwrap_all(self, unwrapping: _Unwrapping, deks: dict, unavailable: dict) -> None:
        """The keys set aside by `_take_record`, unwrapped in one `open_rows` call per KEK
        (100k at scale 1: an AESGCM call each was a tenth of an export). When one of a
        group does not open, the group goes again key by key, so that only that key is
        unavailable, with its reason."""
        for kek_id, (raws, wrapped, tails) in unwrapping.by_kek.items():
            kek = self._kek_keys[kek_id]
            try:
                opened = open_rows([kek] * len(raws), [wrapped], [_WRAP_AAD_HEAD], tails, [b""] * len(raws),
                                   text=False)
                keys = None if opened is None else opened[0]
            except InvalidTag:
                keys = None
            if keys is None:
                aead = self._keks[kek_id]
                keys = []
                for blob, tail in zip(wrapped, tails):
                    try:
                        keys.append(aead.decrypt(blob[:12], blob[12:], _WRAP_AAD_HEAD + tail))
                    except InvalidTag:
                        keys.append(None)
            for raw, key in zip(raws, keys):
                if key is None:
                    unavailable[raw] = CryptoError(f"data key {uuid.UUID(bytes=raw)} failed to unwrap "
                                                   "(tampered key record)")
                elif len(key) != 32:
                    unavailable[raw] = CryptoError(f"data key {uuid.UUID(bytes=raw)} is not 256 bits")
                else:
                    deks[raw] = key

    def _singleton_id(self, conn: Connection, purpose: KeyPurpose) -> uuid.UUID:
        """The practice-wide key of `purpose`, created on first use.

        The cache (shared by the daemon's threads) learns a key only once its row is
        committed: a key created here joins it when a later use finds the row by query
        (after the commit), and is forgotten if its transaction rolls back. Cached
        earlier, another thread would use a key its own transaction cannot read yet, or
        (after a rollback) one that no longer exists: values sealed under it could never
        be opened again."""
        key_id = self._singletons.get(purpose)
        if key_id is not None:
            return key_id
        made = self._made_by.get(purpose)
        if made is not None and made[0] is conn:
            return made[1]                      # this transaction made it: no lookup per use
        key_id = active_singleton(conn, purpose)
        if key_id is None:
            _lock_singletons(conn)
            key_id = active_singleton(conn, purpose)     # made while we waited?
            if key_id is None:
                key_id = self.create_key(conn, purpose).key_id
                self._uncommitted.add(key_id)
                self._made_by[purpose] = (conn, key_id)
                event.listen(conn, "commit", lambda _c: self._settle(purpose, key_id, True), once=True)
                event.listen(conn, "rollback", lambda _c: self._settle(purpose, key_id, False), once=True)
        if key_id not in self._uncommitted:      # found again later in the transaction that made it
            self._singletons[purpose] = key_id
        return key_id

    def _settle(self, purpose: KeyPurpose, key_id: uuid.UUID, committed: bool) -> None:
        """The transaction that created a practice-wide key ended: stop treating the key
        as this transaction's own, and on a rollback drop its cipher."""
        if key_id not in self._uncommitted:
            return                              # settled already (commit, then the pool's reset)
        self._uncommitted.discard(key_id)
        if self._made_by.get(purpose, (None, None))[1] == key_id:
            del self._made_by[purpose]
        if purpose == KeyPurpose.BLIND_INDEX:
            self._made_indexer = None
        # Not cached here even on commit: SQLAlchemy's "commit" event runs *before* the
        # database commits, and another thread given the id now read "data key does not
        # exist" (CI, PostgreSQL). The next use finds the row by its query, waiting on
        # the singleton lock until it is committed, and caches it then.
        if not committed:
            self._ciphers.pop(key_id, None)

    def system_cipher(self, conn: Connection) -> FieldCipher:
        return self.cipher(conn, self._singleton_id(conn, KeyPurpose.SYSTEM))

    def blind_indexer(self, conn: Connection) -> BlindIndexer:
        """The HMAC key for blind indexes: its own DEK, never used for encryption."""
        if self._indexer is not None:
            return self._indexer
        made = self._made_indexer
        if made is not None and made[0] is conn:
            return made[1]                      # made by this transaction, which uses it again
        key_id = self._singleton_id(conn, KeyPurpose.BLIND_INDEX)
        self._ciphers.pop(key_id, None)
        indexer = BlindIndexer(self._load_key(conn, key_id))
        if key_id not in self._uncommitted:     # kept for everyone only once its key is committed
            self._indexer = indexer
        else:
            self._made_indexer = (conn, indexer)
        return indexer

    def signing_key(self, conn: Connection) -> Ed25519PrivateKey:
        """The Ed25519 key that signs audit chain checkpoints (created on first use).

        Its public half is stored in clear beside it, so anyone holding a checkpoint and
        the database (or a copy of the public key) can check a signature without the KEK.
        """
        key_id = active_singleton(conn, KeyPurpose.AUDIT_SIGNING)
        if key_id is None:
            _lock_singletons(conn)
            key_id = active_singleton(conn, KeyPurpose.AUDIT_SIGNING)
        if key_id is None:
            seed = os.urandom(32)
            key_id = new_id()
            public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
            conn.execute(insert(_keys), [{
                "id": key_id, "purpose": KeyPurpose.AUDIT_SIGNING, "client_id": None, "version": 1,
                "wrapped_key": self.wrap(seed, key_id, KeyPurpose.AUDIT_SIGNING),
                "public_key": public, "kek_id": self.kek_id, "state": KeyState.ACTIVE,
                "created_at": utcnow()}])
            return Ed25519PrivateKey.from_private_bytes(seed)
        return Ed25519PrivateKey.from_private_bytes(self._load_key(conn, key_id))

    def client_cipher(self, conn: Connection, client_id: uuid.UUID) -> FieldCipher:
        """The client's newest active DEK (the one new writes use)."""
        key_id = conn.execute(
            select(_keys.c.id).where(_keys.c.client_id == client_id,
                                     _keys.c.state == KeyState.ACTIVE)
            .order_by(_keys.c.version.desc()).limit(1)
        ).scalar()
        if key_id is None:
            raise KeyUnavailableError(f"client {client_id} has no active data key (erased?)")
        return self.cipher(conn, key_id)

    # -- shredding -------------------------------------------------------------------
    def destroy_client_keys(self, conn: Connection, client_id: uuid.UUID) -> int:
        """Crypto-shred: overwrite every wrapped DEK of the client. Returns keys destroyed."""
        ids = list(conn.execute(select(_keys.c.id).where(
            _keys.c.client_id == client_id, _keys.c.state != KeyState.DESTROYED)).scalars())
        if ids:
            conn.execute(update(_keys).where(_keys.c.id.in_(ids)).values(
                wrapped_key=None, state=KeyState.DESTROYED, destroyed_at=utcnow()))
        for key_id in ids:
            self.forget(key_id)
        return len(ids)

    def forget(self, key_id: uuid.UUID) -> None:
        """Drop an unwrapped key from the cache: the one way out of it. Call it when a key
        is destroyed or must no longer be used here (erasure, sync of an erasure).
        BatchKeys already handed out end with their batch."""
        self._ciphers.pop(key_id, None)

    def forget_singleton(self, purpose: KeyPurpose) -> None:
        """Stop using the cached practice-wide key of `purpose`: after a rotation made a
        newer one, the next use reads which is active now."""
        self._singletons.pop(purpose, None)
        self._made_by.pop(purpose, None)
        if purpose == KeyPurpose.BLIND_INDEX:
            self._indexer = None
            self._made_indexer = None
