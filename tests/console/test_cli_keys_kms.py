"""`strongroom keys rotate-kek --to kms|file` and the KMS recovery kit, against moto's
standalone KMS server over loopback HTTP, on a data directory of each engine."""
from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from sqlalchemy import select

from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.crypto import kms
from strongroom.core.crypto.kek import generate_kek, read_kek_file, write_kek_file
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import KeyUnavailableError
from tests.console.cli_helpers import run_cli as run
from tests.core.crypto.crypto_helpers import decrypt_all, seed
from tests.core.storage import conftest as storage

REGION = storage.REGION
aws_env = storage.aws_env
moto_endpoint = storage.moto_endpoint


@pytest.fixture
def kms_admin(moto_endpoint):
    client = boto3.session.Session().client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    yield client
    client.close()


def write_config(data_dir: Path, db_url: str, endpoint: str, kms_key_id: str | None = None) -> None:
    line = f'kms_key_id = "{kms_key_id}"\n' if kms_key_id else ""
    (data_dir / "strongroom.toml").write_text(
        'data_dir = "."\npractice_name = "Harbour Counselling"\n'
        f'[database]\nurl = "{db_url}"\n'
        '[keys]\nkek_file = "kek.key"\nkek_env = ""\nkek_credential = ""\n'
        f'kms_endpoint_url = "{endpoint}"\nkms_region = "{REGION}"\n' + line)


@pytest.fixture
def data_dir(tmp_path, db_url, moto_endpoint) -> Path:
    target = tmp_path / "data"
    target.mkdir(mode=0o700)
    write_kek_file(target / "kek.key", generate_kek())
    write_config(target, db_url, moto_endpoint)
    ctx = open_context(load_settings(target / "strongroom.toml"))
    try:
        seed(ctx.engine, ctx.keyring, clients=3)
    finally:
        ctx.close()
    return target


def first_names(data_dir: Path) -> list[str]:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        return decrypt_all(ctx.engine, ctx.keyring)["clients.first_name"]
    finally:
        ctx.close()


def audit_of(data_dir: Path, action: str) -> list[dict]:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    t = AuditLog.__table__
    try:
        with transaction(ctx.engine, read_only=True) as conn:
            return [json.loads(d) for d in conn.execute(
                select(t.c.details).where(t.c.action == action).order_by(t.c.id)).scalars()]
    finally:
        ctx.close()


def test_move_to_kms_export_its_kit_restore_the_key_file_from_it_and_move_back(
        data_dir, db_url, moto_endpoint, kms_admin, tmp_path, capsys):
    arn = kms_admin.create_key()["KeyMetadata"]["Arn"]
    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", "--to", "kms", "--kms-key-id", arn)
    assert code == 0, err
    assert f"held by AWS KMS key {arn}" in out and f'Set kms_key_id = "{arn}"' in out
    assert kms.is_envelope((data_dir / "kek.key").read_text())
    write_config(data_dir, db_url, moto_endpoint, arn)
    assert first_names(data_dir) == ["Ada"] * 3

    # The kit: says what it cannot do, carries the envelope, needs no passphrase.
    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "export-kit", "--out", tmp_path / "kit.txt")
    assert code == 0, err
    assert "cannot recover anything if that KMS key" in out
    page = (tmp_path / "kit.txt").read_text()
    assert "WHAT THIS PAGE CANNOT DO" in page and "every\nrecord this practice keeps" in page
    assert arn in page and "rotate-kek --to file" in page
    envelope = page.split("-----BEGIN STRONGROOM KMS ENVELOPE-----\n")[1].split("\n")[0]
    assert audit_of(data_dir, "KEY_EXPORT")[-1]["kms_key"] == arn

    # Lost key file: the envelope line from the page is the key file again.
    (data_dir / "kek.key").unlink()
    (data_dir / "kek.key").write_text(envelope + "\n")
    (data_dir / "kek.key").chmod(0o600)
    assert first_names(data_dir) == ["Ada"] * 3

    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", "--to", "file", "--json")
    assert code == 0, err
    assert not json.loads(out)["new_kek_id"].startswith("kms-")
    # Still configured for KMS: the plain key file is refused until kms_key_id goes.
    with pytest.raises(KeyUnavailableError, match="holds a plain key, not a KMS envelope"):
        first_names(data_dir)
    write_config(data_dir, db_url, moto_endpoint)
    assert first_names(data_dir) == ["Ada"] * 3
    assert not kms.is_envelope((data_dir / "kek.key").read_text())
    moves = [(a["from"], a["to"]) for a in audit_of(data_dir, "KEY_ROTATE") if a["kind"] == "kek"]
    assert moves == [("file", "kms"), ("kms", "file")]


def test_rotate_to_file_tells_to_remove_kms_key_id(data_dir, db_url, moto_endpoint, kms_admin, capsys):
    arn = kms_admin.create_key()["KeyMetadata"]["Arn"]
    assert run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", "--to", "kms", "--kms-key-id", arn)[0] == 0
    write_config(data_dir, db_url, moto_endpoint, arn)
    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", "--to", "file")
    assert code == 0, err
    assert "remove kms_key_id" in out


@pytest.mark.parametrize("args, field", [
    (["--kms-key-id", "alias/x"], "--kms-key-id: only with --to kms"),
    (["--to", "kms"], "--kms-key-id: required with --to kms"),
    (["--to", "kms", "--kms-key-id", "not a key; rm -rf"], "--kms-key-id: not a KMS key ARN"),
])
def test_bad_arguments_are_refused_by_name_and_change_nothing(data_dir, capsys, args, field):
    before = read_kek_file(data_dir / "kek.key").key
    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", *args)
    assert code != 0 and field in err and "rm -rf" not in err
    assert read_kek_file(data_dir / "kek.key").key == before
    assert [a for a in audit_of(data_dir, "KEY_ROTATE") if a["kind"] == "kek"] == []


def test_unknown_kms_key_is_refused_naming_it(data_dir, capsys):
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    code, out, err = run(capsys, "--data-dir", data_dir, "keys", "rotate-kek", "--to", "kms", "--kms-key-id", missing)
    assert code != 0 and f"KMS key {missing}" in err
    assert not kms.is_envelope((data_dir / "kek.key").read_text())
    assert not (data_dir / "kek.key.pending").exists()
