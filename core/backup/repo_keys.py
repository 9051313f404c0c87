"""A backup repository's keys: config.json, its MAC, the KEK-wrapped backup key, rewrap.

Each repository has its own random 256-bit backup key, stored only wrapped by the KEK
(the same AES-GCM wrapping as the database's data keys, with the key id and a purpose of
its own as associated data). The KEK (key file or recovery kit) is therefore the only
secret a restore into an empty database needs; the database's `data_keys` table is not
involved, and the unwrapped key is never written anywhere. Snapshots carry no data key:
those are in the key bag (keybag.py), so that an erasure can reach them. Sub-keys come
from HKDF-SHA256 over the backup key with distinct `info` strings (`derive_subkeys`), so
the chunk cipher, the content-address MAC, the manifest MAC, the key bag and the config
MAC never share a key.

config.json holds the format, repository id, created_at and the wrapped backup key, with
an HMAC over the rest; config.previous is the config before a KEK rewrap, kept until
`confirm_rewrap_keys`. The functions here read and write those two objects and hand back
the parsed config with the unwrapped key; repository.py turns that into an opened
`Repository` (init_repository, open_repository, rewrap, confirm_rewrap).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from strongroom.core.backup.manifest import canonical_json
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

Clock = Callable[[], datetime]


class _Purpose(str, Enum):
    """The wrap purpose of a backup key.

    Keyring.wrap binds key id and purpose into the wrapping's associated data. A value
    no `data_keys.purpose` can hold means a wrapped backup key copied into the database
    (or a wrapped DEK copied into config.json) never unwraps as the other kind of key.
    """

    BACKUP_REPOSITORY = "backup_repository"


# =====================================================================================
# Sub-keys
# =====================================================================================

def _derive(key: bytes, info: bytes) -> bytes:
    # No salt: the input is a uniformly random 256-bit key, so HKDF-Expand's domain
    # separation by `info` is all that is needed.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


@dataclass(frozen=True)
class SubKeys:
    """The keys derived from one backup key, one per use (never printed)."""

    chunk: bytes = field(repr=False)        # AES-256-GCM key of the chunks (chunks.py)
    address: bytes = field(repr=False)      # HMAC key of the content addresses (chunks.py)
    manifest: bytes = field(repr=False)     # HMAC key of the manifests (manifest.py)
    keybag: bytes = field(repr=False)       # key sealing the key bag (keybag.py)
    config: bytes = field(repr=False)       # HMAC key of config.json (below)


def derive_subkeys(backup_key: bytes) -> SubKeys:
    """HKDF-SHA256 sub-keys of `backup_key`, each under its own `info` string."""
    return SubKeys(chunk=_derive(backup_key, b"strongroom-backup-chunk"),
                   address=_derive(backup_key, b"strongroom-backup-chunk-address"),
                   manifest=_derive(backup_key, b"strongroom-backup-manifest"),
                   keybag=_derive(backup_key, b"strongroom-backup-keybag"),
                   config=_config_key(backup_key))


def _config_key(backup_key: bytes) -> bytes:
    return _derive(backup_key, b"strongroom-backup-config")


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


def parse_config(target: Target, name: str, data: bytes) -> RepositoryConfig:
    """Parse config.json (or config.previous) `name`; IntegrityError names it if garbled.

    Checks the format version and the fields, not the HMAC: that needs the unwrapped
    key (`unwrap_backup_key`)."""
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


def read_config(target: Target, name: str) -> RepositoryConfig | None:
    """The parsed config object `name` on `target`, None if there is none."""
    try:
        data = target.get(name)
    except NotFoundError:
        return None
    return parse_config(target, name, data)


# =====================================================================================
# The wrapped backup key
# =====================================================================================

def wrap_backup_key(backup_key: bytes, key_id: uuid.UUID, keyring: Keyring) -> bytes:
    """`backup_key` wrapped by the keyring's primary KEK, bound to `key_id`."""
    return keyring.wrap(backup_key, key_id, _Purpose.BACKUP_REPOSITORY,  # type: ignore[arg-type]
                        keyring.kek_id)


def unwrap_backup_key(target: Target, name: str, config: RepositoryConfig,
                      keyring: Keyring) -> bytes:
    """Unwrap the backup key of config object `name` and verify the config's HMAC.

    A wrapping or HMAC that fails raises IntegrityError naming the object."""
    try:
        key = keyring.unwrap(config.key_id, _Purpose.BACKUP_REPOSITORY,  # type: ignore[arg-type]
                             config.wrapped, config.kek_id)
    except CryptoError:
        raise IntegrityError(f"{target.describe()}: {name}: the wrapped backup key failed "
                             "authentication (corrupted or tampered)") from None
    if not hmac.compare_digest(config.document.get("hmac", "").encode(),
                               _config_mac(_config_key(key), config.document).encode()):
        raise IntegrityError(f"{target.describe()}: {name} failed HMAC verification "
                             "(a field was altered)")
    return key


def _wrong_kek(target: Target, config: RepositoryConfig, keyring: Keyring) -> KeyUnavailableError:
    return KeyUnavailableError(
        f"backup repository {target.describe()} is keyed to KEK {config.kek_id}, but the "
        f"loaded KEK is {keyring.kek_id}: wrong key file, or the repository was not "
        "rewrapped after a KEK rotation (load the retired key file or recovery kit)")


# =====================================================================================
# init, open, rewrap, confirm
# =====================================================================================

def init_keys(target: Target, keyring: Keyring, *,
              clock: Clock = utcnow) -> tuple[RepositoryConfig, bytes]:
    """Write config.json with a fresh backup key; the new config and the key.

    Refuses (ConflictError) if the target already holds a config.json: overwriting it
    would orphan every existing backup (their key exists only in that file).
    """
    if target.exists(CONFIG_KEY):
        raise ConflictError(f"{target.describe()} already holds a backup repository "
                            f"({CONFIG_KEY} exists); open it instead")
    backup_key = os.urandom(32)
    repository_id = uuid.uuid4()
    key_id = new_id()
    wrapped = wrap_backup_key(backup_key, key_id, keyring)
    document = _config_document(repository_id, clock().isoformat(), keyring.kek_id, key_id,
                                wrapped, _config_key(backup_key))
    if not target.put_if_absent(CONFIG_KEY, canonical_json(document)):
        raise ConflictError(f"{target.describe()}: another process created a repository "
                            "here at the same moment; open it instead")
    return parse_config(target, CONFIG_KEY, canonical_json(document)), backup_key


def open_keys(target: Target, keyring: Keyring) -> tuple[RepositoryConfig, bytes]:
    """Read config.json and unwrap its backup key with the KEK(s) in `keyring`.

    A missing or garbled config.json raises IntegrityError naming it (NotFoundError on
    an empty target); a config wrapped by a KEK the keyring does not hold raises
    KeyUnavailableError naming both KEK ids. If an unconfirmed rewrap left
    config.previous under a KEK that *is* loaded (the rotation to the new KEK was
    abandoned), the config and key come from it.
    """
    config = read_config(target, CONFIG_KEY)
    if config is None and next(iter(target.list()), None) is None:
        raise NotFoundError(f"{target.describe()}: no backup repository here yet (the first backup creates it)")
    if config is None:
        raise IntegrityError(f"{target.describe()}: {CONFIG_KEY} is missing: not a backup "
                             "repository, or its config was deleted (restore it from a "
                             "copy of the target; without it no backup here can be read)")
    name = CONFIG_KEY
    if config.kek_id not in keyring.kek_ids():
        previous = read_config(target, PREVIOUS_CONFIG_KEY)
        if (previous is None or previous.kek_id not in keyring.kek_ids()
                or previous.repository_id != config.repository_id):
            raise _wrong_kek(target, config, keyring)
        log.warning("%s: %s is wrapped by KEK %s, which is not loaded; opening through %s "
                    "(KEK %s)", target.describe(), CONFIG_KEY, config.kek_id,
                    PREVIOUS_CONFIG_KEY, previous.kek_id)
        config, name = previous, PREVIOUS_CONFIG_KEY
    return config, unwrap_backup_key(target, name, config, keyring)


def rewrap_keys(target: Target, repository_id: uuid.UUID, backup_key: bytes,
                keyring: Keyring) -> tuple[RepositoryConfig, bytes] | None:
    """Wrap the backup key under `keyring.kek_id` (after a KEK rotation).

    The backup key itself does not change, so every chunk and manifest stays valid; only
    config.json is rewritten, with one atomic put. Before that, the current config is
    copied to config.previous, and it stays there until `confirm_rewrap_keys`: if the
    rotation is abandoned or the new KEK is lost before it reaches the key file and the
    recovery kit, the old KEK still opens the repository through config.previous
    (`open_keys` falls back to it). Confirm only once the new KEK is installed and
    backed up. Re-running after a crash at any point converges to the same state.

    Returns the config and key as read back (and checked) after the write, or None if
    config.json was already wrapped by `keyring.kek_id` and nothing was written.
    Refuses (ConflictError) while a different, unconfirmed rewrap's config.previous is
    present, so two rotations in a row cannot discard the only copy under an older KEK.
    """
    stored = target.get(CONFIG_KEY)
    current = parse_config(target, CONFIG_KEY, stored)
    if current.kek_id == keyring.kek_id:
        return None
    if current.repository_id != repository_id:
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
    wrapped = wrap_backup_key(backup_key, current.key_id, keyring)
    document = _config_document(current.repository_id, current.created_at, keyring.kek_id,
                                current.key_id, wrapped, _config_key(backup_key))
    target.put(CONFIG_KEY, canonical_json(document))
    config, reopened_key = open_keys(target, keyring)
    if config.kek_id != keyring.kek_id or not hmac.compare_digest(reopened_key, backup_key):
        raise IntegrityError(f"{target.describe()}: {CONFIG_KEY} did not read back as "
                             "written after rewrapping; config.previous was kept")
    return config, reopened_key


def confirm_rewrap_keys(target: Target, keyring: Keyring) -> tuple[RepositoryConfig, bytes]:
    """Drop config.previous once config.json opens with the keyring's primary KEK."""
    config = read_config(target, CONFIG_KEY)
    if config is None or config.kek_id != keyring.kek_id:
        raise ConflictError(f"{target.describe()}: {CONFIG_KEY} is not wrapped by KEK "
                            f"{keyring.kek_id}; rewrap first")
    backup_key = unwrap_backup_key(target, CONFIG_KEY, config, keyring)
    target.delete(PREVIOUS_CONFIG_KEY)
    return config, backup_key
