"""The backup job against real targets: S3 (moto's server over loopback HTTP, Object
Lock on), Azure Blob Storage (Azurite) for backups and client files, and a local disk
that fills up."""
import os
import subprocess
import uuid

import pytest

from strongroom.core.backup.repository import open_repository
from strongroom.core.db.engine import transaction
from strongroom.core.errors import StrongroomError
from strongroom.core import restore
from strongroom.core.jobs import backup, verify
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import update_client
from strongroom.core.storage import open_target
from tests.core.conftest import clients_of, seed_clients
from tests.core.storage.conftest import (REGION, aws_env, azure_env, azurite_endpoint,  # noqa: F401 - fixtures
                                         moto_endpoint, s3_admin)


def _with_target(ctx, url: str) -> None:
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={"target": url})})


def test_backup_to_s3_with_object_lock_then_verify_and_restore(ctx, tmp_path, moto_endpoint, s3_admin):  # noqa: F811
    bucket = f"sr-{uuid.uuid4().hex[:12]}"
    s3_admin.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    url = f"s3://{bucket}/practice?endpoint_url={moto_endpoint}&region={REGION}&object_lock_days=30"
    _with_target(ctx, url)
    seed_clients(ctx, n=25)
    snap = backup.run(ctx, {}, lambda *a: None)
    assert verify.run(ctx, {"read_data": "true"}, lambda *a: None)["failed"] == 0
    keys = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("practice/chunks/") for k in keys)
    assert f"practice/snapshots/{snap['snapshot_id']}.json" in keys
    head = s3_admin.head_object(Bucket=bucket, Key=f"practice/snapshots/{snap['snapshot_id']}.json")
    assert head.get("ObjectLockMode") == "GOVERNANCE"
    repo = open_repository(open_target(url), ctx.keyring)
    restore.restore(repo, uuid.UUID(snap["snapshot_id"]), f"sqlite:///{tmp_path / 's3.db'}")
    from strongroom.core.db.engine import make_engine
    restored = make_engine(f"sqlite:///{tmp_path / 's3.db'}")
    assert clients_of(restored, ctx.keyring) == clients_of(ctx.engine, ctx.keyring)
    restored.dispose()


@pytest.fixture
def tiny_disk(tmp_path):
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k,mode=0700", "tmpfs", str(mount_point)],
                            capture_output=True, timeout=10, check=False)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], timeout=10, check=False)


def test_full_disk_fails_the_backup_and_leaves_earlier_snapshots_whole(ctx, tmp_path, tiny_disk):
    _with_target(ctx, str(tiny_disk / "repo"))
    ids = seed_clients(ctx, n=10)
    first = backup.run(ctx, {}, lambda *a: None)
    with transaction(ctx.engine) as conn:  # far more new data than the disk has room for
        for cid in ids:
            update_client(conn, ctx.keyring, SYSTEM, cid, {"medical_history": os.urandom(40_000).hex()})
    with pytest.raises(StrongroomError) as err:
        backup.run(ctx, {}, lambda *a: None)
    assert "No space left" in str(err.value) or "no space" in str(err.value).lower()
    repo = open_repository(open_target(str(tiny_disk / "repo")), ctx.keyring)
    assert [str(i) for i in repo.list_snapshots()] == [first["snapshot_id"]]
    assert verify.run(ctx, {"read_data": "true"}, lambda *a: None)["failed"] == 0


def test_backup_and_client_files_on_azure_blob_storage(ctx, tmp_path, azurite_endpoint, azure_env):
    """Azure Blob Storage (Azurite) holds a repository and the client files store: a
    backup carrying a file verifies with read_data, restores whole, and the file comes
    back from the files store byte for byte."""
    from azure.storage.blob import ContainerClient
    from strongroom.core.db.engine import make_engine
    from tests.core.conftest import fetch_file, file_bytes, store_file
    from tests.core.storage.conftest import AZURITE_ACCOUNT, AZURITE_KEY

    names = {}
    for role in ("backups", "files"):
        names[role] = f"sr-{role}-{uuid.uuid4().hex[:8]}"
        with ContainerClient(azurite_endpoint, names[role], credential={
                "account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY}) as admin:
            admin.create_container()
    backups_url = f"azure://{AZURITE_ACCOUNT}/{names['backups']}/practice?endpoint_url={azurite_endpoint}"
    files_url = f"azure://{AZURITE_ACCOUNT}/{names['files']}/store?endpoint_url={azurite_endpoint}"
    _with_target(ctx, backups_url)
    ctx.settings = ctx.settings.model_copy(update={"files": ctx.settings.files.model_copy(update={"target": files_url})})
    ids = seed_clients(ctx, n=12)
    content = file_bytes(300_000)
    row = store_file(ctx, ids[0], content)
    snap = backup.run(ctx, {}, lambda *a: None)
    assert verify.run(ctx, {"read_data": "true"}, lambda *a: None)["failed"] == 0
    repo = open_repository(open_target(backups_url), ctx.keyring)
    keys = list(repo.target.list(""))
    assert f"snapshots/{snap['snapshot_id']}.json" in keys and any(k.startswith("chunks/") for k in keys)
    restore.restore(repo, uuid.UUID(snap["snapshot_id"]), f"sqlite:///{tmp_path / 'azure.db'}")
    restored = make_engine(f"sqlite:///{tmp_path / 'azure.db'}")
    assert clients_of(restored, ctx.keyring) == clients_of(ctx.engine, ctx.keyring)
    restored.dispose()
    assert fetch_file(ctx, row["id"]) == content
    files = open_target(files_url)
    stored = list(files.list(""))
    assert stored and all(content[:64] not in files.get(k) for k in stored)       # ciphertext only
