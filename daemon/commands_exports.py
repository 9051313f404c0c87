"""Control commands for exports: history, one export with its manifest, what may be
exported (for the console's form), and starting one.

History and details need `audit:read` (they show who exported what, when, and where the
files are; never the data). Starting an export needs `job:export:run`; `export.run`
checks the request and the caller's permissions at once (as `export.configuration.create` does
before it keeps a request as a named configuration), so a bad field or a missing
phi:read is an immediate error rather than a failed run, then seals the ZIP password
(if any) with the system key and queues an `export` run, which follows the same
progress events as any job. `job.run` with kind export works too, for exports without
a password.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Export, ExportConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError
from strongroom.core.export import spec
from strongroom.core.export.archive import MANIFEST, sha256_of
from strongroom.core.jobs import export as export_job

from strongroom.core.protocol.models.jobs import JobRun
from strongroom.core.protocol.models.exports import ConfigureArgs, ExportCatalogue, ExportPage, ExportShown, ListArgs, RunArgs, SaveArgs, SavedConfiguration, SavedConfigurationPage, ShowArgs
from strongroom.daemon import tenancy
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

KIND = "export"
_exports = Export.__table__
_configurations = ExportConfiguration.__table__


@command("export.list", permission="audit:read", args=ListArgs, result=ExportPage)
def list_cmd(d: "Daemon", call: Call) -> dict:
    """Export history, newest first, a page at a time (limit, offset; optional status).
    A caller bound to one practice of several sees its practice's exports only."""
    a: ListArgs = call.args
    query = select(_exports)
    counted = select(func.count()).select_from(_exports)
    if a.status:
        query = query.where(_exports.c.status == a.status)
        counted = counted.where(_exports.c.status == a.status)
    query = query.order_by(_exports.c.created_at.desc(), _exports.c.id)
    running = [job for job in d.runner.active() if job["kind"] == KIND]
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
        if practice is None:
            total = conn.execute(counted).scalar_one()
            rows = conn.execute(query.limit(a.limit).offset(a.offset)).mappings().all()
        else:
            # Narrowed: an export is its practice's by its filters (a practice or a client
            # named). The history is short (exports are kept export_retention days), so
            # it is filtered here and paged after.
            mine = [r for r in conn.execute(query).mappings() if tenancy.export_shown(conn, practice, r["filters"])]
            total, rows = len(mine), mine[a.offset:a.offset + a.limit]
            running = [job for job in running
                       if tenancy.practices_named(conn, job.get("params")) == {practice}]
    return {"items": [dict(r) for r in rows], "total": total, "limit": a.limit, "offset": a.offset,
            "running": running}


@command("export.show", permission="audit:read", args=ShowArgs, result=ExportShown)
def show_cmd(d: "Daemon", call: Call) -> dict:
    """One export with its manifest, and whether the manifest still matches its SHA-256."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_exports).where(_exports.c.id == call.args.export_id)).mappings().first()
        practice = tenancy.narrowed_to(conn, call.principal)
        foreign = row is not None and not tenancy.export_shown(conn, practice, row["filters"])
    if row is None or foreign:       # another practice's: the very answer a missing one gets
        raise NotFoundError("export_id: no such export")
    out: dict[str, Any] = {**dict(row), "manifest": None, "manifest_ok": None}
    if row["location"]:
        path = Path(row["location"]) / MANIFEST
        if path.is_file():
            out["manifest_ok"] = sha256_of(path) == row["sha256"]
            out["manifest"] = json.loads(path.read_text())
        else:
            out["manifest_ok"] = False
    return out


@command("export.table.list", permission=None, result=ExportCatalogue)
def tables_cmd(d: "Daemon", call: Call) -> dict:
    """The tables and fields one may export, formats, masking profiles, relative ranges,
    status filters with their values, saved configurations."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        saved = conn.execute(select(_configurations.c.name, _configurations.c.format,
                                    _configurations.c.masking_profile, _configurations.c.encryption_enabled,
                                    _configurations.c.schedule, _configurations.c.filters)
                             .where(_configurations.c.is_active.is_(True))
                             .order_by(_configurations.c.name)).mappings().all()
        practice = tenancy.narrowed_to(conn, call.principal)
        saved = [{k: v for k, v in r.items() if k != "filters"} for r in saved
                 if tenancy.export_shown(conn, practice, r["filters"])]
    return {"tables": spec.catalogue(), "formats": list(spec.FORMATS), "masking_profiles": list(spec.MASKING_PROFILES),
            "ranges": list(spec.RANGES), "status_filters": spec.status_filters(),
            "configurations": saved, "min_password": spec.MIN_PASSWORD,
            "retention_days": d.ctx.settings.export.retention_days,
            "max_per_hour": d.ctx.settings.export.max_per_hour}


@command("export.run", permission="job:export:run", args=RunArgs, result=JobRun)
def run_cmd(d: "Daemon", call: Call) -> dict:
    """Check an export request and start it (ad hoc, or a saved configuration by name);
    returns the run, like job.run. The ZIP password is sealed, never stored in clear.
    A relative range (filters.range) is resolved in the practice's time zone as of now."""
    a: RunArgs = call.args
    params = a.model_dump(exclude={"password"}, exclude_none=True)
    if a.password is not None:
        params["password_sealed"] = export_job.seal_password(d.ctx, a.password)
    submitted = utcnow()
    request = export_job.build_request(d.ctx, params, now=submitted)
    export_job.authorize(call.principal, request)
    tenancy.check_export(d.ctx.engine, call.principal, request.filters)
    if "range" in request.filters:
        # A relative range covers the period it meant when it was asked for, however
        # long the run waits in the queue.
        params["as_of"] = submitted.isoformat()
    run = d.submit_if_leader(KIND, trigger="manual", params=params, requested_by=call.principal.actor)
    return run.as_dict()


@command("export.configuration.create", permission="job:export:run", args=SaveArgs, result=SavedConfiguration)
def save_cmd(d: "Daemon", call: Call) -> dict:
    """Save an export request as a named configuration (checked now; run it with
    export.run configuration=NAME). An encrypted one asks for its password at each run."""
    a: SaveArgs = call.args
    tenancy.check_export(d.ctx.engine, call.principal, dict(a.filters or {}))
    return export_job.save_configuration(d.ctx, a.name, a.model_dump(exclude={"name"}), call.principal)


@command("export.configuration.set", permission="job:export:run", args=ConfigureArgs, result=SavedConfiguration)
def configure_cmd(d: "Daemon", call: Call) -> dict:
    """Change a saved configuration's schedule, password credential or retention (only
    the arguments given; an empty string clears one). Its next export time is counted
    from now."""
    a: ConfigureArgs = call.args
    changes = a.model_dump(exclude={"name"}, exclude_none=True)
    with transaction(d.ctx.engine, read_only=True) as conn:
        if not _configuration_shown(conn, tenancy.narrowed_to(conn, call.principal), a.name):
            raise NotFoundError("export configuration: none active by that name")   # as for a missing one
    return export_job.update_configuration(d.ctx, a.name, changes, call.principal)


@command("export.configuration.list", permission="audit:read", result=SavedConfigurationPage)
def configurations_cmd(d: "Daemon", call: Call) -> dict:
    """Saved export configurations with their schedule, next export time, password source
    and retention (never a password)."""
    items = export_job.list_configurations(d.ctx)
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
        items = [c for c in items if tenancy.export_shown(conn, practice, c["filters"])]
    return {"items": items, "retention_days": d.ctx.settings.export.retention_days}


def _configuration_shown(conn, practice, name: str) -> bool:
    """Whether a caller narrowed to `practice` (None: not narrowed) may see or change the
    saved configuration `name`: one whose filters name their practice (or a client of it)."""
    if practice is None:
        return True
    filters = conn.execute(select(_configurations.c.filters).where(_configurations.c.name == name)).scalar()
    return filters is not None and tenancy.export_shown(conn, practice, filters)
