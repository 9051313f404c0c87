"""DEK rotation (core/crypto/dek_rotation.py): resumable per client, generations from the audit log."""
from __future__ import annotations

import pytest
from crypto_helpers import (Crash, add_client, all_plaintext_expected, audit_details, decrypt_all,
                            keys, reopen, seed, table)
from sqlalchemy import select, update

from strongroom.core import audit
from strongroom.core.crypto import dek_rotation, key_status
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError

ACTOR = "test:rotation"
_keys = DataKey.__table__


def test_dek_rotation_gives_every_client_a_new_key_and_rows_still_open(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    before = {r["client_id"]: r["id"] for r in keys(ctx.engine, purpose=KeyPurpose.CLIENT)}
    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)

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
    dek_rotation.rotate_deks(ctx, actor=ACTOR)
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
        dek_rotation.rotate_deks(ctx, actor=ACTOR, progress=interrupt_after_two, batch_clients=2)
    versions = sorted(max(r["version"] for r in keys(ctx.engine, client_id=c)) for c in ids)
    assert versions == [1, 1, 1, 2, 2]

    seen = []
    survivor = reopen(settings)  # a new process: nothing but the database remembers
    try:
        result = dek_rotation.rotate_deks(survivor, actor=ACTOR,
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
    first = dek_rotation.rotate_deks(ctx, actor=ACTOR)
    second = dek_rotation.rotate_deks(ctx, actor=ACTOR)
    assert first.generation != second.generation and not second.resumed
    assert [r["version"] for r in keys(ctx.engine, client_id=ids[0])] == [1, 2, 3]


def test_clients_added_during_a_rotation_already_count_as_done(ctx):
    seed(ctx.engine, ctx.keyring, clients=2)

    def add_one_then_crash(done, total, message):
        raise Crash

    with pytest.raises(Crash):
        dek_rotation.rotate_deks(ctx, actor=ACTOR, progress=add_one_then_crash)
    with transaction(ctx.engine) as conn:
        pid = conn.execute(select(table("practices").c.id)).scalar()
        late = add_client(conn, ctx.keyring, pid)
    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.resumed and result.clients_rotated == 1 and result.completed
    assert [r["version"] for r in keys(ctx.engine, client_id=late)] == [1]


def test_rotating_listed_clients_leaves_the_others_alone(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    result = dek_rotation.rotate_deks(ctx, client_ids=[ids[1]], actor=ACTOR)
    assert result.clients_rotated == 1 and result.completed
    assert [len(keys(ctx.engine, client_id=c)) for c in ids] == [1, 2, 1]


def test_listed_clients_conflict_with_an_unfinished_rotation_of_other_clients(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=3)["clients"]
    with pytest.raises(Crash):
        dek_rotation.rotate_deks(ctx, client_ids=ids[:2], actor=ACTOR,
                             progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with pytest.raises(ConflictError, match="unfinished"):
        dek_rotation.rotate_deks(ctx, client_ids=[ids[2]], actor=ACTOR)
    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)  # finishing the listed rotation
    assert result.resumed and result.completed and result.clients_rotated == 1


def test_rows_written_with_an_old_key_are_healed_without_a_new_version(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=1)["clients"]
    stale = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        old_cipher = stale.client_cipher(conn, ids[0])
    dek_rotation.rotate_deks(ctx, actor=ACTOR)
    # A writer that looked up the client's key before the rotation commits after it.
    t = table("therapy_sessions")
    with transaction(ctx.engine) as conn:
        sid = conn.execute(select(t.c.id)).scalar()
        conn.execute(update(t).where(t.c.id == sid).values(
            key_id=old_cipher.key_id,
            notes_enc=old_cipher.encrypt_text("late edit", "therapy_sessions", "notes", sid)))
    with transaction(ctx.engine, read_only=True) as conn:
        assert key_status.key_status(conn)["stray_clients"] == 1

    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)  # new generation: everyone -> v3
    assert result.rows_reencrypted["therapy_sessions"] == 1
    # The seeded file's content would keep the client's retired keys (it stays sealed
    # under the key it was added with: tests/core/files/test_files_rotation.py); removed,
    # nothing needs them.
    with transaction(ctx.engine) as conn:
        conn.execute(update(table("client_files")).values(deleted_at=utcnow()))
    assert key_status.destroy_retired_unused(ctx, actor=ACTOR).by_purpose == {"client": 2}
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
        dek_rotation.rotate_deks(ctx, client_ids=None, actor=ACTOR, progress=stop_after_first)
    done_client = next(c for c in ids if len(keys(ctx.engine, client_id=c)) == 2)
    old_cipher = old_ciphers[done_client]
    t = table("client_files")
    with transaction(ctx.engine) as conn:
        fid = conn.execute(select(t.c.id).where(t.c.client_id == done_client)).scalar()
        conn.execute(update(t).where(t.c.id == fid).values(
            key_id=old_cipher.key_id,
            file_name_enc=old_cipher.encrypt_text("late.pdf", "client_files", "file_name", fid)))
    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.completed and result.clients_rotated == 2
    assert [r["version"] for r in keys(ctx.engine, client_id=done_client)] == [1, 2]


def test_erased_clients_are_skipped_by_dek_rotation(ctx):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, ids[0])
    result = dek_rotation.rotate_deks(ctx, actor=ACTOR)
    assert result.clients_rotated == 1 and result.completed
    assert [r["state"] for r in keys(ctx.engine, client_id=ids[0])] == [KeyState.DESTROYED]


def test_open_generation_is_derived_from_the_audit_log_only(ctx):
    seed(ctx.engine, ctx.keyring, clients=1)
    with transaction(ctx.engine, read_only=True) as conn:
        assert dek_rotation.open_generation(conn) is None
    with pytest.raises(Crash):
        dek_rotation.rotate_deks(ctx, actor=ACTOR, progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with transaction(ctx.engine) as conn:
        for _ in range(5):  # unrelated KEY_ROTATE entries after the start do not hide it
            audit.append(conn, actor=ACTOR, action="KEY_ROTATE", details={"kind": "kek"})
        gen = dek_rotation.open_generation(conn)
    assert gen is not None and gen.client_ids is None
