"""A storage target in an S3 bucket (AWS, or any S3-compatible endpoint).

Object key = `<prefix>/<key>`, so several practices or machines can share a bucket.
Credentials come only from boto3's standard chain (environment, ~/.aws files, instance
or task role), never from Strongroom's config file, so the config can be shown and
backed up without leaking a secret; no message or log line here carries one.

Threats and the answer to each:
- Ransomware or a stolen admin login deleting backups: optional Object Lock retention
  on every object (`object_lock_days`). In a bucket created with Object Lock, a locked
  version cannot be deleted or overwritten before its date, not even by our own
  credentials (COMPLIANCE mode: not even by the account root). `delete` then only adds a
  delete marker; the locked version stays until a lifecycle rule removes it after the
  retention ends.
- A flaky network or S3 throttling mid-backup: botocore's "standard" retry mode retries
  throttling, 5xx and connection errors with jittered exponential backoff, up to
  `max_attempts`, and the timeouts bound every attempt, so a dead endpoint fails the job
  in bounded time instead of hanging the daemon.
- Partial uploads: a single PUT is atomic on S3; a multipart upload becomes visible
  only when completed, and a failed one is aborted so no orphan parts accrue charges.
- Data at rest with the provider: objects are already encrypted by Strongroom; SSE-KMS
  (`sse_kms_key_id`) adds the provider's key management and access logging on top.
"""
from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.storage.base import StorageError, validate_key, validate_prefix

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PARTS = 10_000
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


class S3Target:
    """Objects in `bucket` under `prefix`; see the module docstring for the guarantees."""

    # Keys per ListObjectsV2 page (S3's maximum); list() holds one page at a time.
    list_page_size = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        sse_kms_key_id: str | None = None,
        object_lock_days: int | None = None,
        object_lock_mode: LockMode = "GOVERNANCE",
        multipart_threshold: int = 8 * MiB,
        max_attempts: int = 5,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
    ) -> None:
        _check_settings(object_lock_days, object_lock_mode, multipart_threshold,
                        max_attempts, connect_timeout, read_timeout)
        if _BUCKET_RE.fullmatch(bucket) is None:
            raise ValidationError(f"S3 bucket name {bucket!r} is not valid (3-63 characters "
                                  "of a-z, 0-9, '.' and '-')")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.sse_kms_key_id = sse_kms_key_id
        self.object_lock_days = object_lock_days
        self.object_lock_mode = object_lock_mode
        self.multipart_threshold = multipart_threshold
        self._key_prefix = f"{prefix}/" if prefix else ""
        # Until an endpoint answers NotImplemented to If-None-Match (older S3-compatible
        # servers), put_if_absent uses the conditional PUT; afterwards HEAD then PUT.
        self._conditional_writes = True
        config = Config(
            # total_max_attempts counts the first request too; botocore's "max_attempts"
            # key would mean retries, one more request than the setting's name says.
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Custom endpoints (MinIO, a NAS, a test server on an IP) rarely resolve
            # bucket subdomains; path style works everywhere.
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        # A session of our own: boto3's default session is shared and not thread-safe.
        session = boto3.session.Session()
        try:
            self._client = session.client("s3", endpoint_url=endpoint_url,
                                          region_name=region, config=config)
        except BotoCoreError as exc:  # e.g. InvalidRegionError, before any request
            raise ValidationError(f"S3 target s3://{bucket}/{prefix}: {exc}") from exc

    # -- Target protocol ---------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        """One PUT, or a multipart upload above the threshold; both atomic on S3."""
        name = self._name(key)
        try:
            if len(data) > self.multipart_threshold:
                self._multipart(name, bytes(data), if_absent=False)
            else:
                self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data),
                                        **self._write_args())
        except (ClientError, BotoCoreError) as exc:
            raise self._error("write", key, exc) from exc

    def replace(self, key: str, data: bytes) -> None:
        """PUT without Object Lock retention, then delete every other version of the key
        (and any delete marker), so a versioned bucket keeps no earlier bytes.

        The new version is written first: if the PUT fails the old one is untouched, and
        if a delete fails the call raises (the caller retries; the newest version is
        already the new one). A bucket whose *default* retention locks every new object
        cannot hold a mutable object: that is refused with a message saying so.
        """
        name = self._name(key)
        args = {k: v for k, v in self._write_args().items() if not k.startswith("ObjectLock")}
        try:
            written = self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data), **args)
            keep = written.get("VersionId")
            if keep is not None:              # unversioned bucket: the PUT replaced it
                for version in self._versions(name):
                    if version != keep:
                        self._client.delete_object(Bucket=self.bucket, Key=name,
                                                   VersionId=version)
        except ClientError as exc:
            if _code(exc) in ("AccessDenied", "InvalidRequest") and self.object_lock_days:
                raise StorageError(
                    f"{self.describe()}: cannot remove an earlier version of {key!r}: the bucket "
                    "locks it (a default Object Lock retention?). The key bag must live where "
                    "old versions can be deleted; see README, Erasure") from exc
            raise self._error("replace", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("replace", key, exc) from exc

    def versions(self, key: str) -> list[str]:
        """Every stored version id of `key` (delete markers included), newest first."""
        try:
            return list(self._versions(self._name(key)))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list versions of", key, exc) from exc

    def _versions(self, name: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=name):
            for item in (*page.get("Versions", ()), *page.get("DeleteMarkers", ())):
                if item["Key"] == name:
                    yield item["VersionId"]

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """A conditional write (If-None-Match: *); S3 refuses it if the key exists.

        Where the endpoint lacks conditional writes, HEAD then PUT: two backups racing
        for one chunk key then both write it, which is harmless because a
        content-addressed key always holds the same bytes.
        """
        name = self._name(key)
        if not self._conditional_writes:
            if self.exists(key):
                return False
            self.put(key, data)
            return True
        try:
            if len(data) > self.multipart_threshold:
                return self._multipart(name, bytes(data), if_absent=True)
            self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data),
                                    IfNoneMatch="*", **self._write_args())
            return True
        except ClientError as exc:
            code = _code(exc)
            if code == "PreconditionFailed":
                return False
            if code == "ConditionalRequestConflict" and self.exists(key):
                # Another writer's upload of this key completed first.
                return False
            if code == "NotImplemented":
                log.info("%s does not support conditional writes; using HEAD then PUT",
                         self.describe())
                self._conditional_writes = False
                return self.put_if_absent(key, data)
            raise self._error("write", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("write", key, exc) from exc

    def get(self, key: str) -> bytes:
        """Download the whole object (botocore checks its checksum when S3 sends one)."""
        name = self._name(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            with response["Body"] as body:
                return body.read()
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise NotFoundError(f"{self.describe()}: no object {key!r}") from exc
            raise self._error("read", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("read", key, exc) from exc

    def exists(self, key: str) -> bool:
        """A HEAD request; 404 means absent."""
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """ContentLength from HEAD; None on 404."""
        name = self._name(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error("stat", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("stat", key, exc) from exc
        return int(response["ContentLength"])

    def modified_at(self, key: str) -> datetime | None:
        """LastModified from HEAD (aware, UTC); None on 404."""
        name = self._name(key)
        try:
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error("stat", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("stat", key, exc) from exc
        return response["LastModified"].astimezone(UTC)

    def list(self, prefix: str = "") -> Iterator[str]:
        """ListObjectsV2 page by page; S3 returns keys in ascending order."""
        validate_prefix(prefix)
        return self._list(prefix)

    def delete(self, key: str) -> None:
        """DeleteObject; S3 answers 204 for a missing key too.

        In a versioned (Object Lock) bucket this adds a delete marker: the object
        disappears from get/list, while locked versions stay until retention ends.
        """
        name = self._name(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("delete", key, exc) from exc

    def describe(self) -> str:
        """s3://bucket/prefix plus endpoint, region and protection; never credentials."""
        parts = [f"s3://{self.bucket}/{self.prefix}"]
        if self.endpoint_url:
            parts.append(f"endpoint {self.endpoint_url}")
        if self.region:
            parts.append(f"region {self.region}")
        if self.sse_kms_key_id:
            parts.append(f"SSE-KMS key {self.sse_kms_key_id}")
        if self.object_lock_days:
            parts.append(f"Object Lock {self.object_lock_mode} {self.object_lock_days}d")
        return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"

    def close(self) -> None:
        """Close the client's connection pool."""
        self._client.close()

    # -- helpers -------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self._key_prefix + validate_key(key)

    def _write_args(self) -> dict[str, Any]:
        """Encryption and retention headers for every new object or upload."""
        args: dict[str, Any] = {}
        if self.sse_kms_key_id:
            args["ServerSideEncryption"] = "aws:kms"
            args["SSEKMSKeyId"] = self.sse_kms_key_id
        if self.object_lock_days:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = (
                datetime.now(UTC) + timedelta(days=self.object_lock_days))
        return args

    def _multipart(self, name: str, data: bytes, *, if_absent: bool) -> bool:
        """Upload in parts; completed (and visible) only at the end, aborted on failure.

        Returns False when `if_absent` and the key appeared meanwhile.
        """
        part_size = max(self.multipart_threshold, math.ceil(len(data) / MAX_PARTS))
        upload = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=name, ChecksumAlgorithm="CRC32", **self._write_args())
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                response = self._client.upload_part(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, PartNumber=number,
                    Body=data[start:start + part_size], ChecksumAlgorithm="CRC32")
                parts.append({"PartNumber": number, "ETag": response["ETag"],
                              "ChecksumCRC32": response["ChecksumCRC32"]})
            extra = {"IfNoneMatch": "*"} if if_absent else {}
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=name, UploadId=upload_id,
                MultipartUpload={"Parts": parts}, **extra)
            return True
        except (ClientError, BotoCoreError) as exc:
            self._abort(name, upload_id)
            if if_absent and isinstance(exc, ClientError) and _code(exc) == "PreconditionFailed":
                return False
            raise

    def _abort(self, name: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=name,
                                                UploadId=upload_id)
        except (ClientError, BotoCoreError) as exc:
            # The caller raises the original failure; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) is the backstop for this leftover.
            log.warning("%s: could not abort multipart upload of %r: %s",
                        self.describe(), name, _cause(exc))

    def _list(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix + prefix,
                                       PaginationConfig={"PageSize": self.list_page_size})
            for page in pages:
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self._key_prefix):]
                    try:
                        yield validate_key(key)
                    except ValidationError:
                        # Not written by Strongroom; get() could not fetch it anyway.
                        log.warning("%s: skipping foreign object %r", self.describe(),
                                    item["Key"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"{self.describe()}: cannot list {prefix!r}: "
                               f"{_cause(exc)}") from exc

    def _error(self, action: str, key: str, exc: ClientError | BotoCoreError) -> StorageError:
        return StorageError(f"{self.describe()}: cannot {action} {key!r}: {_cause(exc)}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _cause(exc: ClientError | BotoCoreError) -> str:
    """The S3 error code, HTTP status and retry count, or botocore's own wording.

    Only these fields: the full error response can echo request details (for
    SignatureDoesNotMatch, the access key id and the string to sign).
    """
    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        text = f"S3 error {_code(exc) or 'unknown'} (HTTP {meta.get('HTTPStatusCode', '?')}"
        retries = meta.get("RetryAttempts")
        return f"{text}, after {retries} retries)" if retries else f"{text})"
    return f"{type(exc).__name__}: {exc}"


def _check_settings(object_lock_days: int | None, object_lock_mode: str,
                    multipart_threshold: int, max_attempts: int, connect_timeout: float,
                    read_timeout: float) -> None:
    if object_lock_days is not None and object_lock_days < 1:
        raise ValidationError("object_lock_days must be at least 1")
    if object_lock_mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise ValidationError("object_lock_mode must be GOVERNANCE or COMPLIANCE")
    if multipart_threshold < MIN_PART_SIZE:
        raise ValidationError(f"multipart_threshold must be at least {MIN_PART_SIZE} bytes "
                              "(S3's minimum part size)")
    if not 1 <= max_attempts <= 20:
        raise ValidationError("max_attempts must be between 1 and 20")
    if connect_timeout <= 0 or read_timeout <= 0:
        raise ValidationError("connect_timeout and read_timeout must be positive")
