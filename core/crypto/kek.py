"""The key-encryption key (KEK): where it comes from and how it is stored on disk.

The KEK never sits in the database or the config file. It comes from, in order: a
systemd credential ($CREDENTIALS_DIRECTORY/<name>), an environment variable, or a key
file readable by its owner only. Its id (a hash of the key, not the key) is stored
beside every wrapped data key, so a wrong KEK is reported as such instead of as a
thousand decryption failures.

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
from strongroom.core.errors import KeyUnavailableError
from strongroom.core.fsutil import write_atomic

PREFIX = "strongroom-kek-v1:"


@dataclass(frozen=True)
class Kek:
    key: bytes
    source: str

    @property
    def kek_id(self) -> str:
        return kek_id_of(self.key)


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


def write_kek_file(path: Path, key: bytes) -> None:
    """Write a KEK file with mode 0600 atomically; refuses to overwrite an existing one."""
    if path.exists():
        raise KeyUnavailableError(f"{path}: refusing to overwrite an existing key file")
    write_atomic(path, encode_kek(key).encode(), mode=0o600)


def read_kek_file(path: Path) -> Kek:
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
        return decode_kek(path.read_text(), str(path))
    except (UnicodeDecodeError, OSError) as exc:
        raise KeyUnavailableError(f"key file {path} cannot be read: {exc}") from None


def pending_path(path: Path) -> Path:
    return path.with_name(path.name + ".pending")


def load_keks(settings: KeySettings) -> list[Kek]:
    """The configured KEK first, then a pending rotation key if one is on disk."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds and settings.kek_credential and (Path(creds) / settings.kek_credential).exists():
        return [decode_kek((Path(creds) / settings.kek_credential).read_text(),
                           f"systemd credential {settings.kek_credential}")]
    if settings.kek_env and os.environ.get(settings.kek_env):
        return [decode_kek(os.environ[settings.kek_env], f"environment variable {settings.kek_env}")]
    if settings.kek_file is None:
        raise KeyUnavailableError(
            "no key-encryption key: set keys.kek_file, a systemd credential or "
            f"${settings.kek_env or 'STRONGROOM_KEK'}"
        )
    keks = [read_kek_file(settings.kek_file)]
    pending = pending_path(settings.kek_file)
    if pending.exists():
        keks.append(read_kek_file(pending))
    return keks
