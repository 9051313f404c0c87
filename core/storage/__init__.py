"""Storage targets for backups and client files: a local directory, an S3 bucket, an
Azure Blob container or a Google Cloud Storage bucket, chosen by one URL.

The URL is the whole configuration of a target:

    /var/backups/strongroom                      a local directory (absolute path)
    file:///var/backups/strongroom               the same
    s3://bucket                                  the bucket's root
    s3://bucket/some/prefix?region=eu-west-1&object_lock_days=30
    azure://account/container/some/prefix        an Azure Blob Storage container
    gs://bucket/some/prefix                      Google Cloud Storage (its S3-compatible XML API)

S3 query parameters (each at most once): endpoint_url (http or https, for MinIO or a
test server), region, sse_kms_key_id, object_lock_days, object_lock_mode (GOVERNANCE or
COMPLIANCE), multipart_threshold (bytes, at least 5 MiB), max_attempts, connect_timeout
and read_timeout (seconds). Azure takes endpoint_url (Azurite, or a sovereign cloud),
max_attempts, connect_timeout and read_timeout. Google Cloud Storage is reached through
the S3 code path at https://storage.googleapis.com (region `auto`) with an HMAC key of a
service account as the AWS key pair; it takes the S3 parameters except sse_kms_key_id
and the Object Lock ones, which its XML API does not offer (a bucket retention policy
is set on the bucket itself). Credentials are refused in every URL: they come from
boto3's standard chain or, for Azure, from the environment (core/storage/azure.py), so
a config file showing the URL never holds a secret. Error messages name the parameter
at fault but never echo a value that could be one.
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
    if parts.scheme == "gs":
        return _s3(url, gcs=True)
    if parts.scheme == "azure":
        return _azure(url)
    if not parts.scheme:
        raise ValidationError("storage URL: a local path must be absolute "
                              "(or use file:///abs/path, s3://bucket/prefix, azure://account/container/prefix "
                              "or gs://bucket/prefix)")
    raise ValidationError("storage URL: unknown scheme; use file://, s3://, azure:// or gs://")


def _local(path: str) -> Target:
    from strongroom.core.storage.local import LocalTarget

    if not path.startswith("/"):
        raise ValidationError("storage URL: a local path must be absolute")
    if any(segment == ".." for segment in path.split("/")):
        raise ValidationError("storage URL: a local path must not contain '..'")
    return LocalTarget(Path(path))


GCS_ENDPOINT = "https://storage.googleapis.com"
# What Google Cloud Storage's XML API does not offer: refused by name, not ignored.
_GCS_UNSUPPORTED = ("sse_kms_key_id", "object_lock_days", "object_lock_mode")
_AZURE_PARAMS = ("endpoint_url", "max_attempts", "connect_timeout", "read_timeout")
_LABELS = {"s3": "S3", "gs": "GCS", "azure": "Azure"}


def _split(url: str, scheme: str) -> tuple[str, str, dict[str, Any]]:
    """(host part, prefix, checked options) of an object-store URL; nothing echoed but
    parameter names, and credentials refused before anything else is read."""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Checked before anything else so no message below can echo a secret.
        raise ValidationError(f"storage URL: credentials must not appear in a {scheme}:// URL; "
                              "they come from the daemon's environment (see README, Backups)")
    if parts.fragment:
        raise ValidationError(f"storage URL: {scheme}:// URLs take no #fragment")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise ValidationError("storage URL: the query string is malformed") from None
    label = _LABELS[scheme]
    options: dict[str, Any] = {}
    for name, values in query.items():
        if name not in _S3_PARAMS:
            raise ValidationError(f"storage URL: unknown {label} parameter {name!r}; known: "
                                  f"{', '.join(sorted(_S3_PARAMS))}")
        if len(values) != 1:
            raise ValidationError(f"storage URL: {label} parameter {name!r} is given more than once")
        if not values[0]:
            raise ValidationError(f"storage URL: {label} parameter {name!r} is empty")
        options[name] = _S3_PARAMS[name](name, values[0])
    return parts.netloc, unquote(parts.path).strip("/"), options


def _checked_prefix(prefix: str, what: str) -> str:
    if prefix:
        try:
            validate_key(prefix)
        except ValidationError:
            raise ValidationError(f"storage URL: {what} prefix is not a relative path "
                                  "of [A-Za-z0-9._-] segments") from None
    return prefix


def _s3(url: str, *, gcs: bool = False) -> Target:
    from strongroom.core.storage.s3 import S3Target

    scheme = "gs" if gcs else "s3"
    bucket, prefix, options = _split(url, scheme)
    if not bucket:
        raise ValidationError(f"storage URL: {scheme}:// URL has no bucket ({scheme}://bucket/prefix)")
    _checked_prefix(prefix, "GCS" if gcs else "S3")
    if gcs:
        for name in _GCS_UNSUPPORTED:
            if name in options:
                raise ValidationError(f"storage URL: Google Cloud Storage does not offer {name} through "
                                      "its S3-compatible API (set a retention policy on the bucket instead)")
        options.setdefault("endpoint_url", GCS_ENDPOINT)
        options.setdefault("region", "auto")
    return S3Target(bucket, prefix, **options)


def _azure(url: str) -> Target:
    from strongroom.core.storage.azure import AzureTarget

    account, path, options = _split(url, "azure")
    for name in options:
        if name not in _AZURE_PARAMS:
            raise ValidationError(f"storage URL: unknown Azure parameter {name!r}; known: "
                                  f"{', '.join(sorted(_AZURE_PARAMS))}")
    container, _, prefix = path.partition("/")
    if not account or not container:
        raise ValidationError("storage URL: an azure:// URL names the account and the container "
                              "(azure://account/container/prefix)")
    return AzureTarget(account, container, _checked_prefix(prefix, "Azure"), **options)
