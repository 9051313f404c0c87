"""One chunk of a backup repository: its keyed content address, its sealed format.

A chunk is stored at chunks/<2 hex>/<64 hex> (layout.chunk_key) as
``version byte | 96-bit nonce | AES-256-GCM(zstd(plain))``. The functions here seal and
open one chunk given the keys derived from the backup key (repo_keys.derive_subkeys);
`Repository.store_chunk` / `load_chunk` add the storage round trip and deduplication.

Content addresses. A chunk's address is HMAC-SHA256(address key, plaintext), not
SHA-256(plaintext). A plain hash lets anyone holding the repository (or two
repositories) test a guess ("is this exact export of this patient list in there?") and
see which repositories hold identical data; a keyed address dedupes identical chunks
within one repository only and reveals nothing outside it. It cannot be SHA-256 of the
ciphertext either: with random nonces equal plaintexts encrypt differently, which would
end deduplication. The address is the chunk cipher's associated data, so a chunk moved
or copied to another key fails authentication, and `open_chunk` recomputes it from the
decrypted plaintext. Random 96-bit nonces under one key are safe up to about 2^32
chunks (NIST SP 800-38D), i.e. petabytes at 4-8 MiB per chunk.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.core.backup.layout import chunk_key
from strongroom.core.backup.manifest import ChunkRef
from strongroom.core.errors import IntegrityError

CHUNK_VERSION = 1
_NONCE = 12
_TAG = 16
_HEADER = bytes([CHUNK_VERSION])
_CHUNK_AAD = b"strongroom-backup-chunk\0"
DEFAULT_LEVEL = 3


@dataclass(frozen=True)
class StoredChunk:
    """What `store_chunk` did: the reference for the manifest and the bytes it added.

    `new_bytes` is 0 when the chunk was already in the repository (deduplicated).
    """

    ref: ChunkRef
    new_bytes: int


def address_hasher(address_key: bytes) -> hmac.HMAC:
    """An empty address hash, to feed a chunk's plaintext piece by piece.

    An HMAC object, not hmac.digest(): its update() releases the GIL on large inputs
    (3.11's one-shot digest does not), so threads hash in parallel."""
    return hmac.new(address_key, digestmod=hashlib.sha256)


def address_of(address_key: bytes, plain: bytes) -> str:
    """The chunk's content address: HMAC-SHA256(address key, plaintext), hex."""
    mac = address_hasher(address_key)
    mac.update(plain)
    return mac.hexdigest()


def new_compressor(level: int = DEFAULT_LEVEL, threads: int = 0) -> zstandard.ZstdCompressor:
    """A zstd compressor for chunks (not thread-safe: one per thread).

    The frame records the content size, so `open_chunk` decompresses in one piece."""
    return zstandard.ZstdCompressor(level=level, threads=threads, write_content_size=True)


def new_decompressor() -> zstandard.ZstdDecompressor:
    """A zstd decompressor for chunks (not thread-safe: one per thread)."""
    return zstandard.ZstdDecompressor()


def _aad(address: str) -> bytes:
    return _CHUNK_AAD + _HEADER + address.encode()


def seal_chunk(plain: bytes, address: str, *, cipher: AESGCM,
               compressor: zstandard.ZstdCompressor) -> bytes:
    """The stored form of `plain` at `address`: version, nonce, AES-GCM(zstd(plain))."""
    compressed = compressor.compress(plain)
    nonce = os.urandom(_NONCE)
    sealed = cipher.encrypt(nonce, compressed, _aad(address))
    del compressed
    return b"".join((_HEADER, nonce, sealed))


def open_chunk(data: bytes, ref: ChunkRef, *, cipher: AESGCM,
               decompressor: zstandard.ZstdDecompressor, address_key: bytes,
               recheck_address: bool = True) -> bytes:
    """Authenticate, decrypt, decompress and re-check the stored chunk `data` of `ref`.

    Any change to the stored object (a flipped bit, truncation, a chunk copied to
    another address, a chunk from another repository) raises IntegrityError naming
    the object key. The address is the cipher's associated data, so authentication
    already binds the chunk to it; `recheck_address=False` skips recomputing the keyed
    hash of the plaintext.
    """
    key = chunk_key(ref.address)
    view = memoryview(data)
    if len(view) < 1 + _NONCE + _TAG:
        raise IntegrityError(f"chunk {key} is truncated ({len(view)} bytes)")
    if view[0] != CHUNK_VERSION:
        raise IntegrityError(f"chunk {key} has unknown format version {view[0]} "
                             "(corrupted or tampered)")
    try:
        compressed = cipher.decrypt(view[1:1 + _NONCE], view[1 + _NONCE:], _aad(ref.address))
    except InvalidTag:
        raise IntegrityError(f"chunk {key} failed authentication "
                             "(corrupted or tampered)") from None
    try:
        plain = decompressor.decompress(compressed, max_output_size=ref.size)
    except zstandard.ZstdError:
        raise IntegrityError(f"chunk {key} does not decompress to its recorded size "
                             f"{ref.size}") from None
    if len(plain) != ref.size:
        raise IntegrityError(f"chunk {key} holds {len(plain)} bytes; the manifest "
                             f"records {ref.size}")
    if recheck_address and not hmac.compare_digest(address_of(address_key, plain),
                                                   ref.address):
        raise IntegrityError(f"chunk {key} does not match its content address")
    return plain
