"""Field encryption: AES-256-GCM with the row's identity bound in as associated data.

Ciphertext layout (all stored as one binary column value):

    version (1 byte) | key id (16 bytes, UUID) | nonce (12 bytes) | ciphertext + tag (16)

The associated data is `table \\0 column \\0 row id`, so a ciphertext copied into another
row or column fails authentication instead of silently decrypting as someone else's
record. The key id travels in clear so the reader knows which data key to unwrap and
key rotation can tell old ciphertext from new.
"""
from __future__ import annotations

import functools
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.core.errors import CryptoError

FORMAT_VERSION = 1
_HEADER = 1 + 16 + 12
_TAG = 16
MIN_CIPHERTEXT = _HEADER + _TAG
_VERSION_BYTE = bytes([FORMAT_VERSION])
_HAS_INTO = hasattr(AESGCM, "encrypt_into")   # cryptography 45+: seal and open into a caller's buffer


def associated_data(table: str, column: str, row_id: uuid.UUID | str) -> bytes:
    return f"{table}\0{column}\0{row_id}".encode()


@functools.lru_cache(maxsize=256)
def _aad_prefix(table: str, column: str) -> bytes:
    return f"{table}\0{column}\0".encode()


def sealed_size(plain_size: int) -> int:
    """How many bytes a value of `plain_size` bytes takes sealed (header and tag)."""
    return plain_size + MIN_CIPHERTEXT


def raw_key_id_of(blob: bytes) -> bytes:
    """The 16 bytes naming the data key a ciphertext was sealed with (what bulk readers
    group by: no UUID object per field); raises CryptoError if it is malformed."""
    if len(blob) < MIN_CIPHERTEXT or blob[0] != FORMAT_VERSION:
        raise CryptoError("ciphertext is malformed (too short or unknown format version)")
    return bytes(blob[1:17])


def key_id_of(blob: bytes) -> uuid.UUID:
    """The data key a ciphertext was sealed with; raises CryptoError if it is malformed."""
    return uuid.UUID(bytes=raw_key_id_of(blob))


class FieldCipher:
    """Seals and opens field values with one data key."""

    __slots__ = ("key_id", "key", "_aead", "_prefix")

    def __init__(self, key_id: uuid.UUID, key: bytes, raw_key_id: bytes | None = None) -> None:
        """`raw_key_id` is `key_id.bytes` when the caller has it already (bulk readers
        open a hundred thousand keys; the property costs a Python call each time).
        `key` stays readable: a bulk read of keys this cipher's cache holds opens
        fields with the bytes (core.crypto.bulk), not with this object."""
        if len(key) != 32:
            raise CryptoError(f"data key {key_id} is not 256 bits")
        self.key_id = key_id
        self.key = bytes(key)
        self._aead = AESGCM(key)
        self._prefix = _VERSION_BYTE + (raw_key_id or key_id.bytes)

    def encrypt(self, plaintext: bytes, aad: bytes, nonce: bytes | None = None) -> bytes:
        """Seal `plaintext`. `nonce` lets bulk writers draw many random nonces in one
        urandom call; it must be 12 fresh random bytes, never reused with this key."""
        nonce = nonce or os.urandom(12)
        return self._prefix + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_into(self, plaintext, aad: bytes, out: bytearray) -> int:
        """`encrypt` into the caller's buffer (at least `sealed_size(len(plaintext))`
        bytes), returning how many bytes of it hold the sealed value: for large values
        sealed one after another (file chunks), where a fresh output buffer per value
        costs more than AES-GCM itself. Same layout and a fresh random nonce."""
        size = sealed_size(len(plaintext))
        view = memoryview(out)
        nonce = os.urandom(12)
        view[:17] = self._prefix
        view[17:_HEADER] = nonce
        if _HAS_INTO:
            self._aead.encrypt_into(nonce, plaintext, aad, view[_HEADER:size])
        else:                      # cryptography before encrypt_into: one more copy
            view[_HEADER:size] = self._aead.encrypt(nonce, bytes(plaintext), aad)
        return size

    def open_into(self, blob, aad: bytes, out, *, where: str = "field") -> int:
        """`decrypt` into the caller's buffer (exactly `len(blob) - MIN_CIPHERTEXT`
        bytes); returns that length. CryptoError as `decrypt`; `out` then holds
        unauthenticated bytes and must be discarded, never handed on."""
        view = memoryview(blob)
        if raw_key_id_of(view) != self._prefix[1:]:
            raise CryptoError(f"{where}: sealed with key {key_id_of(view)}, not {self.key_id}")
        try:
            if _HAS_INTO:
                self._aead.decrypt_into(view[17:_HEADER], view[_HEADER:], aad, out)
            else:
                memoryview(out)[:] = self._aead.decrypt(bytes(view[17:_HEADER]), bytes(view[_HEADER:]), aad)
        except InvalidTag:
            raise CryptoError(
                f"{where}: ciphertext failed authentication (tampered, or moved from another row)"
            ) from None
        return len(view) - MIN_CIPHERTEXT

    def encrypt_fields(self, table: str, row_id: uuid.UUID, values: dict[str, bytes]) -> dict[str, bytes]:
        """Seal several fields of one row: one urandom call and one row-id string for all."""
        rid = str(row_id).encode()
        randomness = os.urandom(12 * len(values))
        prefix, seal = self._prefix, self._aead.encrypt
        out = {}
        offset = 0
        for field, plain in values.items():
            nonce = randomness[offset:offset + 12]
            offset += 12
            out[field] = prefix + nonce + seal(nonce, plain, _aad_prefix(table, field) + rid)
        return out

    def encrypt_text(self, value: str, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return self.encrypt(value.encode(), associated_data(table, column, row_id))

    def decrypt(self, blob: bytes, aad: bytes, *, where: str = "field") -> bytes:
        blob = bytes(blob)
        if raw_key_id_of(blob) != self._prefix[1:]:
            raise CryptoError(f"{where}: sealed with key {key_id_of(blob)}, not {self.key_id}")
        try:
            return self._aead.decrypt(blob[17:_HEADER], blob[_HEADER:], aad)
        except InvalidTag:
            raise CryptoError(
                f"{where}: ciphertext failed authentication (tampered, or moved from another row)"
            ) from None

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """`decrypt` for bulk readers that have already checked the header and grouped
        ciphertexts by key (core.crypto.keyring.BatchKeys): raises InvalidTag as it is,
        for the caller to name the field."""
        return self._aead.decrypt(blob[17:_HEADER], blob[_HEADER:], aad)

    @property
    def opener(self):
        """AES-GCM decrypt itself, `(nonce, ciphertext + tag, aad) -> plaintext`: for bulk
        readers that slice the ciphertext themselves (blob[17:29], blob[29:]) and open
        hundreds of thousands of fields, where one Python call per field is a measurable
        share (raises InvalidTag as it is)."""
        return self._aead.decrypt

    def decrypt_text(self, blob: bytes, table: str, column: str, row_id: uuid.UUID) -> str:
        where = f"{table}.{column} of row {row_id}"
        return self.decrypt(blob, associated_data(table, column, row_id), where=where).decode()
