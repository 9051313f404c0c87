"""The key-encryption key (KEK): where it comes from and how it is stored on disk.

The KEK never sits in the database or the config file. It comes from, in order: a
systemd credential ($CREDENTIALS_DIRECTORY/<name>), an environment variable, or a key
file readable by its owner only. Its id (a hash of the key, not the key) is stored
beside every wrapped data key, so a wrong KEK is reported as such instead of as a
thousand decryption failures.

Or the KEK is protected by AWS KMS (core.crypto.kms): the key file then holds a KMS
envelope, opened by KMS once at load; the KEK's plaintext exists only in memory.

A KEK rotation in progress leaves the new key in `<kek_file>.pending` until the database
has been rewrapped; loading offers both, so a crash at any point loses nothing.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from strongroom.core.config import KeySettings
from strongroom.core.crypto import kms
from strongroom.core.errors import KeyUnavailableError
from strongroom.core.fsutil import write_atomic

PREFIX = "strongroom-kek-v1:"


@dataclass(frozen=True)
class Kek:
    key: bytes
    source: str
    # Set when the key is protected by KMS: what is stored instead of the key.
    envelope: kms.Envelope | None = None

    @property
    def kek_id(self) -> str:
        if self.envelope is not None:
            return kms.kms_kek_id(self.envelope.kms_key_arn, self.key)
        return kek_id_of(self.key)

    @property
    def kms_key(self) -> str | None:
        return self.envelope.kms_key_arn if self.envelope is not None else None

    def file_text(self) -> str:
        """What a key file holds for this KEK: the key itself, or its KMS envelope."""
        return self.envelope.to_text() if self.envelope is not None else encode_kek(self.key)

    def describe(self) -> dict:
        """Where this KEK comes from, for status and health: never the key."""
        if self.envelope is not None:
            return {"source": "kms", "kms_key": self.envelope.kms_key_arn, "file": self.source,
                    "kek_id": self.kek_id}
        if self.source.startswith("/"):
            return {"source": "file", "file": self.source, "kek_id": self.kek_id}
        return {"source": self.source, "kek_id": self.kek_id}


def kms_config(settings: KeySettings | None) -> kms.KmsConfig:
    if settings is None:
        return kms.KmsConfig()
    return kms.KmsConfig(settings.kms_endpoint_url, settings.kms_region)


def kek_id_of(key: bytes) -> str:
    return hashlib.sha256(b"strongroom-kek-id\0" + key).hexdigest()[:16]


def encode_kek(key: bytes) -> str:
    return PREFIX + base64.urlsafe_b64encode(key).decode() + "\n"


def decode_kek(text: str, source: str) -> Kek:
    text = text.strip()
    if not text.startswith(PREFIX):
        raise KeyUnavailableError(f"{source}: not a Strongroom key (expected '{PREFIX}...')")
    try:
        key = base64.urlsafe_b64decode(text[len(PREFIX):].encode())
    except ValueError:
        raise KeyUnavailableError(f"{source}: key is not valid base64") from None
    if len(key) != 32:
        raise KeyUnavailableError(f"{source}: key must be 32 bytes, found {len(key)}")
    return Kek(key, source)


def generate_kek() -> bytes:
    return secrets.token_bytes(32)


def write_kek_file(path: Path, key: bytes | Kek) -> None:
    """Write a KEK file with mode 0600 atomically; refuses to overwrite an existing one.
    A KMS-protected Kek is written as its envelope, never as the key."""
    if path.exists():
        raise KeyUnavailableError(f"{path}: refusing to overwrite an existing key file")
    text = key.file_text() if isinstance(key, Kek) else encode_kek(key)
    write_atomic(path, text.encode(), mode=0o600)


def open_kms_kek(text: str, source: str, settings: KeySettings | None,
                 expected_key_id: str | None = None) -> Kek:
    envelope = kms.parse_envelope(text, source)
    key = kms.open_envelope(kms_config(settings), envelope, expected_key_id)
    return Kek(key, source, envelope)


def read_kek_file(path: Path, settings: KeySettings | None = None, *, configured: bool = False) -> Kek:
    """The KEK in a key file. A KMS envelope is opened through KMS (endpoint and region
    from `settings`); with `configured`, it must be under keys.kms_key_id if that is set
    (retired and pending files may be under another KMS key)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyUnavailableError(
            f"key file {path} is missing: restore it from your key backup or recovery kit "
            "(`strongroom keys recover`)"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyUnavailableError(
            f"key file {path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "run chmod 600 on it"
        )
    try:
        text = path.read_text()
    except (UnicodeDecodeError, OSError) as exc:
        raise KeyUnavailableError(f"key file {path} cannot be read: {type(exc).__name__}") from None
    if kms.is_envelope(text):
        expected = settings.kms_key_id if configured and settings is not None else None
        return open_kms_kek(text, str(path), settings, expected)
    if configured and settings is not None and settings.kms_key_id:
        raise KeyUnavailableError(
            f"keys.kms_key_id is {settings.kms_key_id}, but key file {path} holds a plain key, not a "
            "KMS envelope: move the KEK into KMS with `strongroom keys rotate-kek --to kms`, or remove "
            "keys.kms_key_id")
    return decode_kek(text, str(path))


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".pending")


def load_keks(settings: KeySettings) -> list[Kek]:
    """The configured KEK first, then a pending rotation key if one is on disk."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if settings.kms_key_id and settings.kek_file is None:
        raise KeyUnavailableError(
            f"keys.kms_key_id is {settings.kms_key_id} but keys.kek_file is not set: the KMS-encrypted "
            "KEK lives in that file (create it with `strongroom keys rotate-kek --to kms`)")
    # With keys.kms_key_id the KEK is the KMS envelope in kek_file; the plain-key
    # sources are not consulted (one of them would silently bypass KMS).
    kms_only = bool(settings.kms_key_id)
    if not kms_only and creds and settings.kek_credential and (Path(creds) / settings.kek_credential).exists():
        return [decode_kek((Path(creds) / settings.kek_credential).read_text(),
                           f"systemd credential {settings.kek_credential}")]
    if not kms_only and settings.kek_env and os.environ.get(settings.kek_env):
        return [decode_kek(os.environ[settings.kek_env], f"environment variable {settings.kek_env}")]
    if settings.kek_file is None:
        raise KeyUnavailableError(
            "no key-encryption key: set keys.kek_file, a systemd credential or "
            f"${settings.kek_env or 'STRONGROOM_KEK'}"
        )
    keks = [read_kek_file(settings.kek_file, settings, configured=True)]
    pending = pending_path(settings.kek_file)
    if pending.exists():
        keks.append(read_kek_file(pending, settings))
    return keks
