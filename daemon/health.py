"""The daemon's health: what the `health` command returns and the `health` topic carries.

One snapshot every `health_interval_seconds`: last successes and backup age, open
conflicts, sync peers' lag, failures and the integrity job's consistency check of the
two sites, the audit chain verdict, file scanning, the KEK's source. Counts and ages
only, never a row's content. Storage usage, backup outcomes and the compliance score
count every table's rows and score every area, so they are refreshed at most every
HEALTH_SLOW_SECONDS. Also here: how old a scheduled backup may be before the
`strongroom_backup_age` alert fires (max_age_from_schedule).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from strongroom.core.compliance import NOT_CONFIGURED, Report
from strongroom.core.config import Settings
from strongroom.core.context import Context
from strongroom.core.db.models import IntegrityCheck, SyncPeer
from strongroom.core.db.types import utcnow
from strongroom.core.files.repository import scan_health
from strongroom.core.integrity import is_ok
from strongroom.core.integrity.sync import check_name as sync_check_name
from strongroom.core.jobs import runs
from strongroom.core.sync.conflicts import count_open
from strongroom.core.sync.peers import outbound as outbound_peers
from strongroom.core.sync.status import quarantined_by_peer
from strongroom.core.usage import usage
from strongroom.daemon.scheduler import scheduled, trigger_for

# Storage usage, backup outcomes and the compliance score count every table's rows and
# score every area: health, read every few seconds, refreshes them at most this often.
HEALTH_SLOW_SECONDS = 60.0


def max_age_from_schedule(expression: str, grace: float) -> float:
    """How old the newest success may be before something is wrong: one schedule
    interval plus the misfire grace."""
    trig = trigger_for(expression)
    first = trig.get_next_fire_time(None, utcnow())
    second = trig.get_next_fire_time(first, first)
    return (second - first).total_seconds() + grace


def backup_max_ages(settings: Settings) -> dict[str, float]:
    """How old each scheduled backup configuration's newest backup may be."""
    return {entry.params.get("configuration", "default"):
            max_age_from_schedule(entry.expression, settings.daemon.misfire_grace_seconds)
            for entry in scheduled(settings) if entry.kind == "backup"}


def sync_consistency(conn, peers: list[str]) -> dict[str, dict]:
    """Per active peer, the integrity job's latest consistency check of the two sites
    (core/integrity/sync.py): its status, what it found (counts, never values) and when;
    a peer never checked is absent."""
    checks = IntegrityCheck.__table__
    out: dict[str, dict] = {}
    for name in peers:
        row = conn.execute(select(checks.c.status, checks.c.actual, checks.c.completed_at)
                           .where(checks.c.check_type == "sync", checks.c.name == sync_check_name(name))
                           .order_by(checks.c.completed_at.desc()).limit(1)).first()
        if row is not None:
            out[name] = {"status": row.status, "actual": row.actual, "checked_at": row.completed_at.isoformat()}
    return out


class Health:
    """Reads health snapshots and remembers what they need between reads: the audit
    chain's last verdict (from the integrity job's row or an `audit.verify` command)
    and the slow parts' cache. `compliance` is the report the metrics scrape computes
    (cached there as long), so health and the scrape agree."""

    def __init__(self, ctx: Context, compliance: Callable[[], Report]) -> None:
        self.ctx = ctx
        self.compliance = compliance
        self.audit_chain_ok: bool | None = None
        self.audit_chain_checked: datetime | None = None
        self._slow: tuple[float, dict] | None = None

    def note_audit_result(self, ok: bool) -> None:
        self.audit_chain_ok = ok
        self.audit_chain_checked = utcnow()

    def forget_slow(self) -> None:
        """The next read recomputes the slow parts (quotas or configurations changed)."""
        self._slow = None

    def read(self, *, role: str, uptime_seconds: float, running_jobs: list,
             next_runs: dict) -> dict:
        """One snapshot; the daemon's own state (role, uptime, jobs, schedules) is given."""
        last = runs.last_success(self.ctx.engine)
        now = time.time()
        checks = IntegrityCheck.__table__
        with self.ctx.engine.connect() as conn:
            chain = conn.execute(select(checks.c.status, checks.c.completed_at)
                                 .where(checks.c.check_type == "audit_chain")
                                 .order_by(checks.c.started_at.desc()).limit(1)).first()
            open_conflicts = sum(count_open(conn).values())
            peers_t = SyncPeer.__table__
            outbound = conn.execute(select(peers_t.c.name, peers_t.c.last_sync_at, peers_t.c.failures).where(
                peers_t.c.is_active.is_(True), outbound_peers())).all()
            quarantined = sum(quarantined_by_peer(conn).values())
            consistency = sync_consistency(conn, [p.name for p in outbound])
            files_scan = scan_health(conn, self.ctx.settings.files)   # pending files; does clamd answer
        peers = [p.last_sync_at for p in outbound]
        if chain is not None and (self.audit_chain_checked is None or chain.completed_at > self.audit_chain_checked):
            self.audit_chain_ok, self.audit_chain_checked = is_ok(chain.status), chain.completed_at
        integrity = runs.recent(self.ctx.engine, job_kind="integrity", limit=1)
        synced = [p for p in peers if p is not None]
        return {
            "open_conflicts": open_conflicts,
            "sync_peers": len(peers),
            # The stalest active peer; None when there is none or one never synced.
            "sync_lag_seconds": (round(now - min(synced).timestamp(), 1)
                                 if synced and len(synced) == len(peers) else None),
            "sync": {"peers": len(outbound), "failing": sorted(p.name for p in outbound if p.failures),
                     "max_lag_seconds": (round(now - min(synced).timestamp(), 1)
                                         if synced and len(synced) == len(peers) else None),
                     "open_conflicts": open_conflicts, "quarantined": quarantined,
                     "consistency": consistency},
            "integrity": ({"status": integrity[0].status,
                           "age_seconds": (round(now - integrity[0].finished_at.timestamp(), 1)
                                           if integrity[0].finished_at else None)}
                          if integrity else None),
            "role": role,
            "uptime_seconds": uptime_seconds,
            "running_jobs": running_jobs,
            "last_success": {k: v.isoformat() for k, v in last.items()},
            "last_backup_age_seconds": round(now - last["backup"].timestamp(), 1) if "backup" in last else None,
            "next_runs": next_runs,
            "audit_chain_ok": self.audit_chain_ok,
            "files": files_scan,
            "kek": self.ctx.keyring.primary.describe(),
            **self._read_slow(),
        }

    def _read_slow(self) -> dict:
        """`storage` (per table, per backup target), `backups` (runs that succeeded and
        failed in the window) and `compliance` (score, threshold, areas not configured),
        as of `usage_as_of`: refreshed at most every HEALTH_SLOW_SECONDS."""
        now = time.monotonic()
        if self._slow is None or now - self._slow[0] >= HEALTH_SLOW_SECONDS:
            settings = self.ctx.settings
            parts = usage(self.ctx.engine, settings)
            report = self.compliance()
            threshold = settings.compliance_threshold
            parts["compliance"] = {
                "score": report.score, "threshold": threshold,
                "status": "ok" if report.score >= threshold else "below threshold",
                "not_configured": sorted(a for a, v in report.areas.items() if v["status"] == NOT_CONFIGURED),
                "generated_at": report.generated_at.isoformat()}
            parts["usage_as_of"] = utcnow().isoformat()
            self._slow = (now, parts)
        return self._slow[1]
