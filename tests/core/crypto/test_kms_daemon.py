"""strongroomd with a KEK held in AWS KMS (moto's standalone server over loopback HTTP):
it starts, says where its KEK comes from in status and health, serves the records, and
refuses to start, naming the KMS key, when the key is disabled."""
from __future__ import annotations

import time

import boto3
import pytest

from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.crypto import kek_rotation, kms
from tests.core.storage import conftest as storage
from tests.daemon.conftest import FAST_HEALTH, DaemonProcess, make_data_dir, running_daemon

REGION = storage.REGION
aws_env = storage.aws_env
moto_endpoint = storage.moto_endpoint


@pytest.fixture
def kms_admin(moto_endpoint):
    client = boto3.session.Session().client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    yield client
    client.close()


@pytest.fixture
def kms_data_dir(tmp_path, db_url, moto_endpoint, kms_admin):
    """A daemon data directory whose KEK was moved into a fresh KMS key, configured for it."""
    arn = kms_admin.create_key()["KeyMetadata"]["Arn"]
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    config = data_dir / "strongroom.toml"
    text = config.read_text()
    assert text.count("[keys]\n") == 1
    config.write_text(text.replace("[keys]\n", f'[keys]\nkms_endpoint_url = "{moto_endpoint}"\n'
                                               f'kms_region = "{REGION}"\n', 1))
    ctx = open_context(load_settings(config))
    try:
        kek_rotation.rotate_kek(ctx, actor="test", to="kms", kms_key_id=arn)
    finally:
        ctx.close()
    config.write_text(config.read_text().replace("[keys]\n", f'[keys]\nkms_key_id = "{arn}"\n', 1))
    return data_dir, arn


def test_daemon_starts_with_a_kms_kek_and_reports_its_source(kms_data_dir, tmp_path):
    data_dir, arn = kms_data_dir
    assert kms.is_envelope((data_dir / "kek.key").read_text())
    with running_daemon(data_dir, tmp_path) as daemon:
        status = daemon.call("status")
        assert "kek" in status, sorted(status)
        assert status["kek"]["source"] == "kms" and status["kek"]["kms_key"] == arn
        assert status["kek"]["kek_id"].startswith("kms-")
        assert set(status["kek"]) == {"source", "kms_key", "file", "kek_id"}   # nothing secret
        deadline = time.monotonic() + 20
        health = daemon.call("health")
        while "kek" not in health and time.monotonic() < deadline:   # the first snapshot
            time.sleep(0.2)
            health = daemon.call("health")
        assert health["kek"] == status["kek"]


def test_daemon_refuses_to_start_when_the_kms_key_is_disabled(kms_data_dir, tmp_path, kms_admin):
    data_dir, arn = kms_data_dir
    before = (data_dir / "kek.key").read_bytes()
    kms_admin.disable_key(KeyId=arn.rsplit("/", 1)[1])
    proc = DaemonProcess(data_dir, tmp_path, name="disabled")
    try:
        code = proc.proc.wait(60)
        log = proc.log()
    finally:
        proc.stop()
    assert code != 0
    assert f"KMS key {arn}: the KMS key is disabled" in log and "testing" not in log
    assert (data_dir / "kek.key").read_bytes() == before
