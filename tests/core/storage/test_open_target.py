"""open_target: one URL configures a target; a bad one says what is wrong, not a secret."""
from __future__ import annotations

from pathlib import Path

import pytest

from strongroom.core.errors import ValidationError
from strongroom.core.storage import open_target
from strongroom.core.storage.local import LocalTarget
from strongroom.core.storage.s3 import S3Target


@pytest.mark.parametrize("url", ["/var/backups/strongroom", "file:///var/backups/strongroom",
                                 "file://localhost/var/backups/strongroom"])
def test_local_urls_open_a_local_target(url: str) -> None:
    target = open_target(url)
    assert isinstance(target, LocalTarget)
    assert target.root == Path("/var/backups/strongroom")
    assert target.describe() == "file:///var/backups/strongroom"


def test_an_s3_url_carries_every_setting() -> None:
    target = open_target(
        "s3://sr-backups/clinic-a/db?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"
        "&sse_kms_key_id=alias/strongroom&object_lock_days=30&object_lock_mode=compliance"
        "&multipart_threshold=16777216&max_attempts=7&connect_timeout=3&read_timeout=20")
    assert isinstance(target, S3Target)
    assert (target.bucket, target.prefix) == ("sr-backups", "clinic-a/db")
    assert target.endpoint_url == "http://127.0.0.1:9000"
    assert target.region == "eu-west-1"
    assert target.sse_kms_key_id == "alias/strongroom"
    assert (target.object_lock_days, target.object_lock_mode) == (30, "COMPLIANCE")
    assert target.multipart_threshold == 16 * 1024 * 1024
    assert target.describe() == (
        "s3://sr-backups/clinic-a/db (endpoint http://127.0.0.1:9000, region eu-west-1, "
        "SSE-KMS key alias/strongroom, Object Lock COMPLIANCE 30d)")
    target.close()


def test_an_s3_url_without_prefix_uses_the_bucket_root() -> None:
    target = open_target("s3://sr-backups?region=us-east-1")
    assert isinstance(target, S3Target) and target.prefix == ""
    target.close()


@pytest.mark.parametrize("url, problem", [
    ("", "empty"),
    ("relative/path", "absolute"),
    ("file://nas/backups", "not a host"),
    ("file:///backups?x=1", "no query"),
    ("/backups/../etc", r"'\.\.'"),
    ("ftp://host/x", "unknown scheme 'ftp'"),
    ("s3://", "no bucket"),
    ("s3://Not_A_Bucket/x", "bucket name"),
    ("s3://bkt/../x", "prefix"),
    ("s3://bkt/a b", "prefix"),
    ("s3://bkt/x?colour=red", "unknown S3 parameter 'colour'"),
    ("s3://bkt/x?region=a&region=b", "more than once"),
    ("s3://bkt/x?region=", "'region' is empty"),
    ("s3://bkt/x?object_lock_days=soon", "object_lock_days must be a whole number"),
    ("s3://bkt/x?object_lock_days=0", "object_lock_days must be at least 1"),
    ("s3://bkt/x?object_lock_mode=forever", "GOVERNANCE or COMPLIANCE"),
    ("s3://bkt/x?multipart_threshold=1024", "at least 5242880"),
    ("s3://bkt/x?read_timeout=-1", "read_timeout must be positive"),
    ("s3://bkt/x?endpoint_url=ftp://h", "http:// or https://"),
    ("s3://bkt/x?region=not a region!", "region_name"),
])
def test_bad_urls_are_refused_with_the_reason(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        open_target(url)


@pytest.mark.parametrize("url", [
    "s3://AKIAEXAMPLE:wJalrSECRET@bkt/x",
    "s3://bkt/x?endpoint_url=http://AKIAEXAMPLE:wJalrSECRET@127.0.0.1:9000",
    "s3://bkt/x?aws_secret_access_key=wJalrSECRET",
])
def test_credentials_in_a_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        open_target(url)
    assert "wJalrSECRET" not in str(caught.value)
