"""KEK rotation (core/crypto/kek_rotation.py): crash-safe at every step, resumable, audited."""
from __future__ import annotations

import json
import stat
import uuid

import pytest
from crypto_helpers import (Crash, add_client, all_plaintext_expected, audit_details, decrypt_all,
                            keys, reopen, seed, table)
from sqlalchemy import select, update

from strongroom.core.config import KeySettings
from strongroom.core.context import open_context
from strongroom.core.crypto import kek_rotation
from strongroom.core.crypto.kek import generate_kek, kek_id_of, load_keks, pending_path, read_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.errors import ConfigError, ConflictError, KeyUnavailableError, NotFoundError

ACTOR = "test:rotation"
_keys = DataKey.__table__


def test_kek_rotation_rewraps_every_key_and_data_still_opens(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=3)
    old_id = ctx.keyring.kek_id
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR)

    kek_file = settings.keys.kek_file
    assert result.old_kek_ids == [old_id] and result.rewrapped == 5  # 3 clients, system, blind index
    assert {r["kek_id"] for r in keys(ctx.engine)} == {result.new_kek_id}
    assert read_kek_file(kek_file).kek_id == result.new_kek_id
    assert not pending_path(kek_file).exists()
    retired = kek_rotation.retired_path(kek_file, old_id)
    assert read_kek_file(retired).kek_id == old_id
    assert stat.S_IMODE(retired.stat().st_mode) == 0o600
    fresh = reopen(settings)
    try:
        assert fresh.keyring.kek_ids() == [result.new_kek_id]
        all_plaintext_expected(decrypt_all(fresh.engine, fresh.keyring), 3)
    finally:
        fresh.close()


def test_kek_rotation_is_audited_with_ids_and_counts_but_no_key_material(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    old = read_kek_file(settings.keys.kek_file)
    new_key = generate_kek()
    kek_rotation.rotate_kek(ctx, new_key, actor=ACTOR)
    (details,) = [d for d in audit_details(ctx.engine) if d["kind"] == "kek"]
    assert details["old_kek_ids"] == [old.kek_id] and details["new_kek_id"] == kek_id_of(new_key)
    assert details["rewrapped"] == 3 and details["by_purpose"]["client"] == 1
    text = json.dumps(details)
    for secret in (old.key, new_key):
        assert secret.hex() not in text and secret.hex()[:16] not in text


def test_context_keyring_wraps_new_keys_with_the_new_kek_after_rotation(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR)
    with transaction(ctx.engine) as conn:
        pid = conn.execute(select(table("practices").c.id)).scalar()
        client_id = add_client(conn, ctx.keyring, pid)
    (row,) = keys(ctx.engine, client_id=client_id)
    assert row["kek_id"] == result.new_kek_id


def test_crash_after_commit_before_rename_still_opens_and_rerun_finishes(ctx, settings, monkeypatch):
    seed(ctx.engine, ctx.keyring, clients=2)
    old_id = ctx.keyring.kek_id

    def crash(*_args):
        raise Crash

    monkeypatch.setattr(kek_rotation, "_install_pending", crash)
    with pytest.raises(Crash):
        kek_rotation.rotate_kek(ctx, actor=ACTOR)
    kek_file = settings.keys.kek_file
    new_id = read_kek_file(pending_path(kek_file)).kek_id
    assert read_kek_file(kek_file).kek_id == old_id
    assert {r["kek_id"] for r in keys(ctx.engine)} == {new_id}  # the database committed

    # The state on disk opens: load_keks offers file + pending, keys unwrap by kek id.
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 2)
        monkeypatch.undo()
        result = kek_rotation.finish_kek_rotation(survivor, actor=ACTOR)
    finally:
        survivor.close()
    assert result.resumed and result.new_kek_id == new_id and result.rewrapped == 0
    assert read_kek_file(kek_file).kek_id == new_id and not pending_path(kek_file).exists()
    fresh = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(fresh.engine, fresh.keyring), 2)
    finally:
        fresh.close()


def test_crash_before_commit_leaves_database_on_old_kek_and_rerun_uses_the_pending_key(
        ctx, settings, monkeypatch):
    seed(ctx.engine, ctx.keyring, clients=2)
    old_id = ctx.keyring.kek_id
    real_batch = kek_rotation._rewrap_batch

    def crash_mid_transaction(conn, kek_id, params):
        real_batch(conn, kek_id, params)
        raise Crash

    monkeypatch.setattr(kek_rotation, "_rewrap_batch", crash_mid_transaction)
    with pytest.raises(Crash):
        kek_rotation.rotate_kek(ctx, actor=ACTOR)
    pending_id = read_kek_file(pending_path(settings.keys.kek_file)).kek_id
    assert {r["kek_id"] for r in keys(ctx.engine)} == {old_id}  # rolled back as a whole
    assert [d for d in audit_details(ctx.engine) if d["kind"] == "kek"] == []

    monkeypatch.undo()
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 2)
        result = kek_rotation.rotate_kek(survivor, actor=ACTOR)
    finally:
        survivor.close()
    assert result.resumed and result.new_kek_id == pending_id and result.rewrapped == 4
    assert {r["kek_id"] for r in keys(ctx.engine)} == {pending_id}


def test_crash_between_keeping_the_old_key_and_the_rename_still_opens(ctx, settings, monkeypatch):
    seed(ctx.engine, ctx.keyring, clients=1)

    def crash_on_rename(self, target):
        raise Crash

    monkeypatch.setattr(type(settings.keys.kek_file), "replace", crash_on_rename)
    with pytest.raises(Crash):
        kek_rotation.rotate_kek(ctx, actor=ACTOR)
    monkeypatch.undo()
    kek_file = settings.keys.kek_file
    assert kek_file.exists() and pending_path(kek_file).exists()
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 1)
        kek_rotation.rotate_kek(survivor, actor=ACTOR)
    finally:
        survivor.close()
    assert not pending_path(kek_file).exists()


def test_a_second_rotation_to_a_different_key_waits_for_the_pending_one(ctx, settings, monkeypatch):
    seed(ctx.engine, ctx.keyring, clients=1)
    monkeypatch.setattr(kek_rotation, "_install_pending", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        kek_rotation.rotate_kek(ctx, actor=ACTOR)
    with pytest.raises(ConflictError, match="already pending"):
        kek_rotation.rotate_kek(ctx, generate_kek(), actor=ACTOR)


def test_finish_without_a_pending_rotation_is_not_found(ctx):
    with pytest.raises(NotFoundError, match="no KEK rotation is pending"):
        kek_rotation.finish_kek_rotation(ctx, actor=ACTOR)


def test_keys_wrapped_by_a_stale_process_after_rotation_are_healed_next_time(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    stale = Keyring(load_keks(settings.keys))  # e.g. a daemon not restarted
    first = kek_rotation.rotate_kek(ctx, actor=ACTOR)
    with transaction(ctx.engine) as conn:
        pid = conn.execute(select(table("practices").c.id)).scalar()
        late_client = add_client(conn, stale, pid)
    assert keys(ctx.engine, client_id=late_client)[0]["kek_id"] == first.old_kek_ids[0]

    second = kek_rotation.rotate_kek(ctx, actor=ACTOR)
    assert set(second.old_kek_ids) == {first.old_kek_ids[0], first.new_kek_id}
    assert {r["kek_id"] for r in keys(ctx.engine)} == {second.new_kek_id}
    fresh = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(fresh.engine, fresh.keyring), 2)
    finally:
        fresh.close()


def test_destroyed_keys_are_left_alone_by_kek_rotation(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, ids[0])
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR)
    assert result.rewrapped == 3
    (shredded,) = keys(ctx.engine, client_id=ids[0])
    assert shredded["wrapped_key"] is None and shredded["state"] == KeyState.DESTROYED


def test_kek_from_environment_cannot_be_rotated_automatically(settings, monkeypatch):
    from strongroom.core.crypto.kek import encode_kek

    monkeypatch.setenv("SR_TEST_ROTATE_KEK", encode_kek(generate_kek()))
    env_settings = settings.model_copy(update={"keys": KeySettings(
        kek_file=settings.keys.kek_file, kek_env="SR_TEST_ROTATE_KEK", kek_credential=None)})
    context = open_context(env_settings)
    try:
        with pytest.raises(ConfigError, match="environment variable SR_TEST_ROTATE_KEK.*rotate by hand"):
            kek_rotation.rotate_kek(context, actor=ACTOR)
    finally:
        context.close()
    assert not pending_path(settings.keys.kek_file).exists()


def test_rotation_refuses_when_keys_are_wrapped_by_an_unknown_kek(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_keys).where(_keys.c.purpose == KeyPurpose.CLIENT)
                     .values(kek_id="feedfacefeedface"))
    with pytest.raises(KeyUnavailableError, match="feedfacefeedface"):
        kek_rotation.rotate_kek(ctx, actor=ACTOR)
    assert not pending_path(settings.keys.kek_file).exists()


@pytest.mark.soak     # a large dataset: `make soak`
def test_kek_rotation_of_100k_keys_takes_seconds(ctx):
    import time

    from sqlalchemy import insert

    rows = [ctx.keyring.new_key(KeyPurpose.CLIENT, uuid.uuid4()).row for _ in range(100_000)]
    with transaction(ctx.engine) as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(_keys), rows[start:start + 5000])
    started = time.monotonic()
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR)
    elapsed = time.monotonic() - started
    assert result.rewrapped == 100_000
    assert elapsed < 30, f"rewrapping 100k keys took {elapsed:.1f}s"
    print(f"rewrapped 100k keys in {elapsed:.1f}s")
