"""The seam between the backup jobs and wherever their bytes end up.

A target stores opaque, already-encrypted objects under string keys. The backup job
writes content-addressed chunks (the key is a keyed HMAC-SHA256 of the chunk's
plaintext, see core/backup/chunks.py, so within a repository a key always names
the same content) and, last, one manifest per snapshot; a snapshot without
its manifest does not exist. Targets therefore promise exactly two things beyond
get/put: a reader never sees half an object, and `put_if_absent` lets the job skip
chunks that are already there.

Keys are validated here, once, for every target: the same rules keep a key from
escaping a local directory (`..`, absolute paths) and keep S3 and disk layouts
identical, so a backup can be copied between them object by object.
"""
from __future__ import annotations

import re
from datetime import datetime
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from strongroom.core.errors import StrongroomError, ValidationError

MAX_KEY_LENGTH = 512

# One path segment: the allowed characters, not starting with a dot. A leading dot is
# reserved: LocalTarget's temporary files start with one, and "." / ".." never name an
# object anywhere.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9._-]*"
_KEY_RE = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_PREFIX_RE = re.compile(rf"(?:{_SEGMENT}/)*[A-Za-z0-9._-]*")


class StorageError(StrongroomError):
    """A storage target failed (full disk, read-only mount, S3 error, timeout).

    The message names the target (without credentials), the key and the cause, never
    the object's bytes. `code` stays "internal" on the control socket; the CLI exits 12
    ("unavailable"), so a cron wrapper can tell "the backup target is down" apart from
    a bad argument.
    """

    code = "internal"
    exit_code = 12


def validate_key(key: str) -> str:
    """Return `key` if it is a valid object key, else raise ValidationError.

    A key is relative, '/'-separated, made of [A-Za-z0-9._-], with no empty, "." or
    ".." segment, no segment starting with ".", and at most 512 characters.
    """
    if not isinstance(key, str):
        raise ValidationError(f"storage key must be a string, not {type(key).__name__}")
    if not key:
        raise ValidationError("storage key is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(f"storage key is {len(key)} characters long; at most "
                              f"{MAX_KEY_LENGTH} are allowed")
    if _KEY_RE.fullmatch(key) is None:
        raise ValidationError(f"storage key {key!r} is not a relative '/'-separated path "
                              "of [A-Za-z0-9._-] segments (no '..', no leading '/' or '.')")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it can start a valid key ("" lists everything)."""
    if not isinstance(prefix, str):
        raise ValidationError(f"storage prefix must be a string, not {type(prefix).__name__}")
    if len(prefix) > MAX_KEY_LENGTH or _PREFIX_RE.fullmatch(prefix) is None:
        raise ValidationError(f"storage prefix {prefix!r} cannot start a valid key")
    # The last, partial segment may not be a dot-name either ("." or ".." as a
    # directory would walk out of the target).
    last = prefix.rsplit("/", 1)[-1]
    if last.startswith("."):
        raise ValidationError(f"storage prefix {prefix!r} cannot start a valid key")
    return prefix


@runtime_checkable
class Target(Protocol):
    """Where backup objects and client files live: a local directory, an S3 (or GCS)
    bucket and prefix, or an Azure Blob container and prefix.

    Every method validates its key first (ValidationError) and reports storage
    failures as StorageError; `get` of a missing key raises NotFoundError.
    """

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically, replacing any previous object.

        Readers see the old object or the new one, never a mixture or a prefix, so a
        crash or a full disk mid-write cannot leave a truncated chunk or manifest.
        """
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store `data` under `key` unless the key exists; True if this call wrote it.

        For content-addressed chunks an existing key already holds these bytes, so
        the backup skips re-uploading them.
        """
        ...

    def replace(self, key: str, data: bytes) -> None:
        """Store `data` under `key` and leave no earlier version of it retrievable.

        For the one mutable object of a repository (the key bag, core/backup/keybag.py):
        after this returns, the previous bytes are gone from the target, including from
        a versioned bucket's history. Atomic like `put`: until the new object is stored
        the old one stays whole, so a failure loses nothing. Never Object-Locked.
        """
        ...

    def get(self, key: str) -> bytes:
        """Return the object's bytes; NotFoundError naming the key if it is missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if it is missing."""
        ...

    def modified_at(self, key: str) -> datetime | None:
        """When the object was last written (UTC), or None if it is missing. Lets a
        cleanup leave alone objects an upload in progress may still be writing."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys starting with `prefix`, lazily, in ascending order."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error (retention may race)."""
        ...

    def describe(self) -> str:
        """Where this target stores objects, for logs and the console; no secrets."""
        ...

    def close(self) -> None:
        """Release connections or handles; the target is not used afterwards."""
        ...
