"""Four-eyes retention and forgetting one snapshot: nothing goes until a different
person approves, in time, no more than was approved; chains and the proven snapshot
are never broken."""
import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from strongroom.core.backup import prune_requests
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import KeepPolicy
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Backup, BackupPruneRequest
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied
from strongroom.core.jobs import backup, prune
from strongroom.core.storage import open_target
from tests.core.conftest import seed_clients, with_backup_target

KEEP = KeepPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0, compact=False)
_req = BackupPruneRequest.__table__


def _four_eyes(ctx, tmp_path, fulls=3, retention=KEEP):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    snaps = [uuid.UUID(backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"]) for _ in range(fulls)]
    _configure(ctx, retention)
    return snaps, open_repository(open_target(ctx.settings.backup.target), ctx.keyring)


def _configure(ctx, retention, approval=True):
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"retention": retention, "require_approval": approval})})


def _request(ctx, request_id):
    with ctx.engine.connect() as conn:
        return conn.execute(select(_req).where(_req.c.id == uuid.UUID(request_id))).mappings().one()


def test_prune_files_a_request_and_a_different_person_carries_it_out(ctx, tmp_path):
    snaps, repo = _four_eyes(ctx, tmp_path)
    filed = prune.run(ctx, {"actor": "user:alice"}, lambda *a: None)
    assert filed["forgotten"] == [] and set(filed["would_forget"]) == {str(snaps[0]), str(snaps[1])}
    request_id = filed["pending_request"]["request_id"]
    assert repo.list_snapshots() == snaps  # nothing deleted yet
    row = _request(ctx, request_id)
    assert row["status"] == "pending" and row["requested_by"] == "user:alice"
    assert timedelta(hours=23) < row["expires_at"] - row["requested_at"] <= timedelta(hours=24)
    # The scheduler asking again does not pile up requests.
    assert prune.run(ctx, {}, lambda *a: None)["pending_request"] == {**filed["pending_request"], "new": False}

    with pytest.raises(PermissionDenied, match="different person"):
        prune.run(ctx, {"actor": "user:alice", "request_id": request_id}, lambda *a: None)
    assert repo.list_snapshots() == snaps

    done = prune.run(ctx, {"actor": "user:bob", "request_id": request_id}, lambda *a: None)
    assert set(done["forgotten"]) == {str(snaps[0]), str(snaps[1])}
    assert repo.list_snapshots() == [snaps[2]]
    row = _request(ctx, request_id)
    assert row["status"] == "executed" and row["approved_by"] == "user:bob" and row["executed_at"]
    with pytest.raises(ConflictError, match="executed, not pending"):
        prune.run(ctx, {"actor": "user:carol", "request_id": request_id}, lambda *a: None)
    with ctx.engine.connect() as conn:
        trail = conn.execute(select(AuditLog.__table__.c.actor, AuditLog.__table__.c.outcome,
                                    AuditLog.__table__.c.details)
                             .where(AuditLog.__table__.c.record_id == request_id)
                             .order_by(AuditLog.__table__.c.id)).all()
    assert [(a, o) for a, o, _ in trail] == [("user:alice", "success"), ("user:alice", "denied"),
                                             ("user:bob", "success")]


def test_an_expired_request_cannot_be_approved(ctx, tmp_path):
    snaps, repo = _four_eyes(ctx, tmp_path)
    request_id = prune.run(ctx, {"actor": "user:alice"}, lambda *a: None)["pending_request"]["request_id"]
    with transaction(ctx.engine) as conn:
        conn.execute(update(_req).where(_req.c.id == uuid.UUID(request_id))
                     .values(expires_at=utcnow() - timedelta(minutes=1)))
    with pytest.raises(ConflictError, match="expired"):
        prune.run(ctx, {"actor": "user:bob", "request_id": request_id}, lambda *a: None)
    assert repo.list_snapshots() == snaps and _request(ctx, request_id)["status"] == "expired"


def test_approval_is_refused_when_the_plan_has_grown(ctx, tmp_path):
    snaps, repo = _four_eyes(ctx, tmp_path, retention=KEEP.model_copy(update={"keep_last": 2}))
    filed = prune.run(ctx, {"actor": "user:alice"}, lambda *a: None)
    assert filed["would_forget"] == [str(snaps[0])]
    _configure(ctx, KEEP)  # someone lowers retention after the request was filed
    with pytest.raises(ConflictError, match="grown"):
        prune.run(ctx, {"actor": "user:bob", "request_id": filed["pending_request"]["request_id"]}, lambda *a: None)
    assert repo.list_snapshots() == snaps
    assert _request(ctx, filed["pending_request"]["request_id"])["status"] == "refused"


def test_the_scheduler_cannot_approve(ctx, tmp_path):
    _, _ = _four_eyes(ctx, tmp_path)
    request_id = prune.run(ctx, {"actor": "user:alice"}, lambda *a: None)["pending_request"]["request_id"]
    with pytest.raises(PermissionDenied):
        prune.run(ctx, {"request_id": request_id}, lambda *a: None)


def test_a_request_the_scheduler_filed_still_needs_two_people(ctx, tmp_path):
    snaps, repo = _four_eyes(ctx, tmp_path)
    request_id = prune.run(ctx, {}, lambda *a: None)["pending_request"]["request_id"]
    assert _request(ctx, request_id)["requested_by"] == "system"

    endorsed = prune.run(ctx, {"actor": "user:alice", "request_id": request_id}, lambda *a: None)
    assert endorsed["forgotten"] == [] and endorsed["pending_request"]["endorsed_by"] == "user:alice"
    assert repo.list_snapshots() == snaps and _request(ctx, request_id)["status"] == "pending"
    with pytest.raises(PermissionDenied, match="different person"):
        prune.run(ctx, {"actor": "user:alice", "request_id": request_id}, lambda *a: None)
    assert repo.list_snapshots() == snaps

    done = prune.run(ctx, {"actor": "user:bob", "request_id": request_id}, lambda *a: None)
    assert set(done["forgotten"]) == {str(snaps[0]), str(snaps[1])}
    row = _request(ctx, request_id)
    assert (row["status"], row["requested_by"], row["approved_by"]) == ("executed", "user:alice", "user:bob")
    with ctx.engine.connect() as conn:
        events = [json.loads(d)["event"] for d in conn.execute(select(AuditLog.__table__.c.details).where(
            AuditLog.__table__.c.record_id == request_id).order_by(AuditLog.__table__.c.id)).scalars()]
    assert events == ["request_filed", "request_endorsed", "self_approval_refused",
                      "request_approved_and_executed"]


def test_forget_refuses_the_newest_verified_snapshot_and_needed_links(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    base = backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"]
    backup.run(ctx, {}, lambda *a: None)  # an incremental on base
    lone = backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"]
    newest = backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"]
    with transaction(ctx.engine) as conn:
        conn.execute(update(Backup.__table__).where(Backup.__table__.c.id == uuid.UUID(newest))
                     .values(proof="verified"))
    with pytest.raises(ConflictError, match="newest verified"):
        prune.run(ctx, {"snapshot_id": newest}, lambda *a: None)
    with pytest.raises(ConflictError, match="link 1 other snapshot"):
        prune.run(ctx, {"snapshot_id": base}, lambda *a: None)
    with pytest.raises(NotFoundError):
        prune.run(ctx, {"snapshot_id": str(uuid.uuid4())}, lambda *a: None)
    result = prune.run(ctx, {"snapshot_id": lone, "actor": "user:alice"}, lambda *a: None)
    assert result["forgotten"] == [lone]
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    assert uuid.UUID(lone) not in repo.list_snapshots() and len(repo.list_snapshots()) == 3


def test_forget_in_four_eyes_mode_waits_for_approval(ctx, tmp_path):
    snaps, repo = _four_eyes(ctx, tmp_path)
    filed = prune.run(ctx, {"snapshot_id": str(snaps[1]), "actor": "user:alice"}, lambda *a: None)
    assert repo.list_snapshots() == snaps and filed["would_forget"] == [str(snaps[1])]
    assert _request(ctx, filed["pending_request"]["request_id"])["kind"] == "forget"
    listed = prune_requests.pending_requests(ctx)
    assert [r["id"] for r in listed] == [uuid.UUID(filed["pending_request"]["request_id"])]
    assert listed[0]["configuration"] == "default"
    done = prune.run(ctx, {"request_id": filed["pending_request"]["request_id"], "actor": "user:bob"},
                     lambda *a: None)
    assert done["forgotten"] == [str(snaps[1])] and repo.list_snapshots() == [snaps[0], snaps[2]]


def test_the_local_operator_can_neither_file_endorse_nor_approve(ctx, tmp_path):
    """`local:<uid>` is whoever holds the machine's account: it is not one of the four eyes."""
    snaps, repo = _four_eyes(ctx, tmp_path)
    with pytest.raises(PermissionDenied, match="named, logged-in person"):
        prune.run(ctx, {"actor": "local:0"}, lambda *a: None)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(_req)).first() is None
    scheduled = prune.run(ctx, {}, lambda *a: None)["pending_request"]["request_id"]
    with pytest.raises(PermissionDenied, match="named, logged-in person"):
        prune.run(ctx, {"actor": "local:0", "request_id": scheduled}, lambda *a: None)   # no endorsing
    assert _request(ctx, scheduled)["requested_by"] == "system"
    prune.run(ctx, {"actor": "user:alice", "request_id": scheduled}, lambda *a: None)
    for local in ("local:0", "local:2222"):
        with pytest.raises(PermissionDenied, match="named, logged-in person"):
            prune_requests.check_approval(ctx, uuid.UUID(scheduled), local, utcnow())
        with pytest.raises(PermissionDenied, match="named, logged-in person"):
            prune.run(ctx, {"actor": local, "request_id": scheduled}, lambda *a: None)
    assert repo.list_snapshots() == snaps and _request(ctx, scheduled)["status"] == "pending"
