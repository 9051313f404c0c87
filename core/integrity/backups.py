"""Backups: per configuration, a recent snapshot, verified and restore-drilled lately.

A backup nobody has read back is a hope, not a backup. For every active backup
configuration (and snapshots that belong to none), the newest succeeded snapshot must
be younger than `verified_days`, some snapshot of it verified within `verified_days`,
and one restore-drilled within `drilled_days` (core/config.py IntegritySettings). Each
finding also gives the client files the newest snapshot carries (count, bytes), and
warns when it lacked some live file's content. A
configuration younger than a window gets a warning for what it cannot have done yet
(a new install has no drill); after that, a failure. No configuration and no snapshot
at all is a warning: nothing is configured to prove.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from strongroom.core.context import Context
from strongroom.core.db.models import Backup, BackupConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.integrity import FAIL, OK, WARN, record, worst

_backups, _configs = Backup.__table__, BackupConfiguration.__table__


def _age_days(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round((now - then).total_seconds() / 86400, 2)


def _judge(snap: dict | None, now: datetime, verified: timedelta, drilled: timedelta,
           created: datetime | None) -> tuple[str, list[str]]:
    """The status of one configuration's proof and what is missing from it. A
    configuration younger than a window has not yet had the chance to fill it: what is
    missing within that grace is a warning, after it a failure."""
    age = None if created is None else now - created

    def severity(window: timedelta) -> str:
        return WARN if age is not None and age < window else FAIL

    if snap is None or snap["newest"] is None:
        return severity(verified), ["no snapshot"]
    status, problems = OK, []
    if now - snap["newest"] > verified:
        status, problems = worst(status, severity(verified)), problems + ["newest snapshot is stale"]
    if snap["verified"] is None or now - snap["verified"] > verified:
        status, problems = worst(status, severity(verified)), problems + ["not verified recently"]
    if snap["drilled"] is None or now - snap["drilled"] > drilled:
        status, problems = worst(status, severity(drilled)), problems + ["not restore-drilled recently"]
    return status, problems


def check_backups(ctx: Context, progress, *, now: datetime | None = None) -> dict:
    """One finding per backup configuration; fails if any configuration's proof is stale."""
    started = utcnow()
    now = now or started
    settings = ctx.settings.integrity
    verified, drilled = timedelta(days=settings.backup_verified_days), timedelta(days=settings.backup_drilled_days)
    with ctx.engine.connect() as conn:
        configs = {row.id: row for row in conn.execute(
            select(_configs.c.id, _configs.c.name, _configs.c.created_at).where(_configs.c.is_active.is_(True)))}
        snaps = {row.configuration_id: dict(row._mapping) for row in conn.execute(
            select(_backups.c.configuration_id, func.max(_backups.c.finished_at).label("newest"),
                   func.max(_backups.c.verified_at).label("verified"),
                   func.max(_backups.c.drilled_at).label("drilled"))
            .where(_backups.c.status == "succeeded").group_by(_backups.c.configuration_id))}
        # The client files the newest snapshot of each configuration carries.
        newest_files: dict = {}
        for row in conn.execute(select(_backups.c.configuration_id, _backups.c.file_count, _backups.c.file_bytes,
                                       _backups.c.files_missing).where(_backups.c.status == "succeeded")
                                .order_by(_backups.c.finished_at, _backups.c.id)):
            newest_files[row.configuration_id] = row
    progress(1, 1, "backups")
    status, findings = OK, {}
    for config_id in sorted(set(configs) | set(snaps), key=str):
        snap, config = snaps.get(config_id), configs.get(config_id)
        here, problems = _judge(snap, now, verified, drilled, config.created_at if config else None)
        files = newest_files.get(config_id)
        if files is not None and files.files_missing:
            # Live file rows whose content was gone when the snapshot read it: the
            # snapshot cannot restore them (the orphans check names the files).
            here, problems = worst(here, WARN), problems + [f"newest snapshot lacks {files.files_missing} file(s)' content"]
        status = worst(status, here)
        findings[config.name if config else str(config_id)] = {
            "status": here, "problems": problems,
            "newest_age_days": _age_days(snap and snap["newest"], now),
            "verified_age_days": _age_days(snap and snap["verified"], now),
            "drilled_age_days": _age_days(snap and snap["drilled"], now),
            "files": None if files is None or files.file_count is None else
            {"count": files.file_count, "bytes": files.file_bytes, "missing": files.files_missing}}
    if not findings:
        status = WARN
    bad = sum(1 for f in findings.values() if f["status"] == FAIL)
    return record(ctx, "backups", "backups verified and drilled", "backups", status,
                  f"verified within {settings.backup_verified_days} d, drilled within "
                  f"{settings.backup_drilled_days} d",
                  "no backup configured" if not findings else f"{bad} of {len(findings)} configurations unproven",
                  {"configurations": len(findings), "unproven": bad,
                   "verified_days": settings.backup_verified_days, "drilled_days": settings.backup_drilled_days,
                   "findings": findings}, started)
