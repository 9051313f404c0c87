"""S3Target beyond the contract: retries, timeouts, multipart, Object Lock, SSE-KMS.

Every fault test is bounded in time: a broken endpoint must fail a backup within its
configured retries and timeouts, never hang the daemon.
"""
from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from strongroom.core.errors import ValidationError
from strongroom.core.storage.base import StorageError
from strongroom.core.storage.s3 import MiB, S3Target

REGION = "us-east-1"


def make_target(bucket: str, endpoint: str, **options: object) -> S3Target:
    options.setdefault("max_attempts", 3)
    options.setdefault("connect_timeout", 2)
    options.setdefault("read_timeout", 5)
    return S3Target(bucket, "pfx", endpoint_url=endpoint, region=REGION, **options)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_until_success(bucket, s3_admin, flaky_relay,
                                                 status: int) -> None:
    relay = flaky_relay(lambda number, _method, _path: number < 2, status)
    target = make_target(bucket, relay.endpoint, max_attempts=3)
    target.put("chunks/aa/aa01", b"payload")
    assert len(relay.requests) == 3  # two injected failures, then the real PUT
    body = s3_admin.get_object(Bucket=bucket, Key="pfx/chunks/aa/aa01")["Body"].read()
    assert body == b"payload"
    target.close()


def test_persistent_server_errors_fail_cleanly_after_max_attempts(bucket, flaky_relay) -> None:
    relay = flaky_relay(lambda *_: True)
    target = make_target(bucket, relay.endpoint, max_attempts=3)
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:
        target.put("chunks/aa/aa01", b"secret-phi-bytes")
    assert time.monotonic() - started < 15  # backoff 0-1 s, then 0-2 s
    assert len(relay.requests) == 3
    message = str(caught.value)
    assert f"s3://{bucket}/pfx" in message and "chunks/aa/aa01" in message
    assert "InternalError" in message and "HTTP 500" in message and "2 retries" in message
    assert "secret-phi-bytes" not in message and "testing" not in message
    for call in (lambda: target.get("k"), lambda: target.exists("k"),
                 lambda: list(target.list("")), lambda: target.delete("k"),
                 lambda: target.put_if_absent("k", b"x")):
        with pytest.raises(StorageError):
            call()
    target.close()


def test_put_if_absent_falls_back_where_conditional_writes_are_missing(bucket,
                                                                       flaky_relay) -> None:
    """Older S3-compatible servers answer 501 to If-None-Match: HEAD, then PUT."""
    relay = flaky_relay(lambda n, method, _path: method == "PUT"
                        and "if-none-match" in relay.headers[n], 501, "NotImplemented")
    target = make_target(bucket, relay.endpoint, max_attempts=1)
    assert target.put_if_absent("chunks/aa/aa01", b"one") is True
    assert target.put_if_absent("chunks/aa/aa01", b"two") is False
    assert target.get("chunks/aa/aa01") == b"one"
    conditional = [h for h in relay.headers if "if-none-match" in h]
    assert len(conditional) == 1  # asked once, then remembered
    target.close()


def test_an_endpoint_that_never_answers_times_out(bucket, silent_endpoint) -> None:
    target = make_target(bucket, silent_endpoint.endpoint, max_attempts=2,
                         connect_timeout=1, read_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StorageError, match="ReadTimeoutError") as caught:
        target.get("snapshots/s1.manifest")
    elapsed = time.monotonic() - started
    # Two attempts of 0.5 s plus at most 1 s of backoff; generous for a loaded CI box.
    assert elapsed < 8, elapsed
    assert len(silent_endpoint.connections) == 2
    assert "snapshots/s1.manifest" in str(caught.value)
    with pytest.raises(StorageError, match="ReadTimeoutError"):
        target.put("snapshots/s1.manifest", b"manifest")
    target.close()


def test_an_endpoint_refusing_connections_fails_quickly(bucket) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = make_target(bucket, f"http://127.0.0.1:{port}", max_attempts=2)
    started = time.monotonic()
    with pytest.raises(StorageError, match="EndpointConnectionError"):
        target.put("k", b"x")
    assert time.monotonic() - started < 8
    target.close()


def test_large_objects_go_up_in_parts_and_round_trip(bucket, s3_admin, moto_endpoint) -> None:
    target = make_target(bucket, moto_endpoint, multipart_threshold=5 * MiB)
    data = os.urandom(11 * MiB + 123)
    target.put("chunks/big", data)
    assert target.get("chunks/big") == data
    assert target.size("chunks/big") == len(data)
    # A multipart ETag ends in "-<number of parts>": 5 + 5 + 1 MiB.
    etag = s3_admin.head_object(Bucket=bucket, Key="pfx/chunks/big")["ETag"]
    assert etag.strip('"').endswith("-3")
    assert target.put_if_absent("chunks/big", data) is False
    assert target.put_if_absent("chunks/big2", data) is True
    assert target.get("chunks/big2") == data
    assert not s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads")
    target.close()


def test_objects_at_the_threshold_use_a_single_put(bucket, s3_admin, moto_endpoint) -> None:
    target = make_target(bucket, moto_endpoint, multipart_threshold=5 * MiB)
    target.put("chunks/edge", b"e" * (5 * MiB))
    assert "-" not in s3_admin.head_object(Bucket=bucket, Key="pfx/chunks/edge")["ETag"]
    target.close()


def test_a_failed_multipart_upload_is_aborted(bucket, s3_admin, flaky_relay) -> None:
    relay = flaky_relay(lambda _n, method, path: method == "PUT" and "partNumber=2" in path)
    target = make_target(bucket, relay.endpoint, multipart_threshold=5 * MiB, max_attempts=1)
    with pytest.raises(StorageError, match="chunks/big"):
        target.put("chunks/big", os.urandom(11 * MiB))
    assert not target.exists("chunks/big")
    assert not s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert any(method == "DELETE" and "uploadId=" in path for method, path in relay.requests)
    target.close()


def test_object_lock_retention_is_set_on_every_object(lock_bucket, s3_admin,
                                                      moto_endpoint) -> None:
    target = make_target(lock_bucket, moto_endpoint, object_lock_days=7,
                         object_lock_mode="COMPLIANCE")
    target.put("snapshots/s1.manifest", b"manifest")
    assert target.put_if_absent("chunks/aa/aa01", b"chunk") is True
    expected = datetime.now(UTC) + timedelta(days=7)
    for name in ("pfx/snapshots/s1.manifest", "pfx/chunks/aa/aa01"):
        # moto has no GetObjectRetention; HEAD returns the same two fields.
        head = s3_admin.head_object(Bucket=lock_bucket, Key=name)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert abs(head["ObjectLockRetainUntilDate"] - expected) < timedelta(minutes=5)
    target.close()


def test_object_lock_retention_is_requested_for_multipart_uploads(lock_bucket, flaky_relay) -> None:
    """moto ignores lock headers on CreateMultipartUpload, so check what we sent."""
    relay = flaky_relay(lambda *_: False)
    target = make_target(lock_bucket, relay.endpoint, object_lock_days=7,
                         multipart_threshold=5 * MiB)
    target.put("chunks/big", b"b" * (6 * MiB))
    (create,) = [headers for (method, path), headers in zip(relay.requests, relay.headers)
                 if method == "POST" and path.endswith("?uploads")]
    assert create["x-amz-object-lock-mode"] == "GOVERNANCE"
    until = datetime.fromisoformat(create["x-amz-object-lock-retain-until-date"])
    assert abs(until - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    target.close()


def test_a_locked_backup_cannot_be_deleted_early(lock_bucket, s3_admin, moto_endpoint) -> None:
    """The ransomware case: even with our own credentials, the locked version stays."""
    target = make_target(lock_bucket, moto_endpoint, object_lock_days=30)
    target.put("chunks/aa/aa01", b"backup")
    version = s3_admin.head_object(Bucket=lock_bucket, Key="pfx/chunks/aa/aa01")["VersionId"]
    with pytest.raises(ClientError) as refused:
        s3_admin.delete_object(Bucket=lock_bucket, Key="pfx/chunks/aa/aa01", VersionId=version)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    # Our own delete only hides it behind a delete marker; the data is still there.
    target.delete("chunks/aa/aa01")
    assert not target.exists("chunks/aa/aa01")
    kept = s3_admin.get_object(Bucket=lock_bucket, Key="pfx/chunks/aa/aa01", VersionId=version)
    assert kept["Body"].read() == b"backup"
    target.close()


def test_sse_kms_headers_are_sent(bucket, s3_admin, moto_endpoint) -> None:
    key_id = "arn:aws:kms:us-east-1:123456789012:key/strongroom-test"
    target = make_target(bucket, moto_endpoint, sse_kms_key_id=key_id,
                         multipart_threshold=5 * MiB)
    target.put("chunks/small", b"s")
    target.put_if_absent("chunks/large", b"l" * (6 * MiB))
    for name in ("pfx/chunks/small", "pfx/chunks/large"):
        head = s3_admin.head_object(Bucket=bucket, Key=name)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"] == key_id
    assert key_id in target.describe()
    target.close()


def test_prefix_keeps_targets_in_one_bucket_apart(bucket, moto_endpoint) -> None:
    first = S3Target(bucket, "clinic-a", endpoint_url=moto_endpoint, region=REGION)
    second = S3Target(bucket, "clinic-b/", endpoint_url=moto_endpoint, region=REGION)
    first.put("snapshots/s1", b"a")
    second.put("snapshots/s1", b"b")
    assert first.get("snapshots/s1") == b"a"
    assert list(second.list("")) == ["snapshots/s1"]
    first.close()
    second.close()


def test_listing_streams_page_by_page(bucket, s3_admin, flaky_relay) -> None:
    relay = flaky_relay(lambda *_: False)
    target = make_target(bucket, relay.endpoint)
    target.list_page_size = 7
    keys = [f"chunks/{n:04d}" for n in range(20)]
    for key in keys:
        s3_admin.put_object(Bucket=bucket, Key=f"pfx/{key}", Body=b"")
    listing = target.list("chunks/")
    assert [next(listing) for _ in range(3)] == keys[:3]
    assert len(relay.requests) == 1  # only the first page fetched so far
    assert [*keys[:3], *listing] == keys
    assert len(relay.requests) == 3  # 7 + 7 + 6
    target.close()


def test_missing_bucket_is_a_storage_error_naming_it(moto_endpoint) -> None:
    target = make_target("sr-no-such-bucket", moto_endpoint)
    with pytest.raises(StorageError, match="sr-no-such-bucket.*NoSuchBucket"):
        target.put("k", b"x")
    target.close()


@pytest.mark.parametrize("options, problem", [
    ({"object_lock_days": 0}, "object_lock_days"),
    ({"object_lock_mode": "FOREVER"}, "object_lock_mode"),
    ({"multipart_threshold": MiB}, "multipart_threshold"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"read_timeout": 0}, "read_timeout"),
])
def test_bad_settings_are_refused(options: dict, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        S3Target("bucket", "", **options)
