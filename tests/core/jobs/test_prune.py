"""Backup retention: the policy by our own clock, chains kept whole, proven snapshot kept,
planted snapshots ignored, unreferenced chunks collected."""
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from strongroom.core.backup.repository import open_repository
from strongroom.core.config import KeepPolicy
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup
from strongroom.core.backup import keep
from strongroom.core import restore
from strongroom.core.jobs import backup, prune
from strongroom.core.storage import open_target
from tests.core.conftest import seed_clients, with_backup_target

NOW = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


def _snap(days_ago: float, proof: str = "written") -> dict:
    return {"id": uuid.uuid4(), "started_at": NOW - timedelta(days=days_ago), "proof": proof}


def test_keep_last_daily_weekly_monthly_pick_the_newest_in_each_bucket():
    snaps = [_snap(d / 2) for d in range(120)]  # two a day for 60 days
    policy = KeepPolicy(keep_last=3, keep_daily=7, keep_weekly=4, keep_monthly=2)
    kept = keep.keep_set(snaps, policy, NOW)
    by_id = {s["id"]: s for s in snaps}
    days = {by_id[i]["started_at"].date() for i in kept}
    assert {s["id"] for s in sorted(snaps, key=lambda s: s["started_at"])[-3:]} <= kept
    assert len(days) >= 7 and len(kept) < 20


def test_newest_proven_snapshot_survives_max_age():
    old_proven = _snap(400, "verified")
    recent = [_snap(d) for d in range(3)]
    kept = keep.keep_set(recent + [old_proven, _snap(500)], KeepPolicy(keep_last=1, keep_daily=0,
                          keep_weekly=0, keep_monthly=0, max_age_days=30), NOW)
    assert old_proven["id"] in kept and len(kept) == 2


def test_prune_forgets_by_policy_keeps_chains_and_collects_chunks(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    ids = seed_clients(ctx, n=30)
    results = []
    for i in range(4):
        results.append(backup.run(ctx, {"full": "true"} if i == 2 else {}, lambda *a: None))
        from strongroom.core.repository.clients import update_client
        from strongroom.core.principal import SYSTEM
        with transaction(ctx.engine) as conn:
            update_client(conn, ctx.keyring, SYSTEM, ids[i], {"phone": f"555-01{i:02d}"})
    # Age the first chain by our own clock: snapshots 0 and 1 are 40 and 39 days old.
    with transaction(ctx.engine) as conn:
        for n, days in ((0, 40), (1, 39)):
            conn.execute(update(Backup.__table__).where(Backup.__table__.c.id == uuid.UUID(results[n]["snapshot_id"]))
                         .values(started_at=NOW - timedelta(days=days)))
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={
        "retention": KeepPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0,
                                       compact=False)})})
    result = prune.run(ctx, {}, lambda *a: None)
    # Only the newest (an incremental on snapshot 2) is kept by policy; its base 2 with it.
    assert set(result["forgotten"]) == {results[0]["snapshot_id"], results[1]["snapshot_id"]}
    assert result["chunks_deleted"] > 0
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    assert [str(i) for i in repo.list_snapshots()] == [results[2]["snapshot_id"], results[3]["snapshot_id"]]
    assert restore.restore(repo, uuid.UUID(results[3]["snapshot_id"]), f"sqlite:///{tmp_path / 'r.db'}").rows > 0


def test_planted_snapshot_is_neither_trusted_nor_deleted(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    planted = backup.run(ctx, {}, lambda *a: None)
    with transaction(ctx.engine) as conn:  # the database never heard of it
        conn.execute(Backup.__table__.delete().where(Backup.__table__.c.id == uuid.UUID(planted["snapshot_id"])))
    good = backup.run(ctx, {"full": "true"}, lambda *a: None)
    result = prune.run(ctx, {}, lambda *a: None)
    assert result["unknown_snapshots_left_alone"] == [planted["snapshot_id"]]
    assert result["forgotten"] == [] and good["snapshot_id"] not in result["forgotten"]


def test_dry_run_changes_nothing(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    for _ in range(3):
        backup.run(ctx, {"full": "true"}, lambda *a: None)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={
        "retention": KeepPolicy(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)})})
    result = prune.run(ctx, {"dry_run": "true"}, lambda *a: None)
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    assert len(result["forgotten"]) == 2 and len(repo.list_snapshots()) == 3
