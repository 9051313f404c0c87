"""Control commands for exports: history, one export with its manifest, what may be
exported (for the console's form), and starting one.

History and details need `audit:read` (they show who exported what, when, and where the
files are; never the data). Starting an export needs `job:export:run`; `exports.run`
checks the request and the caller's permissions at once (as `exports.save` does
before it keeps a request as a named configuration), so a bad field or a missing
phi:read is an immediate error rather than a failed run, then seals the ZIP password
(if any) with the system key and queues an `export` run, which follows the same
progress events as any job. `job.run` with kind export works too, for exports without
a password.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from sqlalchemy import func, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Export, ExportConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError
from strongroom.core.export import spec
from strongroom.core.export.archive import MANIFEST, sha256_of
from strongroom.core.jobs import export as export_job
from strongroom.daemon.commands import Args, Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

KIND = "export"
_exports = Export.__table__
_configurations = ExportConfiguration.__table__


class ListArgs(Args):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=2 ** 31)
    status: Literal["running", "succeeded", "failed", "interrupted", "expired"] | None = None


@command("exports.list", permission="audit:read", args=ListArgs)
def list_cmd(d: "Daemon", call: Call) -> dict:
    """Export history, newest first, a page at a time (limit, offset; optional status)."""
    a: ListArgs = call.args
    query = select(_exports)
    counted = select(func.count()).select_from(_exports)
    if a.status:
        query = query.where(_exports.c.status == a.status)
        counted = counted.where(_exports.c.status == a.status)
    with transaction(d.ctx.engine, read_only=True) as conn:
        total = conn.execute(counted).scalar_one()
        rows = conn.execute(query.order_by(_exports.c.created_at.desc(), _exports.c.id)
                            .limit(a.limit).offset(a.offset)).mappings().all()
    return {"items": [dict(r) for r in rows], "total": total, "limit": a.limit, "offset": a.offset,
            "running": [job for job in d.runner.active() if job["kind"] == KIND]}


class ShowArgs(Args):
    export_id: uuid.UUID


@command("exports.show", permission="audit:read", args=ShowArgs)
def show_cmd(d: "Daemon", call: Call) -> dict:
    """One export with its manifest, and whether the manifest still matches its SHA-256."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_exports).where(_exports.c.id == call.args.export_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"export {call.args.export_id} does not exist")
    out: dict[str, Any] = {**dict(row), "manifest": None, "manifest_ok": None}
    if row["location"]:
        path = Path(row["location"]) / MANIFEST
        if path.is_file():
            out["manifest_ok"] = sha256_of(path) == row["sha256"]
            out["manifest"] = json.loads(path.read_text())
        else:
            out["manifest_ok"] = False
    return out


@command("exports.tables", permission=None)
def tables_cmd(d: "Daemon", call: Call) -> dict:
    """The tables and fields one may export, formats, masking profiles, saved configurations."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        saved = conn.execute(select(_configurations.c.name, _configurations.c.format,
                                    _configurations.c.masking_profile, _configurations.c.encryption_enabled)
                             .where(_configurations.c.is_active.is_(True))
                             .order_by(_configurations.c.name)).mappings().all()
    return {"tables": spec.catalogue(), "formats": list(spec.FORMATS), "masking_profiles": list(spec.MASKING_PROFILES),
            "configurations": [dict(r) for r in saved], "min_password": spec.MIN_PASSWORD,
            "retention_days": d.ctx.settings.export.retention_days,
            "max_per_hour": d.ctx.settings.export.max_per_hour}


class RunArgs(Args):
    tables: list[str] | str | None = None
    fields: dict[str, list[str] | str] = Field(default_factory=dict)
    filters: dict[str, str] = Field(default_factory=dict)
    format: str | None = Field(default=None, max_length=16)
    masking: str = Field(default="masked", max_length=16)
    encrypt: bool = False
    password: str | None = Field(default=None, max_length=1024)
    configuration: str | None = Field(default=None, max_length=120)
    bom: bool = Field(default=False, description="CSV only: a UTF-8 byte order mark first, for spreadsheets.")


@command("exports.run", permission="job:export:run", args=RunArgs)
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
    if "range" in request.filters:
        # A relative range covers the period it meant when it was asked for, however
        # long the run waits in the queue.
        params["as_of"] = submitted.isoformat()
    run = d.submit_if_leader(KIND, trigger="manual", params=params, requested_by=call.principal.actor)
    return run.as_dict()


class SaveArgs(Args):
    name: str = Field(min_length=1, max_length=63)
    tables: list[str] | str
    fields: dict[str, list[str] | str] = Field(default_factory=dict)
    filters: dict[str, str] = Field(default_factory=dict)
    format: str = Field(max_length=16)
    masking: str = Field(default="masked", max_length=16)
    encrypt: bool = False
    retention_days: int | None = Field(default=None, description="Days its exports' files are kept (1-3650; "
                                                                 "default [export] retention_days).")
    schedule: str | None = Field(default=None, max_length=120,
                                 description="crontab(5) expression (UTC): the daemon runs it then.")
    password_credential: str | None = Field(default=None, max_length=64, description=(
        "Encrypted and scheduled: the systemd credential holding its ZIP password."))


@command("exports.save", permission="job:export:run", args=SaveArgs)
def save_cmd(d: "Daemon", call: Call) -> dict:
    """Save an export request as a named configuration (checked now; run it with
    exports.run configuration=NAME). An encrypted one asks for its password at each run."""
    a: SaveArgs = call.args
    return export_job.save_configuration(d.ctx, a.name, a.model_dump(exclude={"name"}), call.principal)


class ConfigureArgs(Args):
    name: str = Field(min_length=1, max_length=63)
    schedule: str | None = Field(default=None, max_length=120,
                                 description='crontab(5) expression (UTC); "" runs it by hand only.')
    password_credential: str | None = Field(default=None, max_length=64, description=(
        'The systemd credential holding its ZIP password; "" clears it.'))
    retention_days: int | str | None = Field(default=None, description=(
        'Days its exports are kept (1-3650); "" takes [export] retention_days.'))


@command("exports.configure", permission="job:export:run", args=ConfigureArgs)
def configure_cmd(d: "Daemon", call: Call) -> dict:
    """Change a saved configuration's schedule, password credential or retention (only
    the arguments given; an empty string clears one). Its next export time is counted
    from now."""
    a: ConfigureArgs = call.args
    changes = a.model_dump(exclude={"name"}, exclude_none=True)
    return export_job.update_configuration(d.ctx, a.name, changes, call.principal)


@command("exports.configurations", permission="audit:read")
def configurations_cmd(d: "Daemon", call: Call) -> dict:
    """Saved export configurations with their schedule, next export time, password source
    and retention (never a password)."""
    return {"items": export_job.list_configurations(d.ctx),
            "retention_days": d.ctx.settings.export.retention_days}
