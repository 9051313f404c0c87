"""System-key rotation, key status and destroying retired keys no row uses
(core/crypto/system_key_rotation.py, core/crypto/key_status.py)."""
from __future__ import annotations

import pytest
from crypto_helpers import (SESSION_NOTES, Crash, audit_details, decrypt_all, keys, reopen, seed,
                            table)
from sqlalchemy import select, update

from strongroom.core.crypto import dek_rotation, key_status, system_key_rotation
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow

ACTOR = "test:rotation"
_keys = DataKey.__table__


def test_system_key_rotation_reencrypts_totp_secrets(ctx, settings):
    seed(ctx.engine, ctx.keyring, clients=0, users=2)
    (old,) = keys(ctx.engine, purpose=KeyPurpose.SYSTEM)
    result = system_key_rotation.rotate_system_key(ctx, actor=ACTOR)
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
    dek_rotation.rotate_deks(ctx, client_ids=[ids[0]], actor=ACTOR)
    with transaction(ctx.engine, read_only=True) as conn:
        status = key_status.key_status(conn)
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
        dek_rotation.rotate_deks(ctx, actor=ACTOR, progress=lambda *a: (_ for _ in ()).throw(Crash()))
    with transaction(ctx.engine, read_only=True) as conn:
        status = key_status.key_status(conn)
    assert status["dek_rotation"]["remaining_clients"] == 2
    assert status["dek_rotation"]["scope"] == "all"


def test_destroy_retired_unused_shreds_only_keys_no_row_uses(ctx, settings):
    ids = seed(ctx.engine, ctx.keyring, clients=2)["clients"]
    stale = Keyring(load_keks(settings.keys))
    with transaction(ctx.engine, read_only=True) as conn:
        old_cipher = stale.client_cipher(conn, ids[1])
    dek_rotation.rotate_deks(ctx, actor=ACTOR)
    system_key_rotation.rotate_system_key(ctx, actor=ACTOR)
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

    destroyed = key_status.destroy_retired_unused(ctx, actor=ACTOR)
    assert destroyed.by_purpose == {"client": 1, "system": 1}
    assert [r["state"] for r in keys(ctx.engine, client_id=ids[0])] == [
        KeyState.DESTROYED, KeyState.ACTIVE]
    assert keys(ctx.engine, client_id=ids[1])[0]["state"] == KeyState.RETIRED
    (details,) = audit_details(ctx.engine, "KEY_DESTROY")
    assert details["count"] == 2 and sorted(details["key_ids"]) == destroyed.key_ids
    assert key_status.destroy_retired_unused(ctx, actor=ACTOR).key_ids == []
    fresh = reopen(settings)
    try:
        values = decrypt_all(fresh.engine, fresh.keyring)
    finally:
        fresh.close()
    assert values["users.totp_secret"] == ["JBSWY3DPEHPK3PXP"]
