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
    ("ftp://host/x", "unknown scheme; use file://, s3://, azure:// or gs://"),
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


def test_a_gs_url_is_google_cloud_storage_through_the_s3_path() -> None:
    target = open_target("gs://sr-backups/clinic-a?max_attempts=3")
    assert isinstance(target, S3Target)
    assert (target.bucket, target.prefix) == ("sr-backups", "clinic-a")
    assert (target.endpoint_url, target.region) == ("https://storage.googleapis.com", "auto")
    assert target.describe() == "s3://sr-backups/clinic-a (endpoint https://storage.googleapis.com, region auto)"
    target.close()


def test_an_azure_url_names_account_container_and_prefix(monkeypatch) -> None:
    from strongroom.core.storage.azure import AzureTarget

    monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5IG9mIHRoZSBhY2NvdW50")
    target = open_target("azure://clinicstore/backups/clinic-a/db?max_attempts=3&read_timeout=20")
    assert isinstance(target, AzureTarget)
    assert (target.account, target.container, target.prefix) == ("clinicstore", "backups", "clinic-a/db")
    assert target.describe() == "azure://clinicstore/backups/clinic-a/db"
    target.close()
    target = open_target("azure://devstoreaccount1/backups?endpoint_url=http://127.0.0.1:10000/devstoreaccount1")
    assert target.describe() == "azure://devstoreaccount1/backups/ (endpoint http://127.0.0.1:10000/devstoreaccount1)"
    target.close()


@pytest.mark.parametrize("url, problem", [
    ("gs://", "no bucket"),
    ("gs://bkt/x?object_lock_days=30", "does not offer object_lock_days"),
    ("gs://bkt/x?sse_kms_key_id=k", "does not offer sse_kms_key_id"),
    ("gs://bkt/x?colour=red", "unknown GCS parameter"),
    ("azure://clinicstore", "names the account and the container"),
    ("azure://Clinic_Store/backups", "account name"),
    ("azure://clinicstore/Backups_1", "container name"),
    ("azure://clinicstore/backups/../x", "prefix"),
    ("azure://clinicstore/backups?region=eu", "unknown Azure parameter 'region'"),
    ("azure://clinicstore/backups?max_attempts=0", "max_attempts must be at least 1"),
])
def test_bad_gcs_and_azure_urls_are_refused_with_the_reason(url: str, problem: str, monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_KEY", "a2V5IG9mIHRoZSBhY2NvdW50")
    with pytest.raises(ValidationError, match=problem):
        open_target(url)


def test_an_azure_target_without_a_credential_says_where_to_put_one(monkeypatch) -> None:
    for name in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="no credential; set AZURE_STORAGE_KEY"):
        open_target("azure://clinicstore/backups")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING",
                       "DefaultEndpointsProtocol=https;AccountName=otherstore;AccountKey=c2VjcmV0S0VZdmFsdWU=")
    with pytest.raises(ValidationError) as caught:
        open_target("azure://clinicstore/backups")
    assert "another storage account" in str(caught.value) and "c2VjcmV0S0VZdmFsdWU" not in str(caught.value)


@pytest.mark.parametrize("url", [
    "azure://clinicstore:c2VjcmV0S0VZdmFsdWU@clinicstore/backups",
    "gs://GOOGHMACKEY:c2VjcmV0S0VZdmFsdWU@bkt/x",
    "azure://clinicstore/backups?endpoint_url=http://u:c2VjcmV0S0VZdmFsdWU@127.0.0.1:10000",
])
def test_credentials_in_gcs_and_azure_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        open_target(url)
    assert "c2VjcmV0S0VZdmFsdWU" not in str(caught.value)
