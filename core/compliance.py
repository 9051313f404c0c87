"""Compliance: checks with evidence, scored by the source's weights.

The source scores security out of 100: storage encryption 20, backup security 25,
export security 20, sync security 20, audit logging 15. Each area here is a set of
checks against the live system, each with the evidence it looked at and, when it
fails, what to do about it; an area scores its weight times the share of its checks
that pass. Only what is proven counts: a backup that was never verified is not a
backup for this score. Every check also names the HIPAA Security Rule safeguard it
supports, which is the checklist the console shows.

Nothing scores by being absent. An area whose feature is not configured (no sync peer,
no export ever made or configured) is "not evidenced": it earns none of its points and
the report names the points it forgoes. Every scheduled job of an area that failed in
the last JOB_WINDOW, or whose schedule is overdue now, costs JOB_PENALTY points of that
area (and fails the area's scheduled-jobs check). Encryption is evidenced by the
integrity job's scans (plaintext where ciphertext belongs, live rows on destroyed keys),
not by the existence of a key file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, or_, select
from strongroom.core.config import Settings
from strongroom.core.db.bulkwrite import upsert
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (
    Backup,
    Client,
    ComplianceScore,
    DataKey,
    ErasureRequest,
    Export,
    ExportConfiguration,
    IntegrityCheck,
    JobRun,
    JobStatus,
    KeyState,
    Practice,
    RetentionPolicy,
    Role,
    SyncConflict,
    SyncPeer,
    SyncQuarantine,
    User,
)
from strongroom.core.db.types import utcnow
from strongroom.core.files.repository import scan_health
from strongroom.core.integrity import is_ok
from strongroom.core.scheduled import missed_runs
from strongroom.core.sync.peers import outbound

WEIGHTS = {"encryption": 20, "backups": 25, "exports": 20, "sync": 20, "audit": 15}
# The job kinds whose scheduled runs count for each area.
AREA_JOBS = {"encryption": ("key_rotation",), "backups": ("backup", "verify", "restore_drill", "prune"),
             "exports": ("export",), "sync": ("sync",), "audit": ("integrity", "retention")}
JOB_WINDOW = timedelta(days=7)
JOB_PENALTY = 2.0
# A fire time this recent is not yet missed: the run may still be queued.
MISS_GRACE = timedelta(hours=1)
NOT_CONFIGURED = "not configured"
AUDIT_VERIFY_MAX_AGE = timedelta(days=7)
# Days an export's files may stay on disk when its configuration sets no retention_days.
EXPORT_MAX_DAYS = 30


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    passed: bool
    evidence: dict
    safeguard: str
    remediation: str = ""


@dataclass
class Report:
    score: int
    areas: dict[str, dict]
    checks: list[Check] = field(default_factory=list)
    generated_at: datetime = field(default_factory=utcnow)

    def as_dict(self) -> dict:
        return {"score": self.score, "areas": self.areas, "generated_at": self.generated_at.isoformat(),
                "not_evidenced": {a: v["forgone"] for a, v in self.areas.items() if v["status"] == NOT_CONFIGURED},
                "checks": [asdict(c) for c in self.checks]}


def _encryption(settings: Settings, conn) -> list[Check]:
    from strongroom.core.encryption_levels import kek_file_mode, keys_shared_by_clients
    keys, clients = DataKey.__table__, Client.__table__
    kek = settings.keys.kek_file
    mode = kek_file_mode(settings)
    kek_ok = mode is not None and not mode & 0o077
    orphaned = conn.execute(
        select(func.count()).select_from(clients.join(keys, clients.c.key_id == keys.c.id))
        .where(clients.c.deleted_at.is_(None), keys.c.state == KeyState.DESTROYED)).scalar_one()
    shared = keys_shared_by_clients(conn)
    scans = _newest_integrity(conn, ("envelopes", "keys"))
    bad_scans = sorted(name for name, status in scans.items() if not is_ok(status) and status != "warn")
    return [
        Check("encryption", "the newest integrity scan found no plaintext and no live row on a lost key",
              bool(scans) and not bad_scans and any(n.endswith("ciphertext") for n in scans),
              {"scans": scans, "failed": bad_scans},
              "164.312(a)(2)(iv) encryption and decryption; 164.312(c)(1) integrity",
              "run the integrity job (`strongroom jobs run integrity --wait`) and fix what it names"),
        Check("encryption", "key-encryption key kept private", kek_ok or kek is None,
              {"kek_file_mode": f"{mode:04o}" if mode is not None else None,
               "source": "file" if kek is not None else "credential or environment"},
              "164.312(a)(2)(iv) encryption and decryption",
              "chmod 600 the key file, or load it as a systemd credential"),
        Check("encryption", "every live client's records sealed with a usable key", orphaned == 0,
              {"live_clients_on_destroyed_keys": orphaned},
              "164.312(a)(2)(iv) encryption and decryption",
              "clients whose key was destroyed must be erased (tombstoned), not left live"),
        Check("encryption", "one data key per client (erasure by crypto-shredding works)", shared == 0,
              {"keys_shared_by_several_clients": shared},
              "164.310(d)(2)(i) disposal", "rotate the affected clients' keys (strongroom keys rotate-deks)"),
    ]


def _malware(settings: Settings, conn) -> list[Check]:
    """Client files are scanned for malware before they are served: only evidenced once
    there are client files or scanning is on (otherwise nothing to scan)."""
    state = scan_health(conn, settings.files)
    if state["pending"] + state["clean"] + state["infected"] == 0 and state["scanner"] == "off":
        return []
    passed = state["scanner"] == "clamd" and bool(state["answers"]) and state["pending"] == 0
    return [Check("encryption", "client files are scanned for malware before they are served", passed,
                  {"scanner": state["scanner"], "scanner_answers": state["answers"],
                   "files_pending_scan": state["pending"], "files_clean": state["clean"]},
                  "164.308(a)(5)(ii)(B) protection from malicious software",
                  'set [files] scanner = "clamd" with clamd running, and run the files_rescan job '
                  "(`strongroom jobs run files_rescan --wait`) for files left pending")]


def _level(settings: Settings, conn) -> list[Check]:
    """The encryption level each practice put in force (core/encryption_levels.py), met
    by the configuration as it runs now."""
    from strongroom.core import encryption_levels
    out = []
    for practice_id in conn.execute(select(Practice.__table__.c.id).order_by(Practice.__table__.c.id)).scalars():
        status = encryption_levels.status(settings, conn, practice_id)
        unmet = [r["name"] for r in status["requirements"] if not r["met"]]
        out.append(Check("encryption", f"encryption level {status['level']} in force and met", not unmet,
                         {"practice_id": str(practice_id), "level": status["level"],
                          "requirements met": [r["name"] for r in status["requirements"] if r["met"]],
                          "unmet": unmet},
                         "164.312(a)(2)(iv) encryption and decryption",
                         "meet what is unmet (`strongroom encryption show` says how) or set a lower level"))
    return out


def _newest_integrity(conn, check_types: tuple[str, ...]) -> dict[str, str]:
    """The status of the newest recorded integrity check of each name among `check_types`."""
    checks = IntegrityCheck.__table__
    newest = (select(checks.c.name, func.max(checks.c.started_at).label("at"))
              .where(checks.c.check_type.in_(check_types)).group_by(checks.c.name).subquery())
    rows = conn.execute(select(checks.c.name, checks.c.status).join(
        newest, (checks.c.name == newest.c.name) & (checks.c.started_at == newest.c.at)))
    return {row.name: row.status for row in rows}


def _backups(settings: Settings, conn, now: datetime) -> list[Check]:
    backups = Backup.__table__
    newest = conn.execute(select(backups).where(backups.c.status == "succeeded")
                          .order_by(backups.c.finished_at.desc()).limit(1)).mappings().first()
    verified_window = timedelta(days=settings.integrity.backup_verified_days)
    drilled_window = timedelta(days=settings.integrity.backup_drilled_days)
    proven = conn.execute(select(func.max(backups.c.verified_at))
                          .where(backups.c.status == "succeeded")).scalar()
    drilled = conn.execute(select(func.max(backups.c.drilled_at))
                           .where(backups.c.status == "succeeded")).scalar()
    unverified = conn.execute(select(func.count()).select_from(backups).where(
        backups.c.status == "succeeded", backups.c.verified_at.is_(None),
        backups.c.finished_at >= now - verified_window)).scalar_one()
    scheduled = "backup" in settings.schedules
    max_age = timedelta(days=1, hours=6)
    recent = newest is not None and newest["finished_at"] is not None and now - newest["finished_at"] <= max_age
    return [
        Check("backups", "backups are scheduled", scheduled, {"schedule": settings.schedules.get("backup")},
              "164.308(a)(7)(ii)(A) data backup plan", "add [schedules] backup = \"0 2 * * *\" to the config"),
        Check("backups", "a backup succeeded in the last 30 hours", recent,
              {"newest_success": newest["finished_at"].isoformat() if newest and newest["finished_at"] else None},
              "164.308(a)(7)(ii)(A) data backup plan", "run `strongroom jobs run backup --wait` and fix what fails"),
        Check("backups", "the newest backups are verified",
              proven is not None and now - proven <= verified_window and unverified == 0,
              {"newest_verified": proven.isoformat() if proven else None,
               "unverified_recent_snapshots": unverified, "window_days": settings.integrity.backup_verified_days},
              "164.308(a)(7)(ii)(B) disaster recovery plan", "verify backups (`strongroom backup verify --read-data`)"),
        Check("backups", "a restore drill has proven a backup restores lately",
              drilled is not None and now - drilled <= drilled_window,
              {"newest_drill": drilled.isoformat() if drilled else None,
               "window_days": settings.integrity.backup_drilled_days},
              "164.308(a)(7)(ii)(D) testing and revision procedures", "schedule the restore_drill job"),
    ]


def _exports(conn, now: datetime) -> list[Check]:
    """Exports count when they are proven (a checksum), masked or encrypted (no readable
    PHI in a file), and gone once old: an export's files left on disk past EXPORT_MAX_DAYS
    (or its configuration's retention_days) are PHI nobody is watching."""
    exports, configs = Export.__table__, ExportConfiguration.__table__
    recent = conn.execute(select(func.count()).select_from(exports)
                          .where(exports.c.created_at >= now - timedelta(days=90))).scalar_one()
    unfinished = conn.execute(select(func.count()).select_from(exports)
                              .where(exports.c.status == "succeeded", exports.c.sha256.is_(None))).scalar_one()
    unmasked_configs = conn.execute(select(func.count()).select_from(configs).where(
        configs.c.is_active.is_(True), configs.c.masking_profile != "masked")).scalar_one()
    rows = conn.execute(select(exports.c.filters, exports.c.created_at, exports.c.location, configs.c.retention_days)
                        .select_from(exports.outerjoin(configs, exports.c.configuration_id == configs.c.id))
                        .where(exports.c.status == "succeeded")).all()
    readable = sum(1 for r in rows if r.created_at >= now - timedelta(days=90)
                   and (r.filters or {}).get("masking_profile") != "masked" and not (r.filters or {}).get("encrypted"))
    left = sum(1 for r in rows if r.location and Path(r.location).exists()
               and now - r.created_at > timedelta(days=r.retention_days or EXPORT_MAX_DAYS))
    return [Check("exports", "every export has a checksum manifest", unfinished == 0,
                  {"exports_last_90_days": recent, "without_checksum": unfinished},
                  "164.312(c)(1) integrity", "re-run the export; an export without its SHA-256 cannot be proven"),
            Check("exports", "exports are masked by default, or encrypted when they are not",
                  unmasked_configs == 0 and readable == 0,
                  {"configurations_not_masked": unmasked_configs, "unmasked_unencrypted_last_90_days": readable},
                  "164.312(a)(2)(iv) encryption and decryption; 164.502(b) minimum necessary",
                  "mask export configurations; export full PHI only as an encrypted ZIP"),
            Check("exports", f"no export left on disk past its retention ({EXPORT_MAX_DAYS} days by default)",
                  left == 0, {"expired_exports_still_on_disk": left},
                  "164.310(d)(2)(i) disposal", "delete expired export directories (exports directory)")]


def _sync(settings: Settings, conn, now: datetime) -> list[Check]:
    """Sync proves itself by its passes: an active peer, each active peer's last pass
    succeeded within [sync] max_lag_minutes, no conflict left open past
    stale_conflict_hours, nothing waiting in quarantine."""
    peers, conflicts, quarantine = SyncPeer.__table__, SyncConflict.__table__, SyncQuarantine.__table__
    lag, stale_after = timedelta(minutes=settings.sync.max_lag_minutes), timedelta(hours=settings.sync.stale_conflict_hours)
    active = conn.execute(select(peers.c.name, peers.c.last_sync_at, peers.c.failures).where(
        outbound(), peers.c.is_active.is_(True)).order_by(peers.c.name)).all()
    behind = [p.name for p in active if p.failures or p.last_sync_at is None or p.last_sync_at < now - lag]
    stale = conn.execute(select(func.count()).select_from(conflicts).where(
        conflicts.c.status == "open", conflicts.c.created_at < now - stale_after)).scalar_one()
    held = conn.execute(select(func.count()).select_from(quarantine)
                        .where(quarantine.c.status == "open")).scalar_one()
    return [Check("sync", "at least one sync peer is active", bool(active), {"active_peers": len(active)},
                  "164.308(a)(7)(ii)(B) disaster recovery plan",
                  "resume a peer (`strongroom sync peer resume NAME`) or add one (`strongroom sync peer add`)"),
            Check("sync", f"the last pass with every active peer succeeded within {settings.sync.max_lag_minutes} "
                          "minutes", bool(active) and not behind,
                  {"active_peers": len(active), "peers_behind": behind,
                   "max_lag_minutes": settings.sync.max_lag_minutes},
                  "164.312(c)(1) integrity; 164.308(a)(7)(ii)(B) disaster recovery plan",
                  "run `strongroom sync run` and fix what fails (`strongroom sync status`)"),
            Check("sync", f"no sync conflict waits longer than {settings.sync.stale_conflict_hours} hours",
                  stale == 0, {"stale_conflicts": stale, "stale_conflict_hours": settings.sync.stale_conflict_hours},
                  "164.312(c)(1) integrity", "resolve conflicts (`strongroom sync conflicts`)"),
            Check("sync", "no row from a peer waits in quarantine", held == 0, {"quarantined_rows": held},
                  "164.312(c)(1) integrity",
                  "read the reasons (`strongroom sync quarantine`) and fix the sending site")]


def _audit(settings: Settings, conn, now: datetime) -> list[Check]:
    checks, users = IntegrityCheck.__table__, User.__table__
    last = conn.execute(select(checks).where(checks.c.check_type == "audit_chain")
                        .order_by(checks.c.started_at.desc()).limit(1)).mappings().first()
    verified_recently = (last is not None and is_ok(last["status"])
                         and now - last["started_at"] <= AUDIT_VERIFY_MAX_AGE)
    required = set(settings.auth.require_2fa_roles)
    # A 2FA reset leaves totp_enabled with no secret until the owner enrols: not a factor yet.
    admins_without_2fa = conn.execute(select(func.count()).select_from(users).where(
        users.c.deleted_at.is_(None), users.c.disabled.is_(False),
        or_(users.c.totp_enabled.is_(False), users.c.totp_secret_enc.is_(None)),
        users.c.role.in_([Role(r) for r in required if r in Role._value2member_map_])
    )).scalar_one()
    integrity_failed = conn.execute(select(func.count()).select_from(JobRun.__table__).where(
        JobRun.__table__.c.job_kind == "integrity", JobRun.__table__.c.status == JobStatus.FAILED,
        JobRun.__table__.c.queued_at >= now - timedelta(days=7))).scalar_one()
    return [
        Check("audit", "audit chain verified intact in the last 7 days", verified_recently,
              {"last_verification": last["started_at"].isoformat() if last else None,
               "result": last["status"] if last else None},
              "164.312(b) audit controls", "schedule the integrity job ([schedules] integrity = \"30 3 * * *\")"),
        Check("audit", "accounts that must use two factors do", admins_without_2fa == 0,
              {"accounts_missing_2fa": admins_without_2fa, "roles": sorted(required)},
              "164.312(d) person or entity authentication", "run `strongroom user reset-2fa USER` for each"),
        Check("audit", "sessions end after inactivity (30 minutes or less)",
              settings.auth.session_idle_minutes <= 30, {"session_idle_minutes": settings.auth.session_idle_minutes},
              "164.312(a)(2)(iii) automatic logoff", "set auth.session_idle_minutes to 30 or less"),
        Check("audit", "no failed integrity run in the last 7 days", integrity_failed == 0,
              {"failed_integrity_runs": integrity_failed}, "164.312(c)(1) integrity",
              "read the failed run's evidence (`strongroom jobs list --kind integrity`)"),
        _retention(settings, conn, now),
    ]


def _retention(settings: Settings, conn, now: datetime) -> Check:
    """The source's "automated retention policy enforcement": active policies, a
    schedule that applies them, and no erasure request left undecided past its window."""
    policies, requests, job_runs = RetentionPolicy.__table__, ErasureRequest.__table__, JobRun.__table__
    active = conn.execute(select(func.count()).select_from(policies)
                          .where(policies.c.active.is_(True))).scalar_one()
    overdue = conn.execute(select(func.count()).select_from(requests).where(
        requests.c.status == "pending", requests.c.expires_at < now)).scalar_one()
    last = conn.execute(select(func.max(job_runs.c.finished_at)).where(
        job_runs.c.job_kind == "retention", job_runs.c.status == JobStatus.SUCCEEDED)).scalar()
    return Check("audit", "records retention policies are enforced on a schedule",
                 active > 0 and "retention" in settings.schedules and overdue == 0,
                 {"active_policies": active, "schedule": settings.schedules.get("retention"),
                  "last_success": last.isoformat() if last else None, "erasure_requests_overdue": overdue},
                 "164.316(b)(2)(i) documentation time limit; 164.310(d)(2)(i) disposal",
                 "set policies (`strongroom retention policies --table T --archive-after N --delete-after M`), "
                 "schedule the job ([schedules] retention = \"0 4 * * *\") and decide pending erasure requests")


def _configured(settings: Settings, conn) -> dict[str, bool]:
    """Which areas have a feature to prove: sync needs a peer (a schedule with no peer
    has nothing to sync), exports an export made, configured or scheduled. The other
    areas are always in use."""
    peers, exports, configs = SyncPeer.__table__, Export.__table__, ExportConfiguration.__table__
    has_peer = conn.execute(select(func.count()).select_from(peers).where(outbound())).scalar_one()
    has_export = (conn.execute(select(func.count()).select_from(exports)).scalar_one()
                  + conn.execute(select(func.count()).select_from(configs)
                                 .where(configs.c.is_active.is_(True))).scalar_one())
    return {"sync": bool(has_peer),
            "exports": bool(has_export) or "export" in settings.schedules}


def _scheduled_jobs(settings: Settings, engine: Engine, conn, now: datetime) -> dict[str, Check]:
    """Per area: scheduled runs that failed within JOB_WINDOW, and schedules overdue now."""
    job_runs = JobRun.__table__
    failed = dict(conn.execute(select(job_runs.c.job_kind, func.count()).where(
        job_runs.c.trigger == "schedule", job_runs.c.status.in_([JobStatus.FAILED, JobStatus.INTERRUPTED]),
        job_runs.c.queued_at >= now - JOB_WINDOW).group_by(job_runs.c.job_kind)).all())
    missed: dict[str, int] = {}
    for miss in missed_runs(settings, engine, now=now - MISS_GRACE):
        missed[miss.kind] = missed.get(miss.kind, 0) + miss.count
    out = {}
    for area, kinds in AREA_JOBS.items():
        f = {k: failed[k] for k in kinds if failed.get(k)}
        m = {k: missed[k] for k in kinds if missed.get(k)}
        out[area] = Check(area, f"no failed or missed scheduled {area} job in the last 7 days", not f and not m,
                          {"failed": f, "missed": m, "kinds": list(kinds),
                           "scheduled": sorted(k for k in kinds if k in settings.schedules)},
                          "164.308(a)(7)(ii)(D) testing and revision procedures",
                          "read the failed runs (`strongroom jobs list --kind KIND`) and keep the daemon running")
    return out


def report(settings: Settings, engine: Engine, now: datetime | None = None) -> Report:
    """Run every check now. An area scores its weight times its pass share, less
    JOB_PENALTY per failed or missed scheduled job; an area whose feature is not
    configured scores 0 and says which points it forgoes."""
    now = now or utcnow()
    with engine.connect() as conn:
        checks = (_encryption(settings, conn) + _level(settings, conn) + _malware(settings, conn)
                  + _backups(settings, conn, now) + _exports(conn, now)
                  + _sync(settings, conn, now) + _audit(settings, conn, now))
        configured = _configured(settings, conn)
        jobs = _scheduled_jobs(settings, engine, conn, now)
    # Only an area with something scheduled has scheduled runs to account for.
    checks += [jobs[area] for area in WEIGHTS if configured.get(area, True) and jobs[area].evidence["scheduled"]]
    areas = {}
    total = 0.0
    for area, weight in WEIGHTS.items():
        if not configured.get(area, True):
            checks = [c for c in checks if c.area != area]
            areas[area] = {"weight": weight, "points": 0, "passed": 0, "checks": 0, "status": NOT_CONFIGURED,
                           "forgone": weight, "failed_or_missed_jobs": 0}
            continue
        mine = [c for c in checks if c.area == area]
        passed = sum(c.passed for c in mine)
        runs_lost = sum(jobs[area].evidence["failed"].values()) + sum(jobs[area].evidence["missed"].values())
        points = max(0.0, weight * passed / len(mine) - JOB_PENALTY * runs_lost)
        total += points
        areas[area] = {"weight": weight, "points": round(points, 1), "passed": passed, "checks": len(mine),
                       "status": "evidenced", "forgone": round(weight - points, 1),
                       "failed_or_missed_jobs": runs_lost}
    return Report(round(total), areas, checks)


HISTORY_DAYS = 90


def record_history(engine: Engine, result: Report) -> None:
    """Keep `result` as its UTC day's score (a later report of the same day replaces it)."""
    table = ComplianceScore.__table__
    day = result.generated_at.date().isoformat()
    areas = {a: {"points": v["points"], "status": v["status"]} for a, v in result.areas.items()}
    # One INSERT ... ON CONFLICT, not UPDATE-then-INSERT: the daemon's periodic look and a
    # user's `strongroom compliance` write the same day at once, and on PostgreSQL both
    # UPDATEs found no row and the second INSERT failed on the duplicate day.
    with transaction(engine) as conn:
        conn.execute(upsert(conn, table, ("day",)), [{"day": day, "score": result.score, "areas": areas,
                                                      "recorded_at": result.generated_at}])


def history(engine: Engine, days: int = HISTORY_DAYS) -> list[dict]:
    """The stored daily scores of the last `days` days, oldest first."""
    table = ComplianceScore.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.day, table.c.score).order_by(table.c.day.desc()).limit(days)).all()
    return [{"day": r.day, "score": r.score} for r in reversed(rows)]
