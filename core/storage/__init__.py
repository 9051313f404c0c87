"""Storage targets for backups: a local directory or an S3 bucket, chosen by one URL.

The URL is the whole configuration of a target:

    /var/backups/strongroom                      a local directory (absolute path)
    file:///var/backups/strongroom               the same
    s3://bucket                                  the bucket's root
    s3://bucket/some/prefix?region=eu-west-1&object_lock_days=30

S3 query parameters (each at most once): endpoint_url (http or https, for MinIO or a
test server), region, sse_kms_key_id, object_lock_days, object_lock_mode (GOVERNANCE or
COMPLIANCE), multipart_threshold (bytes, at least 5 MiB), max_attempts, connect_timeout
and read_timeout (seconds). Credentials are refused in the URL: they come from boto3's
standard chain, so a config file showing the URL never holds a secret. Error messages
name the parameter at fault but never echo a value that could be one.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from strongroom.core.errors import ValidationError
from strongroom.core.storage.base import StorageError, Target, validate_key, validate_prefix

__all__ = ["StorageError", "Target", "open_target", "validate_key", "validate_prefix"]


def _positive_int(name: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValidationError(f"storage URL: {name} must be a whole number") from None
    if value < 1:
        raise ValidationError(f"storage URL: {name} must be at least 1")
    return value


def _positive_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError(f"storage URL: {name} must be a number of seconds") from None
    if not value > 0:
        raise ValidationError(f"storage URL: {name} must be positive")
    return value


def _endpoint(name: str, text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"storage URL: {name} must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(f"storage URL: {name} must not carry credentials")
    return text


_S3_PARAMS: dict[str, Callable[[str, str], Any]] = {
    "endpoint_url": _endpoint,
    "region": lambda _name, text: text,
    "sse_kms_key_id": lambda _name, text: text,
    "object_lock_days": _positive_int,
    "object_lock_mode": lambda _name, text: text.upper(),
    "multipart_threshold": _positive_int,
    "max_attempts": _positive_int,
    "connect_timeout": _positive_float,
    "read_timeout": _positive_float,
}


def open_target(url: str) -> Target:
    """Build the target a storage URL names; ValidationError says what is wrong with it."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError("storage URL is empty")
    url = url.strip()
    if url.startswith("/"):
        return _local(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValidationError("storage URL: file:// URLs name a local path "
                                  "(file:///abs/path), not a host")
        if parts.query or parts.fragment:
            raise ValidationError("storage URL: file:// URLs take no query or fragment")
        return _local(unquote(parts.path))
    if parts.scheme == "s3":
        return _s3(url)
    if not parts.scheme:
        raise ValidationError("storage URL: a local path must be absolute "
                              "(or use file:///abs/path or s3://bucket/prefix)")
    raise ValidationError(f"storage URL: unknown scheme {parts.scheme!r}; use file:// or s3://")


def _local(path: str) -> Target:
    from strongroom.core.storage.local import LocalTarget

    if not path.startswith("/"):
        raise ValidationError("storage URL: a local path must be absolute")
    if any(segment == ".." for segment in path.split("/")):
        raise ValidationError("storage URL: a local path must not contain '..'")
    return LocalTarget(Path(path))


def _s3(url: str) -> Target:
    from strongroom.core.storage.s3 import S3Target

    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Checked before anything else so no message below can echo a secret.
        raise ValidationError("storage URL: credentials must not appear in an s3:// URL; "
                              "they come from the environment, ~/.aws or the instance role")
    if parts.fragment:
        raise ValidationError("storage URL: s3:// URLs take no #fragment")
    bucket = parts.netloc
    if not bucket:
        raise ValidationError("storage URL: s3:// URL has no bucket (s3://bucket/prefix)")
    prefix = unquote(parts.path).strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except ValidationError:
            raise ValidationError(f"storage URL: S3 prefix {prefix!r} is not a relative path "
                                  "of [A-Za-z0-9._-] segments") from None
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValidationError("storage URL: the query string is malformed") from None
    options: dict[str, Any] = {}
    for name, values in query.items():
        if name not in _S3_PARAMS:
            raise ValidationError(f"storage URL: unknown S3 parameter {name!r}; known: "
                                  f"{', '.join(sorted(_S3_PARAMS))}")
        if len(values) != 1:
            raise ValidationError(f"storage URL: S3 parameter {name!r} is given more than once")
        if not values[0]:
            raise ValidationError(f"storage URL: S3 parameter {name!r} is empty")
        options[name] = _S3_PARAMS[name](name, values[0])
    return S3Target(bucket, prefix, **options)
