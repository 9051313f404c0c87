"""KEK rotation (crash-safe), DEK rotation (resumable), status and destruction."""
from __future__ import annotations

import json
import stat
import uuid

import pytest
from crypto_helpers import CLIENT_VALUES, FILE_NAME, SESSION_NOTES, add_client, decrypt_all, keys, seed, table
from sqlalchemy import select, update

from strongroom.core import audit
from strongroom.core.config import KeySettings
from strongroom.core.context import open_context
from strongroom.core.crypto import rotation
from strongroom.core.crypto.kek import generate_kek, kek_id_of, load_keks, pending_path, read_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConfigError, ConflictError, KeyUnavailableError, NotFoundError

ACTOR = "test:rotation"
_keys = DataKey.__table__


class Crash(Exception):
    """Stands in for the process dying at a chosen instant."""


def reopen(settings):
    return open_context(settings)


def audit_details(engine, action: str = "KEY_ROTATE") -> list[dict]:
    t = AuditLog.__table__
    with transaction(engine, read_only=True) as conn:
        rows = conn.execute(select(t.c.details).where(t.c.action == action).order_by(t.c.id))
        return [json.loads(d) for d in rows.scalars()]


def all_plaintext_expected(values: dict, clients: int) -> None:
    assert values["clients.last_name"] == [CLIENT_VALUES["last_name"]] * clients
    assert values["therapy_sessions.notes"] == [SESSION_NOTES] * clients
    assert values["client_files.file_name"] == [FILE_NAME] * clients


# =====================================================================================
# KEK rotation
# =====================================================================================

def test_kek_rotation_rewraps_every_key_and_data_still_opens(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=3)
    old_id = ctx.keyring.kek_id
    result = rotation.rotate_kek(ctx, actor=ACTOR)

    kek_file = settings.keys.kek_file
    assert result.old_kek_ids == [old_id] and result.rewrapped == 5  # 3 clients, system, blind index
    assert {r["kek_id"] for r in keys(ctx.engine)} == {result.new_kek_id}
    assert read_kek_file(kek_file).kek_id == result.new_kek_id
    assert not pending_path(kek_file).exists()
    retired = rotation.retired_path(kek_file, old_id)
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
    rotation.rotate_kek(ctx, new_key, actor=ACTOR)
    (details,) = [d for d in audit_details(ctx.engine) if d["kind"] == "kek"]
    assert details["old_kek_ids"] == [old.kek_id] and details["new_kek_id"] == kek_id_of(new_key)
    assert details["rewrapped"] == 3 and details["by_purpose"]["client"] == 1
    text = json.dumps(details)
    for secret in (old.key, new_key):
        assert secret.hex() not in text and secret.hex()[:16] not in text


def test_context_keyring_wraps_new_keys_with_the_new_kek_after_rotation(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    result = rotation.rotate_kek(ctx, actor=ACTOR)
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

    monkeypatch.setattr(rotation, "_install_pending", crash)
    with pytest.raises(Crash):
        rotation.rotate_kek(ctx, actor=ACTOR)
    kek_file = settings.keys.kek_file
    new_id = read_kek_file(pending_path(kek_file)).kek_id
    assert read_kek_file(kek_file).kek_id == old_id
    assert {r["kek_id"] for r in keys(ctx.engine)} == {new_id}  # the database committed

    # The state on disk opens: load_keks offers file + pending, keys unwrap by kek id.
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 2)
        monkeypatch.undo()
        result = rotation.finish_kek_rotation(survivor, actor=ACTOR)
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
    real_batch = rotation._rewrap_batch

    def crash_mid_transaction(conn, kek_id, params):
        real_batch(conn, kek_id, params)
        raise Crash

    monkeypatch.setattr(rotation, "_rewrap_batch", crash_mid_transaction)
    with pytest.raises(Crash):
        rotation.rotate_kek(ctx, actor=ACTOR)
    pending_id = read_kek_file(pending_path(settings.keys.kek_file)).kek_id
    assert {r["kek_id"] for r in keys(ctx.engine)} == {old_id}  # rolled back as a whole
    assert [d for d in audit_details(ctx.engine) if d["kind"] == "kek"] == []

    monkeypatch.undo()
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 2)
        result = rotation.rotate_kek(survivor, actor=ACTOR)
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
        rotation.rotate_kek(ctx, actor=ACTOR)
    monkeypatch.undo()
    kek_file = settings.keys.kek_file
    assert kek_file.exists() and pending_path(kek_file).exists()
    survivor = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 1)
        rotation.rotate_kek(survivor, actor=ACTOR)
    finally:
        survivor.close()
    assert not pending_path(kek_file).exists()


def test_a_second_rotation_to_a_different_key_waits_for_the_pending_one(ctx, settings, monkeypatch):
    seed(ctx.engine, ctx.keyring, clients=1)
    monkeypatch.setattr(rotation, "_install_pending", lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        rotation.rotate_kek(ctx, actor=ACTOR)
    with pytest.raises(ConflictError, match="already pending"):
        rotation.rotate_kek(ctx, generate_kek(), actor=ACTOR)


def test_finish_without_a_pending_rotation_is_not_found(ctx):
    with pytest.raises(NotFoundError, match="no KEK rotation is pending"):
        rotation.finish_kek_rotation(ctx, actor=ACTOR)


def test_keys_wrapped_by_a_stale_process_after_rotation_are_healed_next_time(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    stale = Keyring(load_keks(settings.keys))  # e.g. a daemon not restarted
    first = rotation.rotate_kek(ctx, actor=ACTOR)
    with transaction(ctx.engine) as conn:
        pid = conn.execute(select(table("practices").c.id)).scalar()
        late_client = add_client(conn, stale, pid)
    assert keys(ctx.engine, client_id=late_client)[0]["kek_id"] == first.old_kek_ids[0]

    second = rotation.rotate_kek(ctx, actor=ACTOR)
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
    result = rotation.rotate_kek(ctx, actor=ACTOR)
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
            rotation.rotate_kek(context, actor=ACTOR)
    finally:
        context.close()
    assert not pending_path(settings.keys.kek_file).exists()


def test_rotation_refuses_when_keys_are_wrapped_by_an_unknown_kek(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=1)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_keys).where(_keys.c.purpose == KeyPurpose.CLIENT)
                     .values(kek_id="feedfacefeedface"))
    with pytest.raises(KeyUnavailableError, match="feedfacefeedface"):
        rotation.rotate_kek(ctx, actor=ACTOR)
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
    result = rotation.rotate_kek(ctx, actor=ACTOR)
    elapsed = time.monotonic() - started
    assert result.rewrapped == 100_000
    assert elapsed < 30, f"rewrapping 100k keys took {elapsed:.1f}s"
    print(f"rewrapped 100k keys in {elapsed:.1f}s")


# =====================================================================================
# DEK rotation
# =====================================================================================

def test_dek_rotation_gives_every_client_a_new_key_and_rows_still_open(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    before = {r["client_id"]: r["id"] for r in keys(ctx.engine, purpose=KeyPurpose.CLIENT)}
    result = rotation.rotate_deks(ctx, actor=ACTOR)

    assert result.completed and not result.resumed and result.clients_rotated == 3
    assert result.rows_reencrypted == {"clients": 3, "therapy_sessions": 3, "client_files": 3}
    for client_id in ids:
        old, new = keys(ctx.engine, client_id=client_id)
        assert (old["version"], old["state"]) == (1, KeyState.RETIRED) and old["retired_at"]
        assert (new["version"], new["state"]) == (2, KeyState.ACTIVE)
        assert old["id"] == before[client_id]
    with transaction(ctx.engine, read_only=True) as conn:
        for name in ("clients", "therapy_sessions", "client_files"):
            used = set(conn.execute(select(table(name).c.key_id)).scalars())
            assert used.isdisjoint(before.values())
    fresh = reopen(settings)
    try:
        all_plaintext_expected(decrypt_all(fresh.engine, fresh.keyring), 3)
    finally:
        fresh.close()


def test_dek_rotation_bumps_sync_version_and_checksum_but_not_updated_at(ctx):
    from strongroom.core.repository.changes import row_checksum

    seed(ctx.engine, ctx.keyring, clients=1)
    t = table("therapy_sessions")
    with transaction(ctx.engine, read_only=True) as conn:
        before = conn.execute(select(t)).mappings().one()
    rotation.rotate_deks(ctx, actor=ACTOR)
    with transaction(ctx.engine, read_only=True) as conn:
        after = conn.execute(select(t)).mappings().one()
    assert after["sync_version"] > before["sync_version"]
    assert after["updated_at"] == before["updated_at"]
    assert after["data_checksum"] == row_checksum(dict(after))


def test_interrupted_dek_rotation_resumes_with_the_clients_not_yet_done(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=5)["clients"]

    def interrupt_after_two(done, total, message):
        assert total == 5 and "client" in message
        if done == 2:
            raise Crash

    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, actor=ACTOR, progress=interrupt_after_two, batch_clients=2)
    versions = sorted(max(r["version"] for r in keys(ctx.engine, client_id=c)) for c in ids)
    assert versions == [1, 1, 1, 2, 2]

    seen = []
    survivor = reopen(settings)  # a new process: nothing but the database remembers
    try:
        result = rotation.rotate_deks(survivor, actor=ACTOR,
                                      progress=lambda d, t, m: seen.append((d, t)))
        assert result.resumed and result.clients_rotated == 3 and result.completed
        assert seen[-1] == (3, 3)
        all_plaintext_expected(decrypt_all(survivor.engine, survivor.keyring), 5)
    finally:
        survivor.close()
    for client_id in ids:
        assert [(r["version"], r["state"]) for r in keys(ctx.engine, client_id=client_id)] == [
            (1, KeyState.RETIRED), (2, KeyState.ACTIVE)]
    phases = [d["phase"] for d in audit_details(ctx.engine) if d["kind"] == "dek"]
    assert phases == ["start", "run", "run", "complete"]
    runs = [d for d in audit_details(ctx.engine) if d.get("phase") == "run"]
    assert [r["clients_rotated"] for r in runs] == [2, 3] and runs[0]["remaining"] == 3


def test_after_a_completed_rotation_the_next_run_starts_a_new_generation(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    first = rotation.rotate_deks(ctx, actor=ACTOR)
    second = rotation.rotate_deks(ctx, actor=ACTOR)
    assert first.generation != second.generation and not second.resumed
    assert [r["version"] for r in keys(ctx.engine, client_id=ids[0])] == [1, 2, 3]


def test_clients_added_during_a_rotation_already_count_as_done(ctx):
    seed(ctx.engine, ctx.keyring, clients=2)

    def add_one_then_crash(done, total, message):
        raise Crash

    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, actor=ACTOR, progress=add_one_then_crash)
    with transaction(ctx.engine) as conn:
        pid = conn.execute(select(table("practices").c.id)).scalar()
        late = add_client(conn, ctx.keyring, pid)
    result = rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.resumed and result.clients_rotated == 1 and result.completed
    assert [r["version"] for r in keys(ctx.engine, client_id=late)] == [1]


def test_rotating_listed_clients_leaves_the_others_alone(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    result = rotation.rotate_deks(ctx, client_ids=[ids[1]], actor=ACTOR)
    assert result.clients_rotated == 1 and result.completed
    assert [len(keys(ctx.engine, client_id=c)) for c in ids] == [1, 2, 1]


def test_listed_clients_conflict_with_an_unfinished_rotation_of_other_clients(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, client_ids=ids[:2], actor=ACTOR,
                             progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(ConflictError, match="unfinished"):
        rotation.rotate_deks(ctx, client_ids=[ids[2]], actor=ACTOR)
    result = rotation.rotate_deks(ctx, actor=ACTOR)  # finishing the listed rotation
    assert result.resumed and result.completed and result.clients_rotated == 1


def test_rows_written_with_an_old_key_are_healed_without_a_new_version(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=1)["clients"]
    stale = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        old_cipher = stale.client_cipher(conn, ids[0])
    rotation.rotate_deks(ctx, actor=ACTOR)
    # A writer that looked up the client's key before the rotation commits after it.
    t = table("therapy_sessions")
    with transaction(ctx.engine) as conn:
        sid = conn.execute(select(t.c.id)).scalar()
        conn.execute(update(t).where(t.c.id == sid).values(
            key_id=old_cipher.key_id,
            notes_enc=old_cipher.encrypt_text("late edit", "therapy_sessions", "notes", sid)))
    with transaction(ctx.engine, read_only=True) as conn:
        assert rotation.key_status(conn)["stray_clients"] == 1

    result = rotation.rotate_deks(ctx, actor=ACTOR)  # new generation: everyone -> v3
    assert result.rows_reencrypted["therapy_sessions"] == 1
    # The seeded file's content would keep the client's retired keys (it stays sealed
    # under the key it was added with: tests/core/files/test_files_rotation.py); removed,
    # nothing needs them.
    with transaction(ctx.engine) as conn:
        conn.execute(update(table("client_files")).values(deleted_at=utcnow()))
    assert rotation.destroy_retired_unused(ctx, actor=ACTOR).by_purpose == {"client": 2}
    fresh = reopen(settings)
    try:
        assert decrypt_all(fresh.engine, fresh.keyring)["therapy_sessions.notes"] == ["late edit"]
    finally:
        fresh.close()


def test_stray_rows_are_healed_under_the_existing_new_key_while_a_generation_is_open(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    stale = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        old_ciphers = {c: stale.client_cipher(conn, c) for c in ids}

    def stop_after_first(done, total, message):
        if done == 1:
            raise Crash

    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, client_ids=None, actor=ACTOR, progress=stop_after_first)
    done_client = next(c for c in ids if len(keys(ctx.engine, client_id=c)) == 2)
    old_cipher = old_ciphers[done_client]
    t = table("client_files")
    with transaction(ctx.engine) as conn:
        fid = conn.execute(select(t.c.id).where(t.c.client_id == done_client)).scalar()
        conn.execute(update(t).where(t.c.id == fid).values(
            key_id=old_cipher.key_id,
            file_name_enc=old_cipher.encrypt_text("late.pdf", "client_files", "file_name", fid)))
    result = rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.completed and result.clients_rotated == 2
    assert [r["version"] for r in keys(ctx.engine, client_id=done_client)] == [1, 2]


def test_erased_clients_are_skipped_by_dek_rotation(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, ids[0])
    result = rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.clients_rotated == 1 and result.completed
    assert [r["state"] for r in keys(ctx.engine, client_id=ids[0])] == [KeyState.DESTROYED]


# =====================================================================================
# System key, status, destruction
# =====================================================================================

def test_system_key_rotation_reencrypts_totp_secrets(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=0, users=2)
    (old,) = keys(ctx.engine, purpose=KeyPurpose.SYSTEM)
    result = rotation.rotate_system_key(ctx, actor=ACTOR)
    assert result.version == 2 and result.rows_reencrypted == {"users": 2}
    assert result.old_key_ids == [str(old["id"])]
    with transaction(ctx.engine) as conn:
        assert str(ctx.keyring.system_cipher(conn).key_id) == result.new_key_id
    fresh = reopen(settings)
    try:
        assert decrypt_all(fresh.engine, fresh.keyring)["users.totp_secret"] == ["JBSWY3DPEHPK3PXP"] * 2
        with transaction(fresh.engine) as conn:
            assert str(fresh.keyring.system_cipher(conn).key_id) == result.new_key_id
    finally:
        fresh.close()
    assert [r["state"] for r in keys(ctx.engine, purpose=KeyPurpose.SYSTEM)] == [
        KeyState.RETIRED, KeyState.ACTIVE]


def test_key_status_counts_rows_on_each_key_version(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    rotation.rotate_deks(ctx, client_ids=[ids[0]], actor=ACTOR)
    with transaction(ctx.engine, read_only=True) as conn:
        status = rotation.key_status(conn)
    rows = {(r["table"], r["version"], r["state"]): r["rows"] for r in status["rows"]}
    assert rows == {("clients", 1, "active"): 2, ("clients", 2, "active"): 1,
                    ("therapy_sessions", 1, "active"): 2, ("therapy_sessions", 2, "active"): 1,
                    ("client_files", 1, "active"): 2, ("client_files", 2, "active"): 1,
                    ("users", 1, "active"): 1}
    keys_by = {(k["purpose"], k["state"]): k["keys"] for k in status["keys"]}
    assert keys_by[("client", "active")] == 3 and keys_by[("client", "retired")] == 1
    assert status["kek_ids"] == {ctx.keyring.kek_id: 6}
    assert status["rows_on_retired_keys"] == 0 and status["dek_rotation"] is None


def test_key_status_shows_an_unfinished_rotation_and_rows_left_on_retired_keys(ctx):
    seed(ctx.engine, ctx.keyring, clients=3)
    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, actor=ACTOR, progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with transaction(ctx.engine, read_only=True) as conn:
        status = rotation.key_status(conn)
    assert status["dek_rotation"]["remaining_clients"] == 2
    assert status["dek_rotation"]["scope"] == "all"


def test_destroy_retired_unused_shreds_only_keys_no_row_uses(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    stale = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        old_cipher = stale.client_cipher(conn, ids[1])
    rotation.rotate_deks(ctx, actor=ACTOR)
    rotation.rotate_system_key(ctx, actor=ACTOR)
    # Put one row back on a retired key, as a restore of an old row would.
    t = table("therapy_sessions")
    with transaction(ctx.engine) as conn:
        sid = conn.execute(select(t.c.id).where(t.c.client_id == ids[1])).scalar()
        conn.execute(update(t).where(t.c.id == sid).values(
            key_id=old_cipher.key_id,
            notes_enc=old_cipher.encrypt_text(SESSION_NOTES, "therapy_sessions", "notes", sid)))
        # A live file's content keeps its client's retired keys; the first client's goes.
        files = table("client_files")
        conn.execute(update(files).where(files.c.client_id == ids[0]).values(deleted_at=utcnow()))

    destroyed = rotation.destroy_retired_unused(ctx, actor=ACTOR)
    assert destroyed.by_purpose == {"client": 1, "system": 1}
    assert [r["state"] for r in keys(ctx.engine, client_id=ids[0])] == [
        KeyState.DESTROYED, KeyState.ACTIVE]
    assert keys(ctx.engine, client_id=ids[1])[0]["state"] == KeyState.RETIRED
    (details,) = audit_details(ctx.engine, "KEY_DESTROY")
    assert details["count"] == 2 and sorted(details["key_ids"]) == destroyed.key_ids
    assert rotation.destroy_retired_unused(ctx, actor=ACTOR).key_ids == []
    fresh = reopen(settings)
    try:
        values = decrypt_all(fresh.engine, fresh.keyring)
    finally:
        fresh.close()
    assert values["users.totp_secret"] == ["JBSWY3DPEHPK3PXP"]


def test_open_generation_is_derived_from_the_audit_log_only(ctx):
    seed(ctx.engine, ctx.keyring, clients=1)
    with transaction(ctx.engine, read_only=True) as conn:
        assert rotation.open_generation(conn) is None
    with pytest.raises(Crash):
        rotation.rotate_deks(ctx, actor=ACTOR, progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with transaction(ctx.engine) as conn:
        for _ in range(5):  # unrelated KEY_ROTATE entries after the start do not hide it
            audit.append(conn, actor=ACTOR, action="KEY_ROTATE", details={"kind": "kek"})
        gen = rotation.open_generation(conn)
    assert gen is not None and gen.client_ids is None
