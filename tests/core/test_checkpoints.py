"""Checkpoints of the audit head live outside the database, and catch a cut log."""
import json

from sqlalchemy import text

from strongroom.core import audit, checkpoints
from strongroom.core.db.engine import transaction
from strongroom.core.backup.snapshots import open_or_init
from tests.conftest import lift_audit_guards


def _append(ctx, n):
    with transaction(ctx.engine) as conn:
        for i in range(n):
            audit.append(conn, actor="user:alice", action="READ", table_name="clients", record_id=str(i))


def _with_file(ctx, tmp_path):
    path = tmp_path / "elsewhere" / "audit-checkpoint.json"
    ctx.settings = ctx.settings.model_copy(update={"audit": ctx.settings.audit.model_copy(
        update={"checkpoint_file": path})})
    return path


def _cut(ctx, keep_through: int):
    with ctx.engine.begin() as conn:
        lift_audit_guards(conn)
        conn.execute(text("DELETE FROM audit_logs WHERE id > :k"), {"k": keep_through})


def test_a_checkpoint_is_kept_in_every_backup_repository_and_the_configured_file(ctx, tmp_path):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    path = _with_file(ctx, tmp_path)
    repo = open_or_init(ctx)
    _append(ctx, 3)
    cp = checkpoints.take(ctx, actor="user:alice", reason="test")
    assert len(cp["places"]) == 2
    assert json.loads(path.read_text())["head_id"] == cp["head_id"]
    stored = [k for k in repo.target.list(checkpoints.PREFIX)]
    assert stored == [f"{checkpoints.PREFIX}{cp['head_id']:020d}.json"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_an_empty_backup_target_is_left_alone(ctx, tmp_path):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    path = _with_file(ctx, tmp_path)
    cp = checkpoints.take(ctx, actor="user:alice", reason="test")
    assert cp["places"] == [str(path)]


def test_the_newest_valid_checkpoint_wins_and_a_planted_one_proves_nothing(ctx, tmp_path):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    path = _with_file(ctx, tmp_path)
    repo = open_or_init(ctx)
    checkpoints.take(ctx, actor="user:alice", reason="first")
    _append(ctx, 2)
    second = checkpoints.take(ctx, actor="user:alice", reason="second")
    planted = {**second, "head_id": second["head_id"] + 100}
    repo.target.put(f"{checkpoints.PREFIX}{planted['head_id']:020d}.json", json.dumps(planted).encode())
    newest = checkpoints.newest(ctx)
    assert newest["head_id"] == second["head_id"] and newest["signature"] == second["signature"]
    assert path.exists()


def test_cutting_the_log_after_a_checkpoint_is_reported_with_the_entries_missing(ctx, tmp_path):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _with_file(ctx, tmp_path)
    _append(ctx, 5)
    cp = checkpoints.take(ctx, actor="user:alice", reason="test")
    result, used = checkpoints.verify_against_newest(ctx)
    assert result.ok and used["head_id"] == cp["head_id"]
    _cut(ctx, cp["head_id"] - 4)
    result, _ = checkpoints.verify_against_newest(ctx)
    assert not result.ok and result.rows_missing_after == 4 and "cut" in result.reason


def test_without_any_checkpoint_the_chain_and_its_seals_are_still_verified(ctx):
    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    _append(ctx, 2)
    result, used = checkpoints.verify_against_newest(ctx)
    assert result.ok and result.sealed and used is None


def test_no_new_checkpoint_replaces_the_evidence_of_a_cut(ctx, tmp_path):
    from strongroom.core.errors import IntegrityError

    audit.ensure_chain_key(ctx.engine, ctx.keyring)
    path = _with_file(ctx, tmp_path)
    _append(ctx, 4)
    cp = checkpoints.take(ctx, actor="user:alice", reason="test")
    _cut(ctx, cp["head_id"] - 2)
    try:
        checkpoints.take(ctx, actor="system", reason="shutdown")
        raise AssertionError("a checkpoint of the cut log was taken")
    except IntegrityError as refused:
        assert f"entry {cp['head_id']}" in str(refused)
    assert json.loads(path.read_text())["head_id"] == cp["head_id"]
