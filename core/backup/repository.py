"""A backup repository on a storage target: layout, keys, chunks, manifests, locks.

Layout (every object is opaque ciphertext or key-free metadata)::

    config.json                     format, repository id, created_at, the BACKUP KEY
                                    wrapped by the KEK, HMAC over the rest
    config.previous                 the config before a KEK rewrap, until confirmed
    chunks/<2 hex>/<64 hex>         version byte | 96-bit nonce | AES-256-GCM(zstd(plain))
    snapshots/<snapshot id>.json    manifests (see manifest.py), written last
    keys/bag                        the key bag: the data keys the snapshots need, the
                                    one object rewritten in place (see keybag.py)
    locks/<lock id>.json            shared/exclusive leases (who is using the repository)

Keys. Each repository has its own random 256-bit backup key, stored only wrapped by the
KEK (the same AES-GCM wrapping as the database's data keys, with the key id and a
purpose of its own as associated data). The KEK (key file or recovery kit) is therefore
the only secret a restore into an empty database needs; the database's `data_keys`
table is not involved, and the unwrapped key is never written anywhere. Snapshots carry
no data key: those are in the key bag, so that an erasure can reach them. Sub-keys come
from HKDF-SHA256 over the backup key with distinct `info` strings, so the chunk cipher,
the content-address MAC, the manifest MAC and the config MAC never share a key.

Content addresses. A chunk's address is HMAC-SHA256(address key, plaintext), not
SHA-256(plaintext). A plain hash lets anyone holding the repository (or two
repositories) test a guess ("is this exact export of this patient list in there?") and
see which repositories hold identical data; a keyed address dedupes identical chunks
within one repository only and reveals nothing outside it. It cannot be SHA-256 of the
ciphertext either: with random nonces equal plaintexts encrypt differently, which would
end deduplication. The address is the chunk cipher's associated data, so a chunk moved
or copied to another key fails authentication, and `load_chunk` recomputes it from the
decrypted plaintext. Random 96-bit nonces under one key are safe up to about 2^32
chunks (NIST SP 800-38D), i.e. petabytes at 4-8 MiB per chunk.

Concurrency and garbage collection: see `acquire_lock` and `unreferenced_chunks`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.core.backup.manifest import ChunkRef, Manifest, ManifestError, canonical_json
from strongroom.core.backup.manifest import seal as _seal
from strongroom.core.backup.manifest import unseal as _unseal
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.types import utcnow
from strongroom.core.errors import (
    ConflictError,
    CryptoError,
    IntegrityError,
    KeyUnavailableError,
    NotFoundError,
)
from strongroom.core.ids import new_id
from strongroom.core.storage.base import Target

log = logging.getLogger(__name__)

FORMAT = 1
CONFIG_KEY = "config.json"
PREVIOUS_CONFIG_KEY = "config.previous"
CHUNKS = "chunks/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"
CHUNK_VERSION = 1
_NONCE = 12
_TAG = 16
_HEADER = bytes([CHUNK_VERSION])
_CHUNK_AAD = b"strongroom-backup-chunk\0"
DEFAULT_LEVEL = 3
DEFAULT_LOCK_TTL = timedelta(minutes=30)

Progress = Callable[[int, int, str], None]
Clock = Callable[[], datetime]


class _Purpose(str, Enum):
    """The wrap purpose of a backup key.

    Keyring.wrap binds key id and purpose into the wrapping's associated data. A value
    no `data_keys.purpose` can hold means a wrapped backup key copied into the database
    (or a wrapped DEK copied into config.json) never unwraps as the other kind of key.
    """

    BACKUP_REPOSITORY = "backup_repository"


def _derive(key: bytes, info: bytes) -> bytes:
    # No salt: the input is a uniformly random 256-bit key, so HKDF-Expand's domain
    # separation by `info` is all that is needed.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def chunk_key(address: str) -> str:
    """The object key of a chunk: sharded by its first two hex digits."""
    return f"{CHUNKS}{address[:2]}/{address}"


def manifest_key(snapshot_id: uuid.UUID) -> str:
    return f"{SNAPSHOTS}{snapshot_id}.json"


@dataclass(frozen=True)
class StoredChunk:
    """What `store_chunk` did: the reference for the manifest and the bytes it added.

    `new_bytes` is 0 when the chunk was already in the repository (deduplicated).
    """

    ref: ChunkRef
    new_bytes: int


@dataclass(frozen=True)
class Problem:
    """One thing verification found wrong: the object at fault and what is wrong."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


# =====================================================================================
# config.json
# =====================================================================================

@dataclass(frozen=True)
class RepositoryConfig:
    """The parsed config.json (never holds the unwrapped key)."""

    repository_id: uuid.UUID
    created_at: str
    kek_id: str
    key_id: uuid.UUID
    wrapped: bytes
    document: dict[str, Any] = field(repr=False, compare=False)


def _config_document(repository_id: uuid.UUID, created_at: str, kek_id: str,
                     key_id: uuid.UUID, wrapped: bytes, config_key: bytes) -> dict[str, Any]:
    document: dict[str, Any] = {
        "format": FORMAT,
        "repository_id": str(repository_id),
        "created_at": created_at,
        "chunks": {"compression": "zstd", "cipher": "aes-256-gcm",
                   "address": "hmac-sha256"},
        "backup_key": {"kek_id": kek_id, "key_id": str(key_id),
                       "wrapped": base64.b64encode(wrapped).decode()},
    }
    document["hmac"] = _config_mac(config_key, document)
    return document


def _config_mac(key: bytes, document: dict[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k != "hmac"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def _parse_config(target: Target, name: str, data: bytes) -> RepositoryConfig:
    where = f"{target.describe()}: {name}"
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError(f"{where} is not valid JSON (corrupted)") from None
    if not isinstance(document, dict):
        raise IntegrityError(f"{where} is not a JSON object (corrupted)")
    version = document.get("format")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IntegrityError(f"{where} has no format version (corrupted)")
    if version > FORMAT:
        raise IntegrityError(f"{where} has format {version}; this Strongroom reads format "
                             f"{FORMAT} (upgrade Strongroom)")
    try:
        key_block = document["backup_key"]
        return RepositoryConfig(
            repository_id=uuid.UUID(document["repository_id"]),
            created_at=str(document["created_at"]),
            kek_id=str(key_block["kek_id"]),
            key_id=uuid.UUID(key_block["key_id"]),
            wrapped=base64.b64decode(key_block["wrapped"], validate=True),
            document=document)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise IntegrityError(f"{where} is missing fields or has malformed ones "
                             "(corrupted or not a Strongroom repository)") from None


def _read_config(target: Target, name: str) -> RepositoryConfig | None:
    try:
        data = target.get(name)
    except NotFoundError:
        return None
    return _parse_config(target, name, data)


def _unwrap(target: Target, name: str, config: RepositoryConfig, keyring: Keyring) -> bytes:
    try:
        key = keyring.unwrap(config.key_id, _Purpose.BACKUP_REPOSITORY,  # type: ignore[arg-type]
                             config.wrapped, config.kek_id)
    except CryptoError:
        raise IntegrityError(f"{target.describe()}: {name}: the wrapped backup key failed "
                             "authentication (corrupted or tampered)") from None
    if not hmac.compare_digest(config.document.get("hmac", "").encode(),
                               _config_mac(_derive(key, b"strongroom-backup-config"),
                                           config.document).encode()):
        raise IntegrityError(f"{target.describe()}: {name} failed HMAC verification "
                             "(a field was altered)")
    return key


def _wrong_kek(target: Target, config: RepositoryConfig, keyring: Keyring) -> KeyUnavailableError:
    return KeyUnavailableError(
        f"backup repository {target.describe()} is keyed to KEK {config.kek_id}, but the "
        f"loaded KEK is {keyring.kek_id}: wrong key file, or the repository was not "
        "rewrapped after a KEK rotation (load the retired key file or recovery kit)")


def init_repository(target: Target, keyring: Keyring, *, clock: Clock = utcnow,
                    compression_level: int = DEFAULT_LEVEL, zstd_threads: int = 0) -> Repository:
    """Create a repository on an empty target with a fresh backup key.

    Refuses (ConflictError) if the target already holds a config.json: overwriting it
    would orphan every existing backup (their key exists only in that file).
    """
    if target.exists(CONFIG_KEY):
        raise ConflictError(f"{target.describe()} already holds a backup repository "
                            f"({CONFIG_KEY} exists); open it instead")
    backup_key = os.urandom(32)
    repository_id = uuid.uuid4()
    key_id = new_id()
    wrapped = keyring.wrap(backup_key, key_id, _Purpose.BACKUP_REPOSITORY,  # type: ignore[arg-type]
                           keyring.kek_id)
    document = _config_document(repository_id, clock().isoformat(), keyring.kek_id, key_id,
                                wrapped, _derive(backup_key, b"strongroom-backup-config"))
    if not target.put_if_absent(CONFIG_KEY, canonical_json(document)):
        raise ConflictError(f"{target.describe()}: another process created a repository "
                            "here at the same moment; open it instead")
    config = _parse_config(target, CONFIG_KEY, canonical_json(document))
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
    config = _read_config(target, CONFIG_KEY)
    if config is None and next(iter(target.list()), None) is None:
        raise NotFoundError(f"{target.describe()}: no backup repository here yet (the first backup creates it)")
    if config is None:
        raise IntegrityError(f"{target.describe()}: {CONFIG_KEY} is missing: not a backup "
                             "repository, or its config was deleted (restore it from a "
                             "copy of the target; without it no backup here can be read)")
    name = CONFIG_KEY
    if config.kek_id not in keyring.kek_ids():
        previous = _read_config(target, PREVIOUS_CONFIG_KEY)
        if (previous is None or previous.kek_id not in keyring.kek_ids()
                or previous.repository_id != config.repository_id):
            raise _wrong_kek(target, config, keyring)
        log.warning("%s: %s is wrapped by KEK %s, which is not loaded; opening through %s "
                    "(KEK %s)", target.describe(), CONFIG_KEY, config.kek_id,
                    PREVIOUS_CONFIG_KEY, previous.kek_id)
        config, name = previous, PREVIOUS_CONFIG_KEY
    backup_key = _unwrap(target, name, config, keyring)
    return Repository(target, config, backup_key, compression_level=compression_level,
                      zstd_threads=zstd_threads, keyring=keyring)


def rewrap(repository: Repository, keyring: Keyring) -> Repository:
    """Wrap the repository's backup key under `keyring.kek_id` (after a KEK rotation).

    The backup key itself does not change, so every chunk and manifest stays valid; only
    config.json is rewritten, with one atomic put. Before that, the current config is
    copied to config.previous, and it stays there until `confirm_rewrap`: if the
    rotation is abandoned or the new KEK is lost before it reaches the key file and the
    recovery kit, the old KEK still opens the repository through config.previous
    (open_repository falls back to it). Confirm only once the new KEK is installed and
    backed up. Re-running after a crash at any point converges to the same state.

    Refuses (ConflictError) while a different, unconfirmed rewrap's config.previous is
    present, so two rotations in a row cannot discard the only copy under an older KEK.
    """
    target = repository.target
    if repository.config.kek_id == keyring.kek_id:
        return repository
    stored = target.get(CONFIG_KEY)
    current = _parse_config(target, CONFIG_KEY, stored)
    if current.kek_id == keyring.kek_id:
        return open_repository(target, keyring)
    if current.repository_id != repository.id:
        raise ConflictError(f"{target.describe()}: {CONFIG_KEY} belongs to another "
                            "repository than the one opened")
    try:
        previous = target.get(PREVIOUS_CONFIG_KEY)
    except NotFoundError:
        previous = None
    if previous is not None and previous != stored:
        raise ConflictError(
            f"{target.describe()}: {PREVIOUS_CONFIG_KEY} holds an unconfirmed earlier "
            "rewrap; confirm it (confirm_rewrap) before rewrapping again")
    if previous is None:
        target.put(PREVIOUS_CONFIG_KEY, stored)
    key = repository._backup_key
    wrapped = keyring.wrap(key, current.key_id, _Purpose.BACKUP_REPOSITORY,  # type: ignore[arg-type]
                           keyring.kek_id)
    document = _config_document(current.repository_id, current.created_at, keyring.kek_id,
                                current.key_id, wrapped,
                                _derive(key, b"strongroom-backup-config"))
    target.put(CONFIG_KEY, canonical_json(document))
    reopened = open_repository(target, keyring, compression_level=repository.compression_level,
                               zstd_threads=repository.zstd_threads)
    if reopened.config.kek_id != keyring.kek_id or not hmac.compare_digest(
            reopened._backup_key, key):
        raise IntegrityError(f"{target.describe()}: {CONFIG_KEY} did not read back as "
                             "written after rewrapping; config.previous was kept")
    return reopened


def confirm_rewrap(target: Target, keyring: Keyring) -> Repository:
    """Drop config.previous once config.json opens with the keyring's primary KEK."""
    config = _read_config(target, CONFIG_KEY)
    if config is None or config.kek_id != keyring.kek_id:
        raise ConflictError(f"{target.describe()}: {CONFIG_KEY} is not wrapped by KEK "
                            f"{keyring.kek_id}; rewrap first")
    repository = Repository(target, config, _unwrap(target, CONFIG_KEY, config, keyring), keyring=keyring)
    target.delete(PREVIOUS_CONFIG_KEY)
    return repository


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
        self._chunk_cipher = AESGCM(_derive(backup_key, b"strongroom-backup-chunk"))
        self._address_key = _derive(backup_key, b"strongroom-backup-chunk-address")
        self._manifest_key = _derive(backup_key, b"strongroom-backup-manifest")
        # zstd contexts are not thread-safe: one of each per thread.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Repository({self.target.describe()!r}, id={self.id})"

    @property
    def id(self) -> uuid.UUID:
        return self.config.repository_id

    def keybag_key(self) -> bytes:
        """The key sealing the key bag (core/backup/keybag.py)."""
        return _derive(self._backup_key, b"strongroom-backup-keybag")

    # -- chunks -----------------------------------------------------------------------

    def address_of(self, plain: bytes) -> str:
        """The chunk's content address: HMAC-SHA256(address key, plaintext), hex."""
        mac = self.address_hasher()
        mac.update(plain)
        return mac.hexdigest()

    def address_hasher(self) -> hmac.HMAC:
        """An empty address hash, to feed a chunk's plaintext piece by piece.

        An HMAC object, not hmac.digest(): its update() releases the GIL on large inputs
        (3.11's one-shot digest does not), so threads hash in parallel."""
        return hmac.new(self._address_key, digestmod=hashlib.sha256)

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor = getattr(self._local, "compressor", None)
        if compressor is None:
            compressor = zstandard.ZstdCompressor(level=self.compression_level,
                                                  threads=self.zstd_threads,
                                                  write_content_size=True)
            self._local.compressor = compressor
        return compressor

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        decompressor = getattr(self._local, "decompressor", None)
        if decompressor is None:
            decompressor = zstandard.ZstdDecompressor()
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
        compressed = self._compressor().compress(plain)
        nonce = os.urandom(_NONCE)
        sealed = self._chunk_cipher.encrypt(nonce, compressed, _CHUNK_AAD + _HEADER + address.encode())
        data = b"".join((_HEADER, nonce, sealed))
        del compressed, sealed
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
        key = chunk_key(ref.address)
        data = memoryview(self.target.get(key))
        if len(data) < 1 + _NONCE + _TAG:
            raise IntegrityError(f"chunk {key} is truncated ({len(data)} bytes)")
        if data[0] != CHUNK_VERSION:
            raise IntegrityError(f"chunk {key} has unknown format version {data[0]} "
                                 "(corrupted or tampered)")
        try:
            compressed = self._chunk_cipher.decrypt(
                data[1:1 + _NONCE], data[1 + _NONCE:],
                _CHUNK_AAD + _HEADER + ref.address.encode())
        except InvalidTag:
            raise IntegrityError(f"chunk {key} failed authentication "
                                 "(corrupted or tampered)") from None
        try:
            plain = self._decompressor().decompress(compressed, max_output_size=ref.size)
        except zstandard.ZstdError:
            raise IntegrityError(f"chunk {key} does not decompress to its recorded size "
                                 f"{ref.size}") from None
        if len(plain) != ref.size:
            raise IntegrityError(f"chunk {key} holds {len(plain)} bytes; the manifest "
                                 f"records {ref.size}")
        if recheck_address and not hmac.compare_digest(self.address_of(plain), ref.address):
            raise IntegrityError(f"chunk {key} does not match its content address")
        return plain

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
        refs = _unique_refs(manifest)
        problems: list[Problem] = []
        for done, ref in enumerate(refs.values(), 1):
            key = chunk_key(ref.address)
            size = self.target.size(key)
            if size is None:
                problems.append(Problem(key, "missing"))
            elif size != ref.stored_size:
                problems.append(Problem(key, f"is {size} bytes; the manifest records "
                                             f"{ref.stored_size}"))
            if progress:
                progress(done, len(refs), "checking chunks")
        return problems

    def verify_read_data(self, manifest: Manifest, progress: Progress | None = None, *,
                         workers: int = 1) -> list[Problem]:
        """Load every chunk (authenticate, decrypt, re-check its address) and recompute
        each table's SHA-256 over its chunk plaintexts in order.

        With `workers` > 1 chunks are loaded in a thread pool (decryption and zstd release
        the GIL), at most 2 x workers in flight, so memory stays bounded.
        """
        problems: list[Problem] = []
        total = manifest.totals.plain_bytes
        done = 0
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for table in manifest.tables:
                digest = hashlib.sha256()
                complete = True
                for ref, outcome in _ordered(pool, self._try_load, table.chunks, 2 * max(1, workers)):
                    if isinstance(outcome, Problem):
                        if outcome not in problems:  # a chunk shared by two tables
                            problems.append(outcome)
                        complete = False
                    else:
                        digest.update(outcome)
                    done += ref.size
                    if progress:
                        progress(done, total, f"reading {table.name}")
                if complete and digest.hexdigest() != table.sha256:
                    problems.append(Problem(manifest_key(manifest.snapshot_id),
                                            f"table {table.name}: SHA-256 over its chunks "
                                            "does not match the manifest"))
        return problems

    def _try_load(self, ref: ChunkRef) -> bytes | Problem:
        key = chunk_key(ref.address)
        try:
            return self.load_chunk(ref)
        except NotFoundError:
            return Problem(key, "missing")
        except IntegrityError as exc:
            return Problem(key, str(exc))

    # -- garbage collection -----------------------------------------------------------

    @staticmethod
    def referenced_chunks(manifests: Iterable[Manifest]) -> set[str]:
        """Object keys of every chunk the manifests reference."""
        return {chunk_key(ref.address) for m in manifests for ref in m.chunk_refs()}

    def unreferenced_chunks(self, live_manifests: Iterable[Manifest], lock: Lock) -> Iterator[str]:
        """Chunk keys no live manifest references: what garbage collection may delete.

        Safety rules, because a wrongly deleted chunk silently breaks a snapshot:

        - `lock` must be this repository's live *exclusive* lock. Backups hold a shared
          lock from before their first chunk until after their manifest is written, so
          no backup is running: no freshly written, not-yet-referenced chunk exists,
          and none can be deduplicated against (a backup that finds chunk X present
          and skips it would break if X were deleted a moment later — which is why a
          lease listing in-progress chunks, or a grace period by object age, is not
          enough on its own).
        - every manifest in the repository must be among `live_manifests` (else
          ConflictError): a caller that forgot one would otherwise delete its chunks.
          Delete expired manifests first, then collect.
        - the lease is re-checked before each key is yielded (and renewed when half
          spent); if it has lapsed, ConflictError stops the collection.
        """
        if lock.repository is not self or lock.kind != "exclusive":
            raise ConflictError("garbage collection needs this repository's exclusive lock")
        lock.check()
        live = list(live_manifests)
        given = {m.snapshot_id for m in live}
        missing = [sid for sid in self.list_snapshots() if sid not in given]
        if missing:
            raise ConflictError(f"{len(missing)} manifest(s) in the repository were not passed "
                                f"as live (first: {manifest_key(missing[0])}); refusing to "
                                "collect garbage")
        referenced = self.referenced_chunks(live)
        for key in self.target.list(CHUNKS):
            if key not in referenced:
                lock.check()
                yield key

    # -- locks ------------------------------------------------------------------------

    def acquire_lock(self, kind: Literal["shared", "exclusive"], purpose: str, *,
                     ttl: timedelta = DEFAULT_LOCK_TTL, clock: Clock = utcnow) -> Lock:
        """Take a lease on the repository: shared (backup, verify, restore) or exclusive
        (garbage collection).

        Protocol: write `locks/<id>.json`, then list every lock; if a live conflicting
        lock is there (exclusive vs anything, shared vs exclusive) remove ours and raise
        ConflictError naming the holder. Two processes racing both see each other and
        both back off, never both proceed. A lock whose lease expired is ignored (its
        holder crashed); a holder must therefore `refresh` well within `ttl`, and one
        whose lease lapsed must stop (`check` raises), because another process may have
        treated it as gone. An unreadable lock object counts as live: an operator
        removes it by hand, rather than a garbled file letting GC run under a backup.
        """
        if kind not in ("shared", "exclusive"):
            raise ValueError(f"lock kind must be shared or exclusive, not {kind!r}")
        lock = Lock(self, new_id(), kind, purpose, ttl, clock)
        lock._write()
        for key in self.target.list(LOCKS):
            if key == lock.key:
                continue
            other = self._read_lock(key)
            if other is None:
                continue
            if other.get("garbled"):
                conflict = True
            else:
                if datetime.fromisoformat(other["expires_at"]) < clock():
                    continue
                conflict = kind == "exclusive" or other["kind"] == "exclusive"
            if conflict:
                lock.release()
                raise ConflictError(f"{self.target.describe()}: cannot take a {kind} lock "
                                    f"for {purpose}: {_describe_lock(key, other)}")
        return lock

    def _read_lock(self, key: str) -> dict[str, Any] | None:
        try:
            data = self.target.get(key)
        except NotFoundError:
            return None  # released between list and get
        try:
            document = json.loads(data)
            if (datetime.fromisoformat(document["expires_at"]).tzinfo is None
                    or document["kind"] not in ("shared", "exclusive")):
                raise ValueError
            return document
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return {"garbled": True}

    def locks(self) -> list[dict[str, Any]]:
        """Every lock object's contents (for the console and `strongroom backup locks`)."""
        found = []
        for key in self.target.list(LOCKS):
            document = self._read_lock(key)
            if document is not None:
                found.append({"key": key, **document})
        return found


def _describe_lock(key: str, document: dict[str, Any]) -> str:
    if document.get("garbled"):
        return f"{key} is unreadable; remove it if no backup or prune is running"
    return (f"{key} is held {document['kind']} for {document.get('purpose')} by "
            f"{document.get('host')} pid {document.get('pid')} until {document['expires_at']}")


class Lock:
    """A lease on a repository; renew with `refresh`, end with `release` (or `with`)."""

    def __init__(self, repository: Repository, lock_id: uuid.UUID, kind: str, purpose: str,
                 ttl: timedelta, clock: Clock) -> None:
        self.repository = repository
        self.id = lock_id
        self.kind = kind
        self.purpose = purpose
        self.ttl = ttl
        self.clock = clock
        self.key = f"{LOCKS}{lock_id}.json"
        self.expires_at = clock() + ttl
        self.released = False

    def _write(self) -> None:
        now = self.clock()
        self.expires_at = now + self.ttl
        self.repository.target.put(self.key, canonical_json({
            "id": str(self.id), "kind": self.kind, "purpose": self.purpose,
            "host": socket.gethostname(), "pid": os.getpid(),
            "refreshed_at": now.isoformat(), "expires_at": self.expires_at.isoformat()}))

    def check(self) -> None:
        """Raise ConflictError if the lease lapsed; renew it when half spent."""
        if self.released:
            raise ConflictError(f"lock {self.key} was released")
        now = self.clock()
        if now >= self.expires_at:
            raise ConflictError(f"lock {self.key} ({self.purpose}) lapsed at "
                                f"{self.expires_at.isoformat()}; another process may have "
                                "taken over the repository, stop and start again")
        if now >= self.expires_at - self.ttl / 2:
            self._write()

    def refresh(self) -> None:
        """Renew the lease now (after checking it has not lapsed)."""
        self.check()
        self._write()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.repository.target.delete(self.key)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# =====================================================================================
# helpers
# =====================================================================================

def _unique_refs(manifest: Manifest) -> dict[str, ChunkRef]:
    refs: dict[str, ChunkRef] = {}
    for ref in manifest.chunk_refs():
        refs.setdefault(ref.address, ref)
    return refs


def _ordered(pool: ThreadPoolExecutor, fn: Callable[[ChunkRef], Any], refs: list[ChunkRef],
             window: int) -> Iterator[tuple[ChunkRef, Any]]:
    """Apply `fn` in `pool`, results in input order, at most `window` in flight."""
    pending: deque[tuple[ChunkRef, Future[Any]]] = deque()
    for ref in refs:
        pending.append((ref, pool.submit(fn, ref)))
        if len(pending) >= window:
            head, future = pending.popleft()
            yield head, future.result()
    while pending:
        head, future = pending.popleft()
        yield head, future.result()
