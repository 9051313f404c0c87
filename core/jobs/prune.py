"""Backup retention ("prune"): forget snapshots the policy no longer keeps, then delete
chunks that no remaining snapshot references.

Ransomware-minded rules:
- Snapshot times come from this database's `backups` rows, written by our own clock
  when each backup ran, never from the repository: a planted manifest with a
  far-future date cannot make the policy think the good snapshots are old. Snapshots
  the database does not know are never deleted here, only reported.
- The newest snapshot proven `verified` or `drilled` is always kept.
- A kept incremental keeps its whole chain back to its full base: every kept snapshot
  still restores on its own.
- Garbage collection takes the repository's exclusive lock, so it never runs beside a
  backup (whose new or reused chunks no manifest references yet).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from strongroom.core import audit
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import RetentionSettings
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup
from strongroom.core.db.types import utcnow
from strongroom.core.jobs.backup import target_url
from strongroom.core.storage import open_target

PROVEN = ("verified", "drilled")


def keep_set(snapshots: list[dict], policy: RetentionSettings, now: datetime) -> set[uuid.UUID]:
    """Which snapshots the policy keeps, before chains are closed over.

    `snapshots`: dicts with id, started_at (our clock), proof; any order.
    keep_last n newest; keep_daily/weekly/monthly: the newest snapshot in each of the
    n most recent days/ISO weeks/months that have one; max_age_days: nothing older
    (except the newest proven snapshot, always kept).
    """
    ordered = sorted(snapshots, key=lambda s: s["started_at"], reverse=True)
    keep: set[uuid.UUID] = {s["id"] for s in ordered[:policy.keep_last]}
    for count, bucket in ((policy.keep_daily, lambda t: t.date()),
                          (policy.keep_weekly, lambda t: t.isocalendar()[:2]),
                          (policy.keep_monthly, lambda t: (t.year, t.month))):
        seen: list = []
        for snap in ordered:
            key = bucket(snap["started_at"])
            if key not in seen:
                seen.append(key)
                if len(seen) > count:
                    break
                keep.add(snap["id"])
    if policy.max_age_days:
        cutoff = now - timedelta(days=policy.max_age_days)
        keep = {i for i in keep if next(s for s in ordered if s["id"] == i)["started_at"] >= cutoff}
    proven = next((s for s in ordered if s["proof"] in PROVEN), None)
    if proven is not None:
        keep.add(proven["id"])
    return keep


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    policy = ctx.settings.backup.retention
    repo = open_repository(open_target(params.get("target") or target_url(ctx)), ctx.keyring)
    dry_run = str(params.get("dry_run", "")).lower() in ("1", "true", "yes")
    table = Backup.__table__
    with ctx.engine.connect() as conn:
        known = {r.id: dict(r._mapping) for r in conn.execute(
            select(table.c.id, table.c.started_at, table.c.proof).where(table.c.status == "succeeded"))}
    in_repo = repo.list_snapshots()
    manifests = {i: repo.read_manifest(i) for i in in_repo}
    ours = [known[i] for i in in_repo if i in known]
    unknown = [str(i) for i in in_repo if i not in known]
    keep = keep_set(ours, policy, utcnow())
    closed: set[uuid.UUID] = set()
    for snapshot_id in keep:  # a kept snapshot keeps its chain
        current = snapshot_id
        while current is not None and current not in closed:
            closed.add(current)
            current = manifests[current].parent_id if current in manifests else None
    forget = [s["id"] for s in ours if s["id"] not in closed]
    result: dict[str, Any] = {"kept": len(closed & set(in_repo)), "forgotten": [str(i) for i in forget],
                              "unknown_snapshots_left_alone": unknown, "chunks_deleted": 0, "dry_run": dry_run}
    if dry_run:
        return result
    lock = repo.acquire_lock("exclusive", "prune")
    try:
        for n, snapshot_id in enumerate(forget, 1):
            repo.delete_manifest(snapshot_id)
            progress(n, len(forget), "forgetting snapshots")
        live = [repo.read_manifest(i) for i in repo.list_snapshots()]
        deleted = 0
        for key in repo.unreferenced_chunks(live, lock):
            repo.target.delete(key)
            deleted += 1
        result["chunks_deleted"] = deleted
    finally:
        lock.release()
    with transaction(ctx.engine) as conn:
        if forget:
            conn.execute(update(table).where(table.c.id.in_(forget)).values(status="forgotten"))
        audit.append(conn, actor=params.get("actor", "system"), action="RETENTION", table_name="backups",
                     details={"forgotten": len(forget), "chunks_deleted": result["chunks_deleted"],
                              "unknown_left": len(unknown)})
    return result
