"""A file's content as sealed chunks in a storage target, streamed both ways.

Layout. The plaintext is cut into chunks of CHUNK_SIZE (1 MiB). Each chunk is optionally
zstd-compressed (kept only where it is smaller), prefixed with a codec byte, and sealed
with the client's data key (AES-256-GCM, fresh random nonce, core.crypto.fields layout)
under associated data naming the file, the chunk's index and whether it is the last:

    b"strongroom.file.chunk\\0" | file id (16) | index (8, big-endian) | final (1)

so a chunk copied from another file, moved to another index, or a file cut short (its
new last chunk was sealed as "not final") fails authentication. Each chunk is one
object, named by a keyed hash of the file id, its index and its plaintext's SHA-256; a
manifest object, written last, lists the chunks and is sealed the same way (AAD naming
the file and "manifest") and named by a keyed hash of the file id and the SHA-256 of the
whole plaintext. The keyed hash is the blind-index HMAC (a system key the store never
sees, its own field name per use), so object names reveal neither plaintext hashes nor
file ids, and the store can be listed without learning which files are equal.

No deduplication in the live store: every chunk is sealed to its file, so two files
with equal content share nothing (backups deduplicate on their own, issue 19 item 3).

Memory holds one chunk (plus the manifest's list of chunk names, 33 bytes per MiB)
whatever the file's size. A manifest is written only after every chunk is stored, so
a crash mid-write leaves chunks no manifest names (orphans for the integrity job to
find, never a readable half file).
"""
from __future__ import annotations

import hashlib
import json
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from strongroom.core.crypto.blind_index import BlindIndexer
from strongroom.core.crypto.fields import FieldCipher, key_id_of
from strongroom.core.errors import CryptoError, IntegrityError, NotFoundError, StrongroomError
from strongroom.core.storage.base import Target

CHUNK_SIZE = 1024 * 1024
PREFIX = "files"
_CHUNK_AAD = b"strongroom.file.chunk\0"
_MANIFEST_AAD = b"strongroom.file.manifest\0"
_RAW, _ZSTD = 0, 1
MANIFEST_VERSION = 1


def chunk_aad(file_id: uuid.UUID, index: int, final: bool) -> bytes:
    """What a chunk is bound to: its file, its place, and whether it ends the file."""
    return _CHUNK_AAD + file_id.bytes + struct.pack(">QB", index, 1 if final else 0)


def object_key(indexer: BlindIndexer, use: str, term: str) -> str:
    """A store key from a keyed hash: `files/<2 hex>/<32 hex>` (sharded like chunks)."""
    digest = indexer.index(f"client_files.{use}", term).hex()
    return f"{PREFIX}/{digest[:2]}/{digest}"


def content_digest(indexer: BlindIndexer, sha256_hex: str) -> str:
    """The keyed digest of a plaintext SHA-256 kept in the row's `sha256` column: the
    database holds no fingerprint anyone without the system key could match a document to."""
    return indexer.index("client_files.sha256", sha256_hex).hex()


@dataclass(frozen=True)
class StoredContent:
    storage_key: str     # the manifest's key
    digest: str          # content_digest of the plaintext
    size: int            # plaintext bytes
    chunks: int


class ContentWriter:
    """Seal and store a file's content as it arrives: `write` any amount, then `finish`
    (writes the manifest, returns where it is) or `abort` (deletes what was stored)."""

    def __init__(self, target: Target, cipher: FieldCipher, indexer: BlindIndexer, file_id: uuid.UUID,
                 *, compress: bool = True, extra: dict | None = None) -> None:
        self._target, self._cipher, self._indexer, self.file_id = target, cipher, indexer, file_id
        self._compressor = zstandard.ZstdCompressor(level=3) if compress else None
        self._extra = extra or {}
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._keys: list[str] = []
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        """Take more plaintext; full chunks are sealed and stored at once. The last full
        chunk is held back until more arrives or `finish`, which seals it as final."""
        if self._done:
            raise StrongroomError("content writer already finished")
        self._buffer += data
        self._hash.update(data)
        self.size += len(data)
        while len(self._buffer) > CHUNK_SIZE:
            self._store(bytes(self._buffer[:CHUNK_SIZE]), final=False)
            del self._buffer[:CHUNK_SIZE]

    def finish(self) -> StoredContent:
        """Store the final chunk and then the manifest; the content exists from here on."""
        if self._done:
            raise StrongroomError("content writer already finished")
        self._store(bytes(self._buffer), final=True)
        self._buffer = bytearray()
        self._done = True
        sha = self._hash.hexdigest()
        manifest = json.dumps({"v": MANIFEST_VERSION, "size": self.size, "chunk_size": CHUNK_SIZE,
                               "chunks": self._keys, **self._extra}).encode()
        key = object_key(self._indexer, "manifest", f"{self.file_id}:{sha}")
        self._target.put(key, self._cipher.encrypt(manifest, _MANIFEST_AAD + self.file_id.bytes))
        self._keys.append(key)
        return StoredContent(key, content_digest(self._indexer, sha), self.size, len(self._keys) - 1)

    def abort(self) -> None:
        """Delete every object this writer stored (a failed or cancelled add)."""
        self._done = True
        for key in self._keys:
            self._target.delete(key)
        self._keys = []

    def _store(self, plain: bytes, *, final: bool) -> None:
        index = len(self._keys)
        body, codec = plain, _RAW
        if self._compressor is not None and plain:
            packed = self._compressor.compress(plain)
            if len(packed) < len(plain):
                body, codec = packed, _ZSTD
        sealed = self._cipher.encrypt(bytes([codec]) + body, chunk_aad(self.file_id, index, final))
        key = object_key(self._indexer, "chunk", f"{self.file_id}:{index}:{hashlib.sha256(plain).hexdigest()}")
        self._target.put(key, sealed)
        self._keys.append(key)


def _fetch(target: Target, key: str, file_id: uuid.UUID, what: str) -> bytes:
    try:
        return target.get(key)
    except NotFoundError:
        raise IntegrityError(f"file {file_id}: its {what} is missing from the store") from None


def read_manifest(target: Target, cipher_for, file_id: uuid.UUID, storage_key: str) -> dict:
    """The file's manifest, opened; IntegrityError naming the file if it is missing or
    does not authenticate. `cipher_for(key_id)` gives the cipher of a data key."""
    blob = _fetch(target, storage_key, file_id, "manifest")
    try:
        plain = cipher_for(key_id_of(blob)).decrypt(blob, _MANIFEST_AAD + file_id.bytes,
                                                    where=f"file {file_id} manifest")
        manifest = json.loads(plain)
    except (CryptoError, ValueError):
        raise IntegrityError(f"file {file_id}: the stored manifest failed authentication "
                             "(tampered, or not this file's)") from None
    if manifest.get("v") != MANIFEST_VERSION or not manifest.get("chunks"):
        raise IntegrityError(f"file {file_id}: the stored manifest has an unknown format")
    return manifest


def read_chunks(target: Target, cipher_for, file_id: uuid.UUID, storage_key: str,
                *, size: int, digest: str, indexer: BlindIndexer) -> Iterator[bytes]:
    """Yield the plaintext a chunk at a time, each authenticated before it is yielded;
    after the last, the whole is checked against the row's size and keyed digest. Any
    failure raises IntegrityError naming the file (never its name or content), so a
    caller that writes to a temporary file and renames only at the end never delivers
    a tampered, reordered or truncated file."""
    manifest = read_manifest(target, cipher_for, file_id, storage_key)
    keys = manifest["chunks"]
    whole = hashlib.sha256()
    total = 0
    decompressor = zstandard.ZstdDecompressor()
    for index, key in enumerate(keys):
        blob = _fetch(target, key, file_id, f"chunk {index}")
        try:
            plain = cipher_for(key_id_of(blob)).decrypt(blob, chunk_aad(file_id, index, index == len(keys) - 1),
                                                         where=f"file {file_id} chunk {index}")
        except CryptoError:
            raise IntegrityError(f"file {file_id}: chunk {index} failed authentication "
                                 "(tampered, swapped from another file, reordered or truncated)") from None
        codec, body = plain[0], plain[1:]
        if codec == _ZSTD:
            try:
                body = decompressor.decompress(body, max_output_size=CHUNK_SIZE)
            except zstandard.ZstdError:
                raise IntegrityError(f"file {file_id}: chunk {index} does not decompress") from None
        elif codec != _RAW:
            raise IntegrityError(f"file {file_id}: chunk {index} has an unknown codec")
        whole.update(body)
        total += len(body)
        if total > size:
            raise IntegrityError(f"file {file_id}: the stored content is longer than recorded")
        if index == len(keys) - 1:
            if total != size or content_digest(indexer, whole.hexdigest()) != digest:
                raise IntegrityError(f"file {file_id}: the stored content does not match its recorded hash")
        yield body


def object_keys(target: Target, cipher_for, file_id: uuid.UUID, storage_key: str) -> list[str]:
    """Every object of a file, its chunks first and its manifest last (the order to
    delete them in). A manifest that no longer opens is listed alone: its chunks are
    then orphans for the integrity job."""
    try:
        keys = list(read_manifest(target, cipher_for, file_id, storage_key)["chunks"])
    except IntegrityError:
        keys = []
    return [*keys, storage_key]
