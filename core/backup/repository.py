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

Concurrency: see locks.py; garbage collection: see `unreferenced_chunks`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.core.backup.gc import referenced_chunks, unreferenced_chunks
from strongroom.core.backup.layout import SNAPSHOTS, chunk_key, manifest_key
from strongroom.core.backup.locks import DEFAULT_LOCK_TTL, Lock, acquire_lock, list_locks
from strongroom.core.backup.manifest import ChunkRef, Manifest, ManifestError, canonical_json
from strongroom.core.backup.manifest import seal as _seal
from strongroom.core.backup.manifest import unseal as _unseal
from strongroom.core.backup.verify import Problem, verify_fast, verify_read_data
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
CHUNK_VERSION = 1
_NONCE = 12
_TAG = 16
_HEADER = bytes([CHUNK_VERSION])
_CHUNK_AAD = b"strongroom-backup-chunk\0"
DEFAULT_LEVEL = 3

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


@dataclass(frozen=True)
class StoredChunk:
    """What `store_chunk` did: the reference for the manifest and the bytes it added.

    `new_bytes` is 0 when the chunk was already in the repository (deduplicated).
    """

    ref: ChunkRef
    new_bytes: int


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

