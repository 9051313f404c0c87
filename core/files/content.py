"""A file's content as sealed chunks in a storage target, streamed both ways.

Layout. The plaintext is cut into chunks of CHUNK_SIZE (4 MiB; files stored before
it grew were cut at 1 MiB, and the manifest's `chunk_size` says which, so both read).
Each chunk is optionally
zstd-compressed (tried only where two small samples of it shrink, kept only where it is
smaller), prefixed with a codec byte, and sealed
with the client's data key (AES-256-GCM, fresh random nonce, core.crypto.fields layout)
under associated data naming the file, the chunk's index and whether it is the last:

    b"strongroom.file.chunk\\0" | file id (16) | index (8, big-endian) | final (1)

so a chunk copied from another file, moved to another index, or a file cut short (its
new last chunk was sealed as "not final") fails authentication. Each chunk is one
object, named by a keyed hash of the file id, its index and a random token drawn once
per write (older files: the chunk's plaintext SHA-256 in its place; names are only
ever looked up through the manifest, so both kinds read the same); a manifest object, written last, lists the chunks and is sealed the same way (AAD naming
the file and "manifest") and named by a keyed hash of the file id and the hash of the
whole plaintext. The keyed hash is the blind-index HMAC (a system key the store never
sees, its own field name per use), so object names reveal neither plaintext hashes nor
file ids, and the store can be listed without learning which files are equal.

The whole-file hash. Manifest version 2 (files stored from 2026-12-06) hashes the
plaintext with BLAKE3; version 1 (before) with SHA-256, and both still read. The
row's `sha256` column keeps, under its source-model name, the keyed digest of that
hash (`content_digest`; a BLAKE3 term is prefixed "blake3:", so the two can never
match each other). SHA-256 ran at 1.9 GB/s here against BLAKE3's 7 GB/s on one core,
and being sequential it was the longest step of both an add and a get of a large file.

No deduplication in the live store: every chunk is sealed to its file, so two files
with equal content share nothing (backups deduplicate on their own, issue 19 item 3).

Speed. Writing, chunks are compressed, sealed and stored (each an fsynced object) by
WORKERS threads while the caller feeds more plaintext; zstd, AES-GCM, BLAKE3 and the
fsyncs release the GIL, so the stages overlap. The plaintext is hashed once (the whole
file's hash; a chunk is not hashed on its own). Reading, the next chunks are fetched
and opened by the same number of threads while the caller takes the current one.
WORKERS is 2: more threads than the two cores a small practice's machine has only
add memory.

Where the store can (LocalTarget.put_batch), chunks are written without waiting for
the disk each time: each is handed to the disk as it is written and all of them are
fsynced together, directories once each, before the manifest is written (PutBatch),
so the disk streams instead of taking one fsynced chunk at a time. A reader that
writes each chunk out before taking the next (repository.save_download) reads with
`reuse`, into a few plaintext buffers used over and over.

Memory holds a few chunks (at most WORKERS in flight each way, plus the manifest's
list of chunk names) whatever the file's size. A manifest is written only after every
chunk is stored (every worker's put has returned, every chunk directory fsynced), so a
crash mid-write leaves chunks no manifest names (orphans for the integrity job to find,
never a readable half file).
"""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
import struct
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from queue import Empty, SimpleQueue
from dataclasses import dataclass

import blake3
import zstandard

from strongroom.core.crypto.blind_index import BlindIndexer
from strongroom.core.crypto.fields import MIN_CIPHERTEXT, FieldCipher, key_id_of, sealed_size
from strongroom.core.errors import CryptoError, IntegrityError, NotFoundError, StrongroomError
from strongroom.core.storage.base import Target

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 * 1024 * 1024
LEGACY_CHUNK_SIZE = 1024 * 1024     # files stored before chunks grew to 4 MiB
MAX_CHUNK_SIZE = 64 * 1024 * 1024   # the largest chunk_size a manifest may name
WORKERS = 2                          # threads sealing/storing (writing) or fetching/opening (reading)
PREFIX = "files"
_CHUNK_AAD = b"strongroom.file.chunk\0"
_MANIFEST_AAD = b"strongroom.file.manifest\0"
_RAW, _ZSTD = 0, 1
MANIFEST_VERSION = 2                 # what is written; 1 still reads (see "The whole-file hash")
_WHOLE_HASHES = {1: hashlib.sha256, 2: blake3.blake3}
SAMPLE = 64 * 1024                   # bytes of a chunk tried for compressibility, twice
# Sealed chunks stay in the page cache (False: dropped once written or read). Measured
# at 1 GiB (bench/results/files-s1-pipe.md): dropping them made add no faster and get,
# then read from disk, 2.8x -> 3.9x cp + fsync; kept.
CACHE_CHUNKS = True


def chunk_aad(file_id: uuid.UUID, index: int, final: bool) -> bytes:
    """What a chunk is bound to: its file, its place, and whether it ends the file."""
    return _CHUNK_AAD + file_id.bytes + struct.pack(">QB", index, 1 if final else 0)


def object_key(indexer: BlindIndexer, use: str, term: str) -> str:
    """A store key from a keyed hash: `files/<2 hex>/<32 hex>` (sharded like chunks)."""
    digest = indexer.index(f"client_files.{use}", term).hex()
    return f"{PREFIX}/{digest[:2]}/{digest}"


def content_digest(indexer: BlindIndexer, term: str) -> str:
    """The keyed digest kept in the row's `sha256` column, of `whole_hash_term`: the
    database holds no fingerprint anyone without the system key could match a document to."""
    return indexer.index("client_files.sha256", term).hex()


def whole_hash_term(version: int, whole) -> str:
    """What the keyed digest is taken of: a version 1 file's SHA-256 in hex (as it always
    was), a version 2 file's BLAKE3 in hex after "blake3:"."""
    return whole.hexdigest() if version == 1 else f"blake3:{whole.hexdigest()}"


@dataclass(frozen=True)
class StoredContent:
    storage_key: str     # the manifest's key
    digest: str          # content_digest of the plaintext
    size: int            # plaintext bytes
    chunks: int


class ContentWriter:
    """Seal and store a file's content as it arrives: `write` any amount, then `finish`
    (writes the manifest, returns where it is) or `abort` (deletes what was stored).

    Plaintext is copied once, into a chunk buffer that is reused (byte 0 is kept for
    the codec, so a chunk is sealed straight from it); each worker seals into its own
    reused output buffer. A fresh 4 MiB buffer per chunk cost more than AES-GCM (page
    faults on memory the allocator had just given back), so at most WORKERS + 1 chunk
    buffers and WORKERS sealed ones exist per writer, whatever the file's size."""

    def __init__(self, target: Target, cipher: FieldCipher, indexer: BlindIndexer, file_id: uuid.UUID,
                 *, compress: bool = True, extra: dict | None = None) -> None:
        self._target, self._cipher, self._indexer, self.file_id = target, cipher, indexer, file_id
        self._compress = compress
        self._extra = extra or {}
        self._views = bool(getattr(target, "accepts_views", False))
        # chunks made durable together before the manifest (LocalTarget.put_batch)
        self._batch = target.put_batch() if CACHE_CHUNKS and getattr(target, "batches_puts", False) else None
        self._put_options = {"cache": False} if not CACHE_CHUNKS and getattr(target, "cache_hints", False) else {}
        self._put = self._batch.put if self._batch is not None else self._target.put
        self._buffer: bytearray | None = None   # the chunk being filled: codec byte, then plaintext
        self._filled = 0                        # plaintext bytes in _buffer
        self._free: list[bytearray] = []       # chunk buffers back from the workers
        self._hash = _WHOLE_HASHES[MANIFEST_VERSION]()
        self._token = secrets.token_hex(16)
        self._keys: list[str] = []          # every chunk handed to a worker, in order
        self._pending: deque[tuple[Future, Future]] = deque()   # (hashed, stored) per chunk in flight
        self._pool: ThreadPoolExecutor | None = None
        self._hasher: ThreadPoolExecutor | None = None   # one thread: the chunks are hashed in order
        self._local = threading.local()     # each worker's sealed-chunk buffer
        self.size = 0
        self._done = False

    def write(self, data) -> None:
        """Take more plaintext (any bytes-like object; copied before this returns);
        full chunks go to the workers at once. The last full chunk is held back until
        more arrives or `finish`, which seals it as final. A worker's error on an
        earlier chunk is raised here (or by `finish`), after everything stored so far
        is deleted again (as `abort`)."""
        if self._done:
            raise StrongroomError("content writer already finished")
        view = memoryview(data).cast("B")
        if not view:
            return
        self.size += len(view)
        try:
            while view:
                if self._buffer is None:
                    self._buffer, self._filled = self._free.pop() if self._free else bytearray(1 + CHUNK_SIZE), 0
                elif self._filled == CHUNK_SIZE:      # full, and more follows: not the last
                    self._submit(final=False)
                    continue
                n = min(len(view), CHUNK_SIZE - self._filled)
                self._buffer[1 + self._filled:1 + self._filled + n] = view[:n]
                self._filled += n
                view = view[n:]
        except BaseException:
            self.abort()
            raise

    def drain(self) -> None:
        """Wait until every full chunk handed on so far is stored (all but the held-back
        last one); a worker's error is raised, after everything stored is deleted."""
        try:
            while self._pending:
                self._free.append(self._settle())
        except BaseException:
            self.abort()
            raise

    def finish(self) -> StoredContent:
        """Store the final chunk, wait until every chunk is stored, then write the
        manifest; the content exists from here on."""
        if self._done:
            raise StrongroomError("content writer already finished")
        self._done = True
        try:
            if self._buffer is None:
                self._buffer, self._filled = bytearray(1), 0
            self._submit(final=True)
            while self._pending:
                self._settle()
            self._shutdown()
            if self._batch is not None:      # every chunk durable before the manifest names it
                self._batch.sync()
            term = whole_hash_term(MANIFEST_VERSION, self._hash)
            key = object_key(self._indexer, "manifest", f"{self.file_id}:{term}")
            manifest = json.dumps({"v": MANIFEST_VERSION, "size": self.size, "chunk_size": CHUNK_SIZE,
                                   "chunks": self._keys, **self._extra}).encode()
            self._target.put(key, self._cipher.encrypt(manifest, _MANIFEST_AAD + self.file_id.bytes))
        except BaseException:
            self.abort()
            raise
        self._free = []
        self._keys.append(key)
        return StoredContent(key, content_digest(self._indexer, term), self.size, len(self._keys) - 1)

    def abort(self) -> None:
        """Delete every object this writer stored (a failed or cancelled add), after
        the workers have stopped, so none is stored behind the deletes."""
        self._done = True
        self._buffer, self._filled, self._free = None, 0, []
        futures = [future for pair in self._pending for future in pair]
        for future in futures:
            future.cancel()
        for future in futures:
            if not future.cancelled():
                try:
                    future.result()
                except Exception:   # noqa: BLE001 - being aborted anyway; the objects go below
                    pass
        self._pending.clear()
        self._shutdown()
        if self._batch is not None:
            self._batch.abort()
        # Each object deleted that can be. This runs while an error is on its way out:
        # a store that refuses deletes too is logged, never raised over the cause, and
        # what stays has no row, so the next integrity run removes it as an orphan.
        kept = 0
        for key in self._keys:
            try:
                self._target.delete(key)
            except Exception as exc:   # noqa: BLE001 - see above
                kept += 1
                failure = type(exc).__name__
        if kept:
            log.warning("could not delete the chunks an aborted upload stored; the integrity run removes "
                        "them as orphans", extra={"error": failure, "objects": kept, "file_id": str(self.file_id)})
        self._keys = []

    def _submit(self, *, final: bool) -> None:
        """Hand the buffer being filled to a worker."""
        buffer, filled = self._buffer, self._filled
        self._buffer, self._filled = None, 0
        index = len(self._keys)
        key = object_key(self._indexer, "chunk", f"{self.file_id}:{index}:{self._token}")
        self._keys.append(key)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="files-write")
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="files-hash")
        # Bounded: at most WORKERS chunks in flight (memory), each worker busy; a
        # finished chunk's buffer is filled again. The whole-file hash (sequential,
        # the dearest step per byte) runs beside the sealing, off the caller's thread.
        while len(self._pending) >= WORKERS:
            self._free.append(self._settle())
        hashed = self._hasher.submit(self._hash.update, memoryview(buffer)[1:1 + filled])
        self._pending.append((hashed, self._pool.submit(self._store, key, buffer, filled, index, final)))

    def _settle(self) -> bytearray:
        """Wait for the oldest chunk in flight to be hashed and stored; its buffer."""
        hashed, stored = self._pending.popleft()
        hashed.result()
        return stored.result()

    def _shutdown(self) -> None:
        for pool in (self._pool, self._hasher):
            if pool is not None:
                pool.shutdown(wait=True)
        self._pool = self._hasher = None

    def _store(self, key: str, buffer: bytearray, filled: int, index: int, final: bool) -> bytearray:
        """Compress (where worth it), seal and store one chunk; returns its buffer for reuse."""
        plain = memoryview(buffer)[1:1 + filled]
        aad = chunk_aad(self.file_id, index, final)
        if self._compress and filled and worth_compressing(plain):
            packed = zstandard.ZstdCompressor(level=3).compress(plain)
            if len(packed) < filled:
                self._put(key, self._cipher.encrypt(bytes([_ZSTD]) + packed, aad), **self._put_options)
                return buffer
            del packed
        buffer[0] = _RAW
        sealed = getattr(self._local, "sealed", None)
        if sealed is None:
            sealed = self._local.sealed = bytearray(sealed_size(1 + CHUNK_SIZE))
        n = self._cipher.seal_into(memoryview(buffer)[:1 + filled], aad, sealed)
        out = memoryview(sealed)[:n]
        self._put(key, out if self._views else bytes(out), **self._put_options)
        return buffer


def worth_compressing(plain: bytes) -> bool:
    """Whether zstd is likely to shrink this chunk, judged from two small samples (its
    start and its middle) compressed at the fastest level. Most of what a practice files
    (scans, photos, PDFs) is compressed already, and compressing a 4 MiB chunk of that
    for nothing took longer than sealing and storing it (13 ms against 4). A chunk
    whose samples do not shrink by a tenth is stored as it is."""
    if len(plain) <= 2 * SAMPLE:
        return True
    view = memoryview(plain)
    middle = len(plain) // 2
    squeeze = zstandard.ZstdCompressor(level=1)
    return any(len(squeeze.compress(sample)) < 0.9 * SAMPLE
               for sample in (view[:SAMPLE], view[middle:middle + SAMPLE]))


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
    if type(manifest.get("v")) is not int or manifest["v"] not in _WHOLE_HASHES or not manifest.get("chunks"):
        raise IntegrityError(f"file {file_id}: the stored manifest has an unknown format")
    return manifest


def _chunk_size(manifest: dict, file_id: uuid.UUID) -> int:
    """The manifest's chunk size (1 MiB for files stored before chunks grew), bounded
    so a manifest cannot make a reader inflate a chunk without limit."""
    size = manifest.get("chunk_size", LEGACY_CHUNK_SIZE)
    if type(size) is not int or not 0 < size <= MAX_CHUNK_SIZE:
        raise IntegrityError(f"file {file_id}: the stored manifest has an unknown format")
    return size


_reading = threading.local()   # each reader thread's buffer for sealed chunks (targets with read_into)


def _fetch_sealed(target: Target, key: str, file_id: uuid.UUID, what: str):
    """A sealed chunk: read into this thread's reused buffer where the target can
    (LocalTarget.read_into; the view is good until this thread's next read), else `get`."""
    read_into = getattr(target, "read_into", None)
    if read_into is None:
        return _fetch(target, key, file_id, what)
    buffer = getattr(_reading, "buffer", None)
    if buffer is None:
        buffer = _reading.buffer = bytearray(sealed_size(1 + CHUNK_SIZE))
    try:
        if not CACHE_CHUNKS and getattr(target, "cache_hints", False):
            return read_into(key, buffer, cache=False)
        return read_into(key, buffer)
    except NotFoundError:
        raise IntegrityError(f"file {file_id}: its {what} is missing from the store") from None


def _open_chunk(target: Target, cipher_for, file_id: uuid.UUID, key: str, index: int, final: bool,
                chunk_size: int, pool: SimpleQueue | None = None):
    """Fetch, authenticate and decompress one chunk (run by a reader's worker thread).
    With `pool` (free plaintext buffers of 1 + chunk_size bytes), a raw chunk is opened
    into one of them and returned as (view of its plaintext, the buffer to give back);
    else as a bytes or bytearray of its own."""
    blob = _fetch_sealed(target, key, file_id, f"chunk {index}")
    if len(blob) < MIN_CIPHERTEXT + 1 or len(blob) > MIN_CIPHERTEXT + 1 + MAX_CHUNK_SIZE:
        raise IntegrityError(f"file {file_id}: chunk {index} failed authentication "
                             "(tampered, swapped from another file, reordered or truncated)")
    n = len(blob) - MIN_CIPHERTEXT
    buffer = None
    if pool is not None and n <= 1 + chunk_size:
        try:
            buffer = pool.get_nowait()
        except Empty:
            buffer = bytearray(1 + chunk_size)
    plain = memoryview(buffer)[:n] if buffer is not None else bytearray(n)
    try:
        cipher_for(key_id_of(blob)).open_into(blob, chunk_aad(file_id, index, final), plain,
                                              where=f"file {file_id} chunk {index}")
    except CryptoError:
        if buffer is not None:
            pool.put(buffer)
        raise IntegrityError(f"file {file_id}: chunk {index} failed authentication "
                             "(tampered, swapped from another file, reordered or truncated)") from None
    del blob
    codec = plain[0]
    if codec == _ZSTD:
        try:
            body = zstandard.ZstdDecompressor().decompress(plain[1:], max_output_size=chunk_size)
        except zstandard.ZstdError:
            raise IntegrityError(f"file {file_id}: chunk {index} does not decompress") from None
        finally:
            if buffer is not None:
                plain.release()
                pool.put(buffer)
        return (body, None) if pool is not None else body
    if codec != _RAW:
        if buffer is not None:
            plain.release()
            pool.put(buffer)
        raise IntegrityError(f"file {file_id}: chunk {index} has an unknown codec")
    if buffer is not None:
        return plain[1:], buffer
    del plain[:1]       # drops the codec byte without copying the chunk (bytearray moves its start)
    return (plain, None) if pool is not None else plain


def read_chunks(target: Target, cipher_for, file_id: uuid.UUID, storage_key: str,
                *, size: int, digest: str, indexer: BlindIndexer, reuse: bool = False) -> Iterator:
    """Yield the plaintext a chunk at a time (each a bytes or bytearray of its own),
    each authenticated before it is yielded;
    after the last, the whole is checked against the row's size and keyed digest. Any
    failure raises IntegrityError naming the file (never its name or content), so a
    caller that writes to a temporary file and renames only at the end never delivers
    a tampered, reordered or truncated file. The next chunks (WORKERS in flight) are
    fetched and opened by threads while the caller handles the current one, and the
    whole-file hash (sequential by nature, the dearest step per byte) runs in a
    thread of its own behind them, so the caller's writes overlap it; the last chunk
    is yielded only once that hash has been checked. Closing the iterator early stops
    the threads.

    With `reuse`, for a caller that is done with each chunk before it asks for the
    next (one writing them to a file: `save_chunks`), chunks are memoryviews of a few
    buffers used again and again, each valid only until the next chunk is asked for:
    no fresh 4 MiB buffer per chunk (a zero-filled allocation, page faults and all)."""
    manifest = read_manifest(target, cipher_for, file_id, storage_key)
    keys = manifest["chunks"]
    chunk_size = _chunk_size(manifest, file_id)
    last = len(keys) - 1
    whole = _WHOLE_HASHES[manifest["v"]]()
    total = 0
    pool: SimpleQueue | None = SimpleQueue() if reuse else None
    pool_ = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="files-read")
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="files-hash")   # one: in order
    ahead: deque[Future] = deque()
    hashing: deque[tuple[Future, bytearray | None]] = deque()   # (hashed, buffer to give back)
    submitted = 0

    def refill() -> None:
        nonlocal submitted
        while len(ahead) < WORKERS and submitted <= last:
            ahead.append(pool_.submit(_open_chunk, target, cipher_for, file_id, keys[submitted], submitted,
                                      submitted == last, chunk_size, pool))
            submitted += 1

    def settle_one() -> None:
        # the caller has moved past this chunk (it asked for a later one): once hashed,
        # its buffer may be filled again
        hashed, buffer = hashing.popleft()
        hashed.result()
        if buffer is not None:
            pool.put(buffer)
    try:
        refill()
        for index in range(len(keys)):
            opened = ahead.popleft().result()
            body, buffer = opened if reuse else (opened, None)
            refill()                   # the next ones are opened while this one is handled
            total += len(body)
            if total > size:
                raise IntegrityError(f"file {file_id}: the stored content is longer than recorded")
            while len(hashing) >= WORKERS:     # bounded: chunks held for the hash stay few
                settle_one()
            hashing.append((hasher.submit(whole.update, body), buffer))
            if index == last:
                while hashing:
                    settle_one()
                if total != size or content_digest(indexer, whole_hash_term(manifest["v"], whole)) != digest:
                    raise IntegrityError(f"file {file_id}: the stored content does not match its recorded hash")
            yield body
    finally:
        for future in ahead:
            future.cancel()
        pool_.shutdown(wait=True)
        hasher.shutdown(wait=True)


def object_keys(target: Target, cipher_for, file_id: uuid.UUID, storage_key: str) -> list[str]:
    """Every object of a file, its chunks first and its manifest last (the order to
    delete them in). A manifest that no longer opens is listed alone: its chunks are
    then orphans for the integrity job."""
    try:
        keys = list(read_manifest(target, cipher_for, file_id, storage_key)["chunks"])
    except IntegrityError:
        keys = []
    return [*keys, storage_key]
