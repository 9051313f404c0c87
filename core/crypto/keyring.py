"""The keyring: data keys (DEKs) stored wrapped by the KEK in `data_keys`.

One DEK per client makes erasure real: destroying it (crypto-shredding) leaves that
client's ciphertext unreadable everywhere, in old backups too. Secrets that belong to no
client (TOTP seeds) use the system DEK; blind indexes use their own HMAC key.

Wrapping is AES-256-GCM under the KEK with the key id and purpose as associated data, so
a wrapped key copied onto another key record does not unwrap. Unwrapped DEKs are cached
for the life of the Keyring; `forget` drops one (after shredding).
"""
from __future__ import annotations

import os
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, insert, select, update

from strongroom.core.crypto.blind_index import BlindIndexer
from strongroom.core.crypto.fields import FieldCipher
from strongroom.core.crypto.kek import Kek
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError, KeyUnavailableError
from strongroom.core.ids import new_id

_keys = DataKey.__table__


# Unwrapped keys kept in memory: enough for a working set of clients, bounded so the
# daemon's memory does not grow with the number of clients in the database.
CIPHER_CACHE_SIZE = 4096


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        value = super().get(key, default)
        if value is not default:
            self.move_to_end(key)
        return value

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


def _wrap_aad(key_id: uuid.UUID, purpose: KeyPurpose) -> bytes:
    return b"strongroom-dek\0" + key_id.bytes + purpose.value.encode()


@dataclass(frozen=True)
class NewKey:
    """A freshly generated DEK and the row that stores it wrapped."""

    cipher: FieldCipher
    row: dict


class Keyring:
    def __init__(self, keks: list[Kek]) -> None:
        if not keks:
            raise KeyUnavailableError("no key-encryption key loaded")
        self._keks = {k.kek_id: AESGCM(k.key) for k in keks}
        self.primary = keks[0]
        self._ciphers = _Lru(CIPHER_CACHE_SIZE)
        self._singletons: dict[KeyPurpose, uuid.UUID] = {}
        self._indexer: BlindIndexer | None = None

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

    def _singleton_id(self, conn: Connection, purpose: KeyPurpose) -> uuid.UUID:
        key_id = self._singletons.get(purpose)
        if key_id is None:
            key_id = conn.execute(
                select(_keys.c.id).where(_keys.c.purpose == purpose, _keys.c.state == KeyState.ACTIVE)
                .order_by(_keys.c.version.desc()).limit(1)
            ).scalar()
            if key_id is None:
                key_id = self.create_key(conn, purpose).key_id
            self._singletons[purpose] = key_id
        return key_id

    def system_cipher(self, conn: Connection) -> FieldCipher:
        return self.cipher(conn, self._singleton_id(conn, KeyPurpose.SYSTEM))

    def blind_indexer(self, conn: Connection) -> BlindIndexer:
        """The HMAC key for blind indexes: its own DEK, never used for encryption."""
        if self._indexer is None:
            key_id = self._singleton_id(conn, KeyPurpose.BLIND_INDEX)
            self._ciphers.pop(key_id, None)
            self._indexer = BlindIndexer(self._load_key(conn, key_id))
        return self._indexer

    def signing_key(self, conn: Connection) -> Ed25519PrivateKey:
        """The Ed25519 key that signs audit chain checkpoints (created on first use).

        Its public half is stored in clear beside it, so anyone holding a checkpoint and
        the database (or a copy of the public key) can check a signature without the KEK.
        """
        key_id = conn.execute(
            select(_keys.c.id).where(_keys.c.purpose == KeyPurpose.AUDIT_SIGNING,
                                     _keys.c.state == KeyState.ACTIVE)
            .order_by(_keys.c.version.desc()).limit(1)).scalar()
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
        self._ciphers.pop(key_id, None)
