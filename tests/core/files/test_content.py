"""core/files/content.py on its own, against a real local store directory: the chunk
layout (4 MiB chunks now, 1 MiB before: files stored the old way must still read), the
writer's threads (errors surface and leave nothing stored) and the reader's read-ahead
(stopped when the caller stops)."""
from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path
from types import SimpleNamespace

import blake3
import pytest
import zstandard

from strongroom.core.crypto.blind_index import BlindIndexer
from strongroom.core.crypto.fields import FieldCipher
from strongroom.core.errors import IntegrityError
from strongroom.core.files import content
from strongroom.core.storage.local import LocalTarget

MIB = 1024 * 1024


@pytest.fixture
def parts(tmp_path):
    target = LocalTarget(tmp_path / "store")
    cipher = FieldCipher(uuid.uuid4(), os.urandom(32))
    indexer = BlindIndexer(os.urandom(32))
    return target, cipher, indexer


def _data(n: int) -> bytes:
    """Half random (does not compress), half repeated text (does), so both codecs occur."""
    half = n // 2
    return os.urandom(half) + (b"strongroom " * (n // 11 + 1))[: n - half]


def _write(parts, data: bytes, piece: int) -> tuple[uuid.UUID, content.StoredContent]:
    target, cipher, indexer = parts
    file_id = uuid.uuid4()
    writer = content.ContentWriter(target, cipher, indexer, file_id)
    for at in range(0, len(data), piece):
        writer.write(data[at:at + piece])
    return file_id, writer.finish()


def _read(parts, file_id, stored: content.StoredContent, digest: str | None = None) -> bytes:
    target, cipher, indexer = parts
    return b"".join(content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key,
                                        size=stored.size, digest=digest or stored.digest, indexer=indexer))


def _objects(parts) -> list:
    return [p for p in parts[0].root.rglob("*") if p.is_file()]


def _write_legacy(parts, data: bytes) -> tuple[uuid.UUID, content.StoredContent]:
    """A file stored the way Strongroom stored them before chunks grew to 4 MiB: 1 MiB
    chunks, each named by the keyed hash of file id, index and the chunk's SHA-256,
    zstd kept where smaller, the manifest saying chunk_size 1048576."""
    target, cipher, indexer = parts
    file_id = uuid.uuid4()
    pieces = [data[at:at + MIB] for at in range(0, len(data), MIB)] or [b""]
    keys = []
    for index, plain in enumerate(pieces):
        body, codec = plain, 0
        packed = zstandard.ZstdCompressor(level=3).compress(plain) if plain else plain
        if plain and len(packed) < len(plain):
            body, codec = packed, 1
        key = content.object_key(indexer, "chunk", f"{file_id}:{index}:{hashlib.sha256(plain).hexdigest()}")
        target.put(key, cipher.encrypt(bytes([codec]) + body,
                                       content.chunk_aad(file_id, index, index == len(pieces) - 1)))
        keys.append(key)
    sha = hashlib.sha256(data).hexdigest()
    manifest = json.dumps({"v": 1, "size": len(data), "chunk_size": MIB, "chunks": keys}).encode()
    key = content.object_key(indexer, "manifest", f"{file_id}:{sha}")
    target.put(key, cipher.encrypt(manifest, b"strongroom.file.manifest\0" + file_id.bytes))
    return file_id, content.StoredContent(key, content.content_digest(indexer, sha), len(data), len(keys))


def test_files_stored_with_1_mib_chunks_still_read(parts):
    data = _data(5 * MIB + 12345)
    file_id, stored = _write_legacy(parts, data)
    assert stored.chunks == 6
    assert _read(parts, file_id, stored) == data
    # and the old layout's checks still hold: a chunk cut off is refused
    target, cipher, _ = parts
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    target.delete(manifest["chunks"][3])
    with pytest.raises(IntegrityError, match=f"file {file_id}: its chunk 3 is missing"):
        _read(parts, file_id, stored)


@pytest.mark.parametrize("piece", [1, 777_777, MIB, 9 * MIB + 3])
def test_round_trip_in_4_mib_chunks_whatever_the_piece_size(parts, piece):
    data = _data(2 * content.CHUNK_SIZE + 5) if piece > 1 else _data(content.CHUNK_SIZE + 1)[: 3 * 4096]
    file_id, stored = _write(parts, data, piece)
    target, cipher, _ = parts
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    assert manifest["chunk_size"] == content.CHUNK_SIZE == 4 * MIB
    assert stored.chunks == len(manifest["chunks"]) == -(-len(data) // content.CHUNK_SIZE)
    assert len(set(manifest["chunks"])) == stored.chunks
    assert len(_objects(parts)) == stored.chunks + 1
    chunks = list(content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key,
                                      size=stored.size, digest=stored.digest, indexer=parts[2]))
    assert [len(c) for c in chunks[:-1]] == [content.CHUNK_SIZE] * (len(chunks) - 1)
    assert b"".join(chunks) == data


def test_a_file_is_fingerprinted_with_blake3_under_manifest_version_2(parts):
    """The whole-file hash behind the row's keyed digest is BLAKE3 (about four times
    SHA-256's speed here: it was the slowest step of an add); the manifest's version
    says so, and the digest names the hash, so it can never pass for a SHA-256 one."""
    data = _data(2 * content.CHUNK_SIZE + 5)
    file_id, stored = _write(parts, data, MIB)
    target, cipher, indexer = parts
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    assert manifest["v"] == content.MANIFEST_VERSION == 2
    assert stored.digest == content.content_digest(indexer, "blake3:" + blake3.blake3(data).hexdigest())
    assert stored.digest != content.content_digest(indexer, hashlib.sha256(data).hexdigest())
    sha_digest = content.content_digest(indexer, hashlib.sha256(data).hexdigest())
    with pytest.raises(IntegrityError, match=f"file {file_id}: the stored content does not match its recorded hash"):
        _read(parts, file_id, stored, digest=sha_digest)


@pytest.mark.parametrize("version", [0, 3, "2", None])
def test_manifest_of_an_unknown_version_is_refused(parts, version):
    file_id, stored = _write(parts, _data(MIB), MIB)
    target, cipher, _ = parts
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    manifest["v"] = version
    target.put(stored.storage_key, cipher.encrypt(json.dumps(manifest).encode(),
                                                  b"strongroom.file.manifest\0" + file_id.bytes))
    with pytest.raises(IntegrityError, match=f"file {file_id}: the stored manifest has an unknown format"):
        _read(parts, file_id, stored)


def test_chunk_names_reveal_no_content_hash(parts):
    """Two files with equal content share no object name (names carry a per-write token)."""
    data = _data(content.CHUNK_SIZE + 10)
    _write(parts, data, MIB)
    _write(parts, data, MIB)
    names = [p.name for p in _objects(parts)]
    assert len(names) == len(set(names)) == 2 * 3


@pytest.mark.parametrize("chunk_size", [0, -1, "4194304", content.MAX_CHUNK_SIZE + 1, None])
def test_manifest_with_a_bad_chunk_size_is_refused(parts, chunk_size):
    target, cipher, indexer = parts
    data = _data(MIB)
    file_id, stored = _write(parts, data, MIB)
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    manifest["chunk_size"] = chunk_size
    target.put(stored.storage_key, cipher.encrypt(json.dumps(manifest).encode(),
                                                  b"strongroom.file.manifest\0" + file_id.bytes))
    with pytest.raises(IntegrityError, match=f"file {file_id}: the stored manifest has an unknown format"):
        _read(parts, file_id, stored)


@pytest.mark.parametrize("fail_at", [1, 3, 4])   # a middle chunk, the final chunk, the manifest
def test_a_failing_put_raises_and_leaves_nothing_stored(parts, fail_nth_put, fail_at):
    target, cipher, indexer = parts
    fail_nth_put(target, fail_at)
    writer = content.ContentWriter(target, cipher, indexer, uuid.uuid4())
    data = _data(3 * content.CHUNK_SIZE - 7)     # 3 chunks, then the manifest
    with pytest.raises(OSError, match="disk full"):
        for at in range(0, len(data), MIB):
            writer.write(data[at:at + MIB])
        writer.finish()
    assert _objects(parts) == []


def test_abort_waits_for_the_workers_and_deletes_everything(parts):
    target, cipher, indexer = parts
    writer = content.ContentWriter(target, cipher, indexer, uuid.uuid4())
    writer.write(_data(4 * content.CHUNK_SIZE))
    writer.abort()
    assert _objects(parts) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("files-write")]


def test_reading_stopped_early_stops_the_read_ahead(parts):
    data = _data(6 * content.CHUNK_SIZE)
    file_id, stored = _write(parts, data, 4 * MIB)
    target, cipher, indexer = parts
    chunks = content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key,
                                 size=stored.size, digest=stored.digest, indexer=indexer)
    assert next(chunks) == data[: content.CHUNK_SIZE]
    assert [t for t in threading.enumerate() if t.name.startswith("files-read")]
    chunks.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("files-read")]


def test_wrong_digest_is_refused_after_the_last_chunk(parts):
    data = _data(2 * content.CHUNK_SIZE)
    file_id, stored = _write(parts, data, MIB)
    with pytest.raises(IntegrityError, match="does not match its recorded hash"):
        _read(parts, file_id, stored, digest="0" * 64)


def test_drain_waits_until_every_full_chunk_is_stored(parts):
    target, cipher, indexer = parts
    writer = content.ContentWriter(target, cipher, indexer, uuid.uuid4())
    writer.write(_data(3 * content.CHUNK_SIZE + 1))
    writer.drain()
    assert len(_objects(parts)) == 3          # the fourth (last) chunk is held until finish
    stored = writer.finish()
    assert len(_objects(parts)) == stored.chunks + 1 == 5


def test_a_chunk_that_does_not_compress_is_not_compressed_whole(parts, monkeypatch):
    """Scans and photos do not shrink: only two 64 KiB samples of such a chunk are tried,
    and it is stored raw; a chunk of text is compressed whole and stored as zstd."""
    tried: list[int] = []

    class Spy:
        def __init__(self, **options):
            self._real = zstandard.ZstdCompressor(**options)

        def compress(self, data):
            tried.append(len(data))
            return self._real.compress(data)
    monkeypatch.setattr(content, "zstandard", SimpleNamespace(
        ZstdCompressor=Spy, ZstdDecompressor=zstandard.ZstdDecompressor, ZstdError=zstandard.ZstdError))
    random_part = os.urandom(content.CHUNK_SIZE)
    text_part = (b"session notes " * (content.CHUNK_SIZE // 14 + 1))[:content.CHUNK_SIZE]
    file_id, stored = _write(parts, random_part + text_part, MIB)
    assert content.CHUNK_SIZE not in tried[:2] and tried[:2] == [content.SAMPLE] * 2   # chunk 0: samples only
    assert content.CHUNK_SIZE in tried                                                  # chunk 1: whole
    target, cipher, _ = parts
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    codecs = [cipher.decrypt(target.get(key), content.chunk_aad(file_id, i, i == 1))[0]
              for i, key in enumerate(manifest["chunks"])]
    assert codecs == [0, 1]
    assert _read(parts, file_id, stored) == random_part + text_part


def test_the_writer_copies_a_reused_buffer_and_the_reader_hands_out_chunks_of_their_own(parts):
    """The writer seals from buffers it reuses and the reader reads into one per thread:
    a caller may refill its buffer after each write, and may hold every chunk it took
    while it takes more, without either seeing the other's bytes."""
    target, cipher, indexer = parts
    data = _data(3 * content.CHUNK_SIZE + 12345)
    file_id = uuid.uuid4()
    writer = content.ContentWriter(target, cipher, indexer, file_id)
    buffer = bytearray(MIB)
    for at in range(0, len(data), MIB):
        piece = data[at:at + MIB]
        buffer[:len(piece)] = piece
        writer.write(memoryview(buffer)[:len(piece)])
        buffer[:] = bytes(MIB)               # overwritten at once: the writer must have copied
    stored = writer.finish()
    held = list(content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key,
                                    size=stored.size, digest=stored.digest, indexer=indexer))
    assert len(held) == 4 and b"".join(held) == data


def test_reuse_hands_out_views_of_a_few_buffers_and_still_checks_everything(parts):
    """With reuse, chunks are views of a few buffers filled again and again (each good
    until the next is taken); the content is the same, and the last chunk still comes
    only after the whole matched its size and hash."""
    target, cipher, indexer = parts
    data = _data(7 * content.CHUNK_SIZE + 999)
    file_id, stored = _write(parts, data, MIB)
    got, buffers = [], set()
    for chunk in content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key, size=stored.size,
                                     digest=stored.digest, indexer=indexer, reuse=True):
        got.append(bytes(chunk))             # copied before the next is asked for
        if isinstance(chunk, memoryview):
            buffers.add(id(chunk.obj))
    assert b"".join(got) == data
    assert 1 <= len(buffers) <= 2 * content.WORKERS + 1 < 8
    with pytest.raises(IntegrityError, match="does not match its recorded hash"):
        for _ in content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key, size=stored.size,
                                     digest="0" * 64, indexer=indexer, reuse=True):
            pass
    first = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)["chunks"][2]
    raw = bytearray((target.root / first).read_bytes())
    raw[-1] ^= 1
    (target.root / first).write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"file {file_id}: chunk 2 failed authentication"):
        for _ in content.read_chunks(target, lambda _kid: cipher, file_id, stored.storage_key, size=stored.size,
                                     digest=stored.digest, indexer=indexer, reuse=True):
            pass
    assert not [t for t in threading.enumerate() if t.name.startswith(("files-read", "files-hash"))]


def test_chunks_are_made_durable_together_before_the_manifest(parts, monkeypatch):
    """Chunks go through one put batch: each written and handed to the disk without
    waiting, then every chunk file fsynced and each chunk directory fsynced once, all
    before the manifest is put (fsynced on its own); nothing of the batch is open after."""
    target, cipher, indexer = parts
    events = []
    real_fsync, real_fsync_dir = os.fsync, __import__("strongroom.core.storage.local", fromlist=["x"]).fsync_dir
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        events.append(("named", Path(dst)))
        return real_replace(src, dst, *a, **k)

    def fsync(fd):
        events.append(("fsync", Path(os.readlink(f"/proc/self/fd/{fd}"))))
        return real_fsync(fd)
    monkeypatch.setattr("strongroom.core.storage.local.os.replace", replace)
    monkeypatch.setattr("strongroom.core.storage.local.os.fsync", fsync)
    monkeypatch.setattr("strongroom.core.storage.local.fsync_dir", lambda d: (events.append(("dir", Path(d))),
                                                                               real_fsync_dir(d)))
    data = _data(3 * content.CHUNK_SIZE + 5)
    file_id, stored = _write(parts, data, MIB)
    manifest = content.read_manifest(target, lambda _kid: cipher, file_id, stored.storage_key)
    chunk_paths = {target.root / key for key in manifest["chunks"]}
    assert len(chunk_paths) == 4
    synced = [p for kind, p in events if kind == "fsync" and p in chunk_paths]
    assert sorted(synced) == sorted(chunk_paths)                      # each chunk fsynced once
    dirs = [p for kind, p in events if kind == "dir"]
    assert sorted(dirs) == sorted({p.parent for p in chunk_paths})    # each directory once
    # other threads of this worker (left by earlier tests) may rename files of their own:
    # the manifest is found by its path, not as the first rename after the chunks'
    manifest_at = events.index(("named", target.root / stored.storage_key))
    # the batch's directory syncs are its "dir" events: the manifest's own directory fsync
    # comes after it, and that directory may by chance be one of the chunks'
    last_chunk_sync = max(i for i, (kind, p) in enumerate(events)
                          if kind == "dir" or (kind == "fsync" and p in chunk_paths))
    assert last_chunk_sync < manifest_at                              # durable before the manifest exists
    assert _read(parts, file_id, stored) == data
    assert not [fd for fd in os.listdir("/proc/self/fd")
                if os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(target.root))]


@pytest.mark.parametrize("fails", ["chunk", "directory"])
def test_a_chunk_that_cannot_be_made_durable_stores_nothing(parts, monkeypatch, fails):
    """A write error the disk reports only at the batch's fsync (a chunk's, or a
    directory's) fails the add and leaves no object, temporary files included."""
    target, cipher, indexer = parts
    real_fsync, real_fsync_dir = os.fsync, __import__("strongroom.core.storage.local", fromlist=["x"]).fsync_dir
    failures = [OSError(5, "Input/output error")]

    def fail_once(real):
        def call(arg):
            if failures:
                raise failures.pop()
            return real(arg)
        return call
    if fails == "chunk":
        monkeypatch.setattr("strongroom.core.storage.local.os.fsync", fail_once(real_fsync))
    else:
        monkeypatch.setattr("strongroom.core.storage.local.fsync_dir", fail_once(real_fsync_dir))
    writer = content.ContentWriter(target, cipher, indexer, uuid.uuid4())
    writer.write(_data(2 * content.CHUNK_SIZE))
    with pytest.raises(Exception, match="Input/output error"):
        writer.finish()
    assert [p for p in target.root.rglob("*") if p.is_file()] == []


def test_a_large_file_keeps_few_chunk_files_open(parts, monkeypatch):
    """The batch fsyncs and closes its oldest files as it goes: open descriptors stay
    bounded by the window whatever the file's size."""
    from strongroom.core.storage.local import PutBatch
    monkeypatch.setattr(PutBatch, "WINDOW", 2)
    target, cipher, indexer = parts
    most = 0
    real_put = PutBatch.put

    def put(self, key, data, **options):
        nonlocal most
        real_put(self, key, data, **options)
        most = max(most, len(self._open))
    monkeypatch.setattr(PutBatch, "put", put)
    data = _data(12 * content.CHUNK_SIZE)
    file_id, stored = _write(parts, data, 4 * MIB)
    assert stored.chunks == 12 and most < 2 * 2
    assert _read(parts, file_id, stored) == data
