"""A backup repository on a storage target: the `Repository` facade and its layout.

Layout (every object is opaque ciphertext or key-free metadata)::

    config.json                     format, repository id, created_at, the BACKUP KEY
                                    wrapped by the KEK, HMAC over the rest
    config.previous                 the config before a KEK rewrap, until confirmed
    chunks/<2 hex>/<64 hex>         version byte | 96-bit nonce | AES-256-GCM(zstd(plain))
    snapshots/<snapshot id>.json    manifests (see manifest.py), written last
    keys/bag                        the key bag: the data keys the snapshots need, the
                                    one object rewritten in place (see keybag.py)
    locks/<lock id>.json            shared/exclusive leases (who is using the repository)

`Repository` is what the jobs hold: an opened repository with its backup key. Each
concern lives in its own module, and the methods here are thin over them:

    repo_keys.py    config.json and its MAC, the KEK-wrapped backup key, init/open,
                    KEK rewrap and confirm, HKDF sub-keys
    chunks.py       keyed content addresses, sealing and opening one chunk
    manifest.py     the snapshot manifests;  keybag.py  the key bag
    locks.py        concurrency;  verify.py  verification;  gc.py  garbage collection

`init_repository`, `open_repository`, `rewrap` and `confirm_rewrap` are the ways to get
a `Repository`; they stay here, next to the class they construct, and leave the key
handling to repo_keys.py.
"""
from __future__ import annotations

import hmac
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

import zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from strongroom.core.backup.chunks import (
    DEFAULT_LEVEL,
    StoredChunk,
    address_hasher,
    address_of,
    new_compressor,
    new_decompressor,
    open_chunk,
    seal_chunk,
)
from strongroom.core.backup.gc import referenced_chunks, unreferenced_chunks
from strongroom.core.backup.layout import SNAPSHOTS, chunk_key, manifest_key
from strongroom.core.backup.locks import DEFAULT_LOCK_TTL, Lock, acquire_lock, list_locks
from strongroom.core.backup.manifest import ChunkRef, Manifest, ManifestError
from strongroom.core.backup.manifest import seal as _seal
from strongroom.core.backup.manifest import unseal as _unseal
from strongroom.core.backup.repo_keys import (
    RepositoryConfig,
    confirm_rewrap_keys,
    derive_subkeys,
    init_keys,
    open_keys,
    rewrap_keys,
)
from strongroom.core.backup.verify import Problem, verify_fast, verify_read_data
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, IntegrityError
from strongroom.core.storage.base import Target

Progress = Callable[[int, int, str], None]
Clock = Callable[[], datetime]


# =====================================================================================
# Getting a repository
# =====================================================================================

def init_repository(target: Target, keyring: Keyring, *, clock: Clock = utcnow,
                    compression_level: int = DEFAULT_LEVEL, zstd_threads: int = 0) -> Repository:
    """Create a repository on an empty target with a fresh backup key.

    Refuses (ConflictError) if the target already holds a config.json: overwriting it
    would orphan every existing backup (their key exists only in that file).
    """
    config, backup_key = init_keys(target, keyring, clock=clock)
    return Repository(target, config, backup_key, compression_level=compression_level,
                      zstd_threads=zstd_threads, keyring=keyring)


def open_repository(target: Target, keyring: Keyring, *,
                    compression_level: int = DEFAULT_LEVEL, zstd_threads: int = 0) -> Repository:
    """Open an existing repository with the KEK(s) in `keyring`.

    A missing or garbled config.json raises IntegrityError naming it; a config wrapped
    by a KEK the keyring does not hold raises KeyUnavailableError naming both KEK ids.
    If an unconfirmed `rewrap` left config.previous under a KEK that *is* loaded (the
    rotation to the new KEK was abandoned), the repository opens through it.
    """
    config, backup_key = open_keys(target, keyring)
    return Repository(target, config, backup_key, compression_level=compression_level,
                      zstd_threads=zstd_threads, keyring=keyring)


def rewrap(repository: Repository, keyring: Keyring) -> Repository:
    """Wrap the repository's backup key under `keyring.kek_id` (after a KEK rotation).

    Only config.json changes; the config before it stays in config.previous until
    `confirm_rewrap`, so the old KEK still opens the repository if the rotation is
    abandoned. The protocol and its crash safety: repo_keys.rewrap_keys.
    """
    target = repository.target
    if repository.config.kek_id == keyring.kek_id:
        return repository
    rewrapped = rewrap_keys(target, repository.id, repository._backup_key, keyring)
    if rewrapped is None:
        return open_repository(target, keyring)
    config, backup_key = rewrapped
    return Repository(target, config, backup_key, compression_level=repository.compression_level,
                      zstd_threads=repository.zstd_threads, keyring=keyring)


def confirm_rewrap(target: Target, keyring: Keyring) -> Repository:
    """Drop config.previous once config.json opens with the keyring's primary KEK."""
    config, backup_key = confirm_rewrap_keys(target, keyring)
    return Repository(target, config, backup_key, keyring=keyring)


# =====================================================================================
# The repository
# =====================================================================================

class Repository:
    """An opened repository; safe to share between threads for chunks and reads."""

    def __init__(self, target: Target, config: RepositoryConfig, backup_key: bytes, *,
                 compression_level: int = DEFAULT_LEVEL, zstd_threads: int = 0,
                 keyring: Keyring | None = None) -> None:
        self.target = target
        # The keyring that opened it: restore wraps the key bag's data keys with it.
        self.keyring = keyring
        self.config = config
        self.compression_level = compression_level
        self.zstd_threads = zstd_threads
        self._backup_key = backup_key
        subkeys = derive_subkeys(backup_key)
        self._chunk_cipher = AESGCM(subkeys.chunk)
        self._address_key = subkeys.address
        self._manifest_key = subkeys.manifest
        self._keybag_key = subkeys.keybag
        # zstd contexts are not thread-safe: one of each per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Repository({self.target.describe()!r}, id={self.id})"

    @property
    def id(self) -> uuid.UUID:
        return self.config.repository_id

    def keybag_key(self) -> bytes:
        """The key sealing the key bag (core/backup/keybag.py)."""
        return self._keybag_key

    # -- chunks -----------------------------------------------------------------------

    def address_of(self, plain: bytes) -> str:
        """The chunk's content address: HMAC-SHA256(address key, plaintext), hex."""
        return address_of(self._address_key, plain)

    def address_hasher(self) -> hmac.HMAC:
        """An empty address hash, to feed a chunk's plaintext piece by piece
        (see chunks.address_hasher)."""
        return address_hasher(self._address_key)

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = new_compressor(self.compression_level, self.zstd_threads)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = new_decompressor()
            self._local.decompressor = decompressor
        return decompressor

    def store_chunk(self, plain: bytes) -> StoredChunk:
        """Compress, encrypt and store one segment unless the repository has it.

        A chunk already present (same address) is neither compressed, encrypted nor
        uploaded again: one size lookup answers. `put_if_absent` covers two writers
        racing for the same new chunk. Thread-safe.
        """
        address = self.address_of(plain)
        key = chunk_key(address)
        existing = self.target.size(key)
        if existing is not None:
            return StoredChunk(ChunkRef(address=address, size=len(plain), stored_size=existing), 0)
        data = seal_chunk(plain, address, cipher=self._chunk_cipher,
                          compressor=self._compressor())
        new = self.target.put_if_absent(key, data)
        ref = ChunkRef(address=address, size=len(plain), stored_size=len(data))
        return StoredChunk(ref, len(data) if new else 0)

    def load_chunk(self, ref: ChunkRef, *, recheck_address: bool = True) -> bytes:
        """Fetch, authenticate, decrypt, decompress and re-check one chunk.

        Any change to the stored object (a flipped bit, truncation, a chunk copied to
        another address, a chunk from another repository) raises IntegrityError naming
        the object key; a missing object raises NotFoundError. The address is the
        cipher's associated data, so authentication already binds the chunk to it;
        `recheck_address=False` skips recomputing the keyed hash of the plaintext, for
        readers (restore) that check every byte against the manifest's table hashes.
        """
        data = self.target.get(chunk_key(ref.address))
        return open_chunk(data, ref, cipher=self._chunk_cipher,
                          decompressor=self._decompressor(), address_key=self._address_key,
                          recheck_address=recheck_address)

    # -- manifests --------------------------------------------------------------------

    def write_manifest(self, manifest: Manifest, lock: Lock | None = None) -> Manifest:
        """Seal and store a manifest: the last write of a backup, one atomic object.

        Snapshots are immutable: an existing manifest with the same id is never replaced
        (ConflictError). Pass the backup's `lock` to check, just before the write, that
        its lease never lapsed: if it had, garbage collection may have removed chunks
        this manifest references, and the snapshot must not come into existence.
        Returns the manifest with its HMAC filled in.
        """
        if lock is not None:
            lock.check()
        if manifest.repository_id != self.id:
            raise ConflictError(f"manifest {manifest.snapshot_id} belongs to repository "
                                f"{manifest.repository_id}, not {self.id}")
        sealed, data = _seal(manifest, self._manifest_key)
        key = manifest_key(manifest.snapshot_id)
        if not self.target.put_if_absent(key, data):
            raise ConflictError(f"{self.target.describe()}: snapshot {key} already exists")
        return sealed

    def read_manifest(self, snapshot_id: uuid.UUID) -> Manifest:
        """Read and verify a manifest; IntegrityError names the object if it fails."""
        key = manifest_key(snapshot_id)
        data = self.target.get(key)
        try:
            manifest = _unseal(data, self._manifest_key)
        except ManifestError as exc:
            raise IntegrityError(f"manifest {key} {exc}") from None
        if manifest.snapshot_id != snapshot_id or manifest.repository_id != self.id:
            raise IntegrityError(f"manifest {key} describes snapshot {manifest.snapshot_id} "
                                 f"of repository {manifest.repository_id} (moved or copied)")
        return manifest

    def list_snapshots(self) -> list[uuid.UUID]:
        """Snapshot ids with a manifest, oldest first (UUIDv7 sort by time)."""
        ids = []
        for key in self.target.list(SNAPSHOTS):
            name = key[len(SNAPSHOTS):]
            if "/" in name or not name.endswith(".json"):
                continue
            try:
                ids.append(uuid.UUID(name[:-len(".json")]))
            except ValueError:
                continue
        return sorted(ids)

    def delete_manifest(self, snapshot_id: uuid.UUID) -> None:
        """Delete a snapshot's manifest (its chunks go at the next garbage collection)."""
        self.target.delete(manifest_key(snapshot_id))

    # -- verification -----------------------------------------------------------------

    def verify_fast(self, manifest: Manifest, progress: Progress | None = None) -> list[Problem]:
        """Every chunk the manifest references exists with the recorded stored size."""
        return verify_fast(self, manifest, progress)

    def verify_read_data(self, manifest: Manifest, progress: Progress | None = None, *,
                         workers: int = 1) -> list[Problem]:
        """Load and check every chunk and each table's SHA-256 (see verify.py)."""
        return verify_read_data(self, manifest, progress, workers=workers)

    # -- garbage collection -----------------------------------------------------------

    @staticmethod
    def referenced_chunks(manifests: Iterable[Manifest]) -> set[str]:
        """Object keys of every chunk the manifests reference (see gc.py)."""
        return referenced_chunks(manifests)

    def unreferenced_chunks(self, live_manifests: Iterable[Manifest], lock: Lock) -> Iterator[str]:
        """Chunk keys no live manifest references, under this repository's exclusive
        lock (the safety rules are in gc.unreferenced_chunks)."""
        return unreferenced_chunks(self, live_manifests, lock)

    # -- locks ------------------------------------------------------------------------

    def acquire_lock(self, kind: Literal["shared", "exclusive"], purpose: str, *,
                     ttl: timedelta = DEFAULT_LOCK_TTL, clock: Clock = utcnow) -> Lock:
        """Take a shared or exclusive lease on this repository (see locks.acquire_lock)."""
        return acquire_lock(self, kind, purpose, ttl=ttl, clock=clock)

    def locks(self) -> list[dict[str, Any]]:
        """Every lock object's contents (for the console and `strongroom backup locks`)."""
        return list_locks(self.target)

