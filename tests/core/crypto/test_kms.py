"""A KEK held in AWS KMS, against moto's standalone KMS server over loopback HTTP.

boto3 speaks real HTTP to the server (tests/core/storage/conftest.py starts it), so the
error codes, the EncryptionContext and the envelope round trip go through the same code
as against AWS.
"""
from __future__ import annotations

import base64
import socket
import uuid

import boto3
import pytest
from crypto_helpers import CLIENT_VALUES, FILE_NAME, SESSION_NOTES, decrypt_all, keys, seed
from sqlalchemy import select

from strongroom.core.context import open_context
from strongroom.core.crypto import kek_rotation, kms
from strongroom.core.crypto.kek import load_keks, pending_path, read_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import ConflictError, KeyUnavailableError, ValidationError
from tests.core.storage import conftest as storage

ACTOR = "test:kms"
REGION = storage.REGION
# The storage tests' fixtures: AWS settings isolated from the machine, one moto server.
aws_env = storage.aws_env
moto_endpoint = storage.moto_endpoint


class Crash(Exception):
    """Stands in for the process dying at a chosen instant."""


@pytest.fixture
def kms_admin(moto_endpoint):
    client = boto3.session.Session().client("kms", endpoint_url=moto_endpoint, region_name=REGION)
    yield client
    client.close()


def new_kms_key(kms_admin) -> str:
    return kms_admin.create_key(Description="strongroom test KEK")["KeyMetadata"]["Arn"]


def with_keys(settings, **update):
    return settings.model_copy(update={"keys": settings.keys.model_copy(update=update)})


@pytest.fixture
def kms_settings(settings, moto_endpoint):
    return with_keys(settings, kms_endpoint_url=moto_endpoint, kms_region=REGION)


@pytest.fixture
def kms_ctx(kms_settings):
    context = open_context(kms_settings)
    yield context
    context.close()


def dead_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def expect_plaintext(settings, clients: int) -> None:
    ctx = open_context(settings)
    try:
        values = decrypt_all(ctx.engine, ctx.keyring)
    finally:
        ctx.close()
    assert values["clients.last_name"] == [CLIENT_VALUES["last_name"]] * clients
    assert values["therapy_sessions.notes"] == [SESSION_NOTES] * clients
    assert values["client_files.file_name"] == [FILE_NAME] * clients


def kek_audits(engine) -> list[dict]:
    import json

    t = AuditLog.__table__
    with transaction(engine, read_only=True) as conn:
        rows = conn.execute(select(t.c.details).where(t.c.action == "KEY_ROTATE").order_by(t.c.id)).scalars()
        return [d for d in (json.loads(r) for r in rows) if d["kind"] == "kek"]


# -- the envelope --------------------------------------------------------------------------

def test_envelope_round_trip_keeps_the_key_out_of_the_stored_text(kms_admin, moto_endpoint):
    arn = new_kms_key(kms_admin)
    config = kms.KmsConfig(moto_endpoint, REGION)
    envelope, key = kms.create_envelope(config, arn)
    text = envelope.to_text()
    assert envelope.kms_key_arn == arn and len(key) == 32
    assert base64.b64encode(key).decode() not in text and base64.urlsafe_b64encode(key).decode() not in text
    parsed = kms.parse_envelope(text, "test")
    assert kms.open_envelope(config, parsed) == key
    assert kms.open_envelope(config, parsed, expected_key_id=arn) == key
    # The context binds the blob to its envelope id: the same blob under another id fails.
    forged = kms.Envelope(arn, "00000000-0000-0000-0000-000000000000", envelope.blob)
    with pytest.raises(KeyUnavailableError, match=f"KMS key {arn}: the stored KEK envelope does not decrypt"):
        kms.open_envelope(config, forged)


def test_damaged_envelope_is_refused_by_name(tmp_path):
    path = tmp_path / "kek.key"
    path.write_text(kms.KMS_PREFIX + "{not json\n")
    path.chmod(0o600)
    with pytest.raises(KeyUnavailableError, match="damaged KMS key envelope"):
        read_kek_file(path)


# -- moving the KEK between file and KMS ---------------------------------------------------

def test_rotate_file_to_kms_to_other_kms_to_file_keeps_every_record_readable(
        kms_ctx, kms_settings, kms_admin):
    seed(kms_ctx.engine, kms_ctx.keyring, clients=3)
    kek_file = kms_settings.keys.kek_file
    file_kek = read_kek_file(kek_file)
    first, second = new_kms_key(kms_admin), new_kms_key(kms_admin)

    to_kms = kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="kms", kms_key_id=first)
    assert to_kms.new_kek_id.startswith("kms-") and to_kms.rewrapped == 5
    assert {r["kek_id"] for r in keys(kms_ctx.engine)} == {to_kms.new_kek_id}
    stored = kek_file.read_text()
    assert kms.is_envelope(stored) and first in stored
    assert kms_ctx.keyring.primary.kms_key == first
    # The key file never held the KMS-protected key in clear; the old file key is retired.
    retired = kek_rotation.retired_path(kek_file, file_kek.kek_id)
    assert read_kek_file(retired).key == file_kek.key
    on_kms = with_keys(kms_settings, kms_key_id=first)
    expect_plaintext(on_kms, 3)
    assert load_keks(on_kms.keys)[0].describe() == {"source": "kms", "kms_key": first, "file": str(kek_file),
                                                "kek_id": to_kms.new_kek_id}

    # KMS -> another KMS key: the retired envelope is kept as an envelope, not a key.
    ctx = open_context(on_kms)
    try:
        to_other = kek_rotation.rotate_kek(ctx, actor=ACTOR, to="kms", kms_key_id=second)
    finally:
        ctx.close()
    retired_kms = kek_rotation.retired_path(kek_file, to_kms.new_kek_id).read_text()
    assert kms.is_envelope(retired_kms) and first in retired_kms
    on_second = with_keys(kms_settings, kms_key_id=second)
    expect_plaintext(on_second, 3)

    # KMS -> file.
    ctx = open_context(on_second)
    try:
        back = kek_rotation.rotate_kek(ctx, actor=ACTOR, to="file")
    finally:
        ctx.close()
    assert not kms.is_envelope(kek_file.read_text()) and not back.new_kek_id.startswith("kms-")
    expect_plaintext(kms_settings, 3)
    audits = kek_audits(kms_ctx.engine)
    assert [(a["from"], a["to"], a["to_kms_key"]) for a in audits] == [
        ("file", "kms", first), ("kms", "kms", second), ("kms", "file", None)]
    assert to_other.new_kek_id in {a["new_kek_id"] for a in audits}


def test_kms_unreachable_during_rotation_changes_nothing(kms_ctx, kms_settings, kms_admin):
    seed(kms_ctx.engine, kms_ctx.keyring, clients=1)
    arn = new_kms_key(kms_admin)
    kek_file = kms_settings.keys.kek_file
    before = kek_file.read_bytes()
    down = with_keys(kms_settings, kms_endpoint_url=dead_endpoint())
    ctx = open_context(down)   # a file KEK does not need KMS to open
    try:
        with pytest.raises(KeyUnavailableError, match=f"KMS key {arn}: KMS cannot be reached"):
            kek_rotation.rotate_kek(ctx, actor=ACTOR, to="kms", kms_key_id=arn)
    finally:
        ctx.close()
    assert kek_file.read_bytes() == before and not pending_path(kek_file).exists()
    assert kek_audits(kms_ctx.engine) == []
    expect_plaintext(kms_settings, 1)


def test_rotation_arguments_are_checked_by_name(kms_ctx, kms_admin):
    with pytest.raises(ValidationError, match="kms_key_id: required"):
        kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="kms")
    with pytest.raises(ValidationError, match="kms_key_id: only with"):
        kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="file", kms_key_id=new_kms_key(kms_admin))
    with pytest.raises(ValidationError, match="to: must be"):
        kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="hsm")


def test_crash_after_the_database_commit_opens_and_finishes(kms_ctx, kms_settings, kms_admin, monkeypatch):
    seed(kms_ctx.engine, kms_ctx.keyring, clients=2)
    arn = new_kms_key(kms_admin)
    kek_file = kms_settings.keys.kek_file

    def crash(*_args):
        raise Crash

    with monkeypatch.context() as patched, pytest.raises(Crash):
        patched.setattr(kek_rotation, "_install_pending", crash)
        kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="kms", kms_key_id=arn)
    pending = read_kek_file(pending_path(kek_file), kms_settings.keys)
    assert pending.kms_key == arn and {r["kek_id"] for r in keys(kms_ctx.engine)} == {pending.kek_id}
    expect_plaintext(kms_settings, 2)   # key file + pending envelope both load

    survivor = open_context(kms_settings)
    try:
        with pytest.raises(ConflictError, match="already pending"):
            kek_rotation.rotate_kek(survivor, actor=ACTOR, to="file")
        result = kek_rotation.finish_kek_rotation(survivor, actor=ACTOR)
    finally:
        survivor.close()
    assert result.resumed and result.new_kek_id == pending.kek_id and result.rewrapped == 0
    assert not pending_path(kek_file).exists()
    expect_plaintext(with_keys(kms_settings, kms_key_id=arn), 2)


# -- KMS failures at load ----------------------------------------------------------------

@pytest.fixture
def on_kms(kms_ctx, kms_settings, kms_admin):
    """Two clients' records under a KEK in a fresh KMS key; returns (settings, key ARN)."""
    seed(kms_ctx.engine, kms_ctx.keyring, clients=2)
    arn = new_kms_key(kms_admin)
    kek_rotation.rotate_kek(kms_ctx, actor=ACTOR, to="kms", kms_key_id=arn)
    return with_keys(kms_settings, kms_key_id=arn), arn


def test_wrong_kms_key_is_reported_as_the_wrong_key(on_kms, kms_admin):
    settings, arn = on_kms
    other = new_kms_key(kms_admin)
    before = settings.keys.kek_file.read_bytes()
    with pytest.raises(KeyUnavailableError) as error:
        open_context(with_keys(settings, kms_key_id=other))
    message = str(error.value)
    assert message.startswith(f"KMS key {other}: this is not the KMS key that encrypted the stored KEK")
    assert arn in message and "testing" not in message   # names keys, never credentials
    assert settings.keys.kek_file.read_bytes() == before
    expect_plaintext(settings, 2)


def test_wrong_kms_key_by_alias_is_reported_too(on_kms, kms_admin):
    settings, arn = on_kms
    other, right = f"alias/other-{uuid.uuid4().hex[:8]}", f"alias/right-{uuid.uuid4().hex[:8]}"
    kms_admin.create_alias(AliasName=other, TargetKeyId=new_kms_key(kms_admin))
    with pytest.raises(KeyUnavailableError, match=f"^KMS key {other}: this is not the KMS key"):
        load_keks(with_keys(settings, kms_key_id=other).keys)
    kms_admin.create_alias(AliasName=right, TargetKeyId=arn)
    assert load_keks(with_keys(settings, kms_key_id=right).keys)[0].kms_key == arn


def test_kms_down_at_load_names_the_key(on_kms):
    settings, arn = on_kms
    with pytest.raises(KeyUnavailableError, match=f"^KMS key {arn}: KMS cannot be reached"):
        open_context(with_keys(settings, kms_endpoint_url=dead_endpoint()))


def test_disabled_kms_key_is_refused_and_enabled_again_opens(on_kms, kms_admin):
    settings, arn = on_kms
    kms_admin.disable_key(KeyId=arn.rsplit("/", 1)[1])
    with pytest.raises(KeyUnavailableError, match=f"^KMS key {arn}: the KMS key is disabled"):
        open_context(settings)
    kms_admin.enable_key(KeyId=arn.rsplit("/", 1)[1])
    expect_plaintext(settings, 2)


def test_kms_key_id_configured_with_a_plain_key_file_is_refused(kms_settings, kms_admin):
    arn = new_kms_key(kms_admin)
    with pytest.raises(KeyUnavailableError, match="holds a plain key, not a KMS envelope"):
        load_keks(with_keys(kms_settings, kms_key_id=arn).keys)


def test_keyring_reports_data_keys_under_another_kms_kek_as_wrong_kek(on_kms, kms_settings, kms_admin):
    settings, _ = on_kms
    envelope, key = kms.create_envelope(kms.KmsConfig(settings.keys.kms_endpoint_url, REGION),
                                        new_kms_key(kms_admin))
    from strongroom.core.crypto.kek import Kek

    stranger = Keyring([Kek(key, "elsewhere", envelope)])
    row = keys(open_context(settings).engine)[0]
    with pytest.raises(KeyUnavailableError, match=f"wrapped by KEK {row['kek_id']}, but the loaded KEK is kms-"):
        stranger.unwrap(row["id"], row["purpose"], row["wrapped_key"], row["kek_id"])
