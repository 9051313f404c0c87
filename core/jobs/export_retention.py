"""Export retention: an export's files leave the export directory once its retention
period has passed, so full-PHI files do not stay in `exports/` for ever.

The period is its saved configuration's `retention_days` when it was run from one that
sets it, else `[export] retention_days` (default 30), counted from when the export
finished. An export some legal hold in force may reach is kept, and reported as held.
Which clients an export covers comes from its record (`exports.filters`, the same
filters its manifest carries): a `client_id` filter means that client; otherwise every
client of its `practice_id`, or of every practice. That errs on keeping: a hold on any
client the export may hold keeps the whole export, whatever its date or status filters
left out.

Deletion removes the export's directory (unlink, not overwrite first): on the
journalled, copy-on-write and flash filesystems Strongroom runs on, an overwrite in
place does not reach the blocks that held the data, so it would add I/O and no
protection (the same reasoning as core.jobs.export.reconcile_interrupted). What protects
the content is a short retention, encrypted ZIPs, and the disk encryption below. Each
deletion is one audited DELETE (the export id, its age and period; no values), and the
export's record stays with status `expired` and no location. A directory that is
already gone is recorded the same way; one that cannot be removed is counted as failed
and left `succeeded`, to be tried again on the next run.
"""
from __future__ import annotations

import logging
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, Export, ExportConfiguration, LegalHold
from strongroom.core.db.types import utcnow
from strongroom.core.jobs import kinds
from strongroom.core.jobs.export import export_directory

log = logging.getLogger(__name__)

EXPIRED = "expired"
_exports = Export.__table__
_configurations = ExportConfiguration.__table__
_holds = LegalHold.__table__
_clients = Client.__table__


def _periods(conn, default: int) -> dict[uuid.UUID | None, int]:
    """Retention days by configuration id (None: exports run without one)."""
    periods: dict[uuid.UUID | None, int] = {None: default}
    for row in conn.execute(select(_configurations.c.id, _configurations.c.retention_days)):
        periods[row.id] = row.retention_days or default
    return periods


def covering_hold(conn, filters: dict) -> uuid.UUID | None:
    """A legal hold in force that may reach a client this export covers (see the module
    docstring), or None."""
    client = _uuid(filters.get("client_id"))
    practice = _uuid(filters.get("practice_id"))
    query = select(_holds.c.id, _holds.c.practice_id, _holds.c.client_id).where(_holds.c.released_at.is_(None))
    if client is not None and practice is None:
        practice = conn.execute(select(_clients.c.practice_id).where(_clients.c.id == client)).scalar()
    for hold in conn.execute(query.order_by(_holds.c.created_at)):
        if practice is not None and hold.practice_id != practice:
            continue
        if client is not None and hold.client_id not in (None, client):
            continue
        return hold.id
    return None


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Delete the files of every export past its retention period (with dry_run, only
    list them); returns counts and, per export, what happened."""
    options = kinds.parse("export_retention", params)
    now = utcnow()
    root = export_directory(ctx.settings)
    with transaction(ctx.engine, read_only=True) as conn:
        periods = _periods(conn, ctx.settings.export.retention_days)
        candidates = conn.execute(select(_exports.c.id, _exports.c.configuration_id, _exports.c.location,
                                         _exports.c.filters, _exports.c.created_at, _exports.c.finished_at)
                                  .where(_exports.c.status == "succeeded")
                                  .order_by(_exports.c.created_at)).all()
    due = [(row, periods.get(row.configuration_id, periods[None])) for row in candidates]
    due = [(row, days) for row, days in due if (row.finished_at or row.created_at) + timedelta(days=days) <= now]
    result: dict[str, Any] = {"dry_run": options.dry_run, "checked": len(candidates), "due": len(due),
                              "deleted": 0, "held": 0, "failed": 0, "exports": []}
    progress(0, len(due), "checking exports past their retention")
    for done, (row, days) in enumerate(due, 1):
        outcome = _expire(ctx, row, days, root, now, options.dry_run)
        result[outcome] = result.get(outcome, 0) + 1
        result["exports"].append({"export_id": str(row.id), "retention_days": days, "outcome": outcome})
        progress(done, len(due), f"{done} of {len(due)} exports")
    return result


def _expire(ctx: Context, row, days: int, root: Path, now: datetime, dry_run: bool) -> str:
    """One due export: 'held', 'deleted' (or 'would_delete' in a dry run) or 'failed'."""
    age_days = (now - (row.finished_at or row.created_at)).days
    with transaction(ctx.engine) as conn:
        hold = covering_hold(conn, row.filters or {})
        if hold is not None:
            return "held"
        if dry_run:
            return "would_delete"
        path = _directory(root, row.location)
        existed = path is not None and path.is_dir()
        if existed:
            try:
                shutil.rmtree(path)
            except OSError as exc:
                log.error("export retention: could not remove an expired export's files",
                          extra={"export_id": str(row.id), "error": exc.strerror or type(exc).__name__})
                return "failed"
        conn.execute(update(_exports).where(_exports.c.id == row.id, _exports.c.status == "succeeded")
                     .values(status=EXPIRED, location=None))
        audit.append(conn, actor="system", action="DELETE", table_name="exports", record_id=row.id,
                     details={"event": "export_expired", "retention_days": days, "age_days": age_days,
                              "files_removed": existed})
    return "deleted"


def _directory(root: Path, location: str | None) -> Path | None:
    """The export's directory, only if it lies directly in the export directory: a
    record is never a way to delete anything else."""
    if not location:
        return None
    path = Path(location)
    if path.parent.resolve() != root.resolve() or path.is_symlink():
        return None
    return path
