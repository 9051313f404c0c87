"""Export job: chosen tables and fields, filtered, in CSV, NDJSON, JSON, XML or a PDF
report, optionally inside an AES-256 ZIP, with a SHA-256 manifest.

The request is checked whole before anything is written (unknown table or field, bad
date, unknown format, a ZIP without a password, an unwritable directory: each a
ValidationError naming what was wrong). The requester is the run's actor, resolved to
their current permissions here, not taken from the request: exporting a table needs
`table:<name>:read`; PHI leaves in full only with `phi:read` and the masking profile
"full", masked otherwise (core.masking). Rows stream in batches from the repository
layer into the files, so memory does not grow with the table. The export is recorded
in `exports` (running, then succeeded or failed) and audited once as EXPORT with its
row counts, never values.

A crash cannot leave readable PHI behind: unfinished files are ciphertext under a key
held only in memory (core.export.archive, core.export.spool). When a daemon becomes
leader it reconciles what a crash left (`reconcile_interrupted`): exports still
`running` become `interrupted` (their job runs too, core.jobs.runs), their directories
are removed, and each is audited. An interrupted export does not count against its
requester's hourly limit: they did not get it.

An encrypted ZIP's password never reaches the database: the daemon seals it with the
system key (`seal_password`) before the run is queued, and only the sealed form is in
the run's parameters.

A saved configuration may carry a crontab(5) `schedule`: its `next_export_at` is kept
in the database, and the daemon's scheduler runs every configuration whose time has
come (`due_configurations`, `claim_run`), with `scheduled` set, as the configuration's
owner (`created_by`, with the owner's permissions at run time; the system for one saved
before owners were recorded); a run
missed while the daemon was down runs once when it is back, and the next time is
counted from then, so a long outage never becomes a burst. An encrypted scheduled
export takes its ZIP password from the systemd credential the configuration names
(`password_credential`, read from $CREDENTIALS_DIRECTORY at run time, never from the
config file or the database); a missing or short credential fails the run before
anything is written, and the failed run is audited. Finished exports leave the export
directory after their retention period (core.jobs.export_retention).
"""
from __future__ import annotations

import base64
import functools
import logging
import mimetypes
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update

from strongroom.core import audit
from strongroom.core.auth import rbac
from strongroom.core.auth.users import get_user
from strongroom.core.bulk import collector_paused
from strongroom.core.config import Settings
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Export, ExportConfiguration, Practice, Role
from strongroom.core.db.types import utcnow
from strongroom.core.errors import (ConflictError, CryptoError, NotFoundError, PermissionDenied, RateLimitedError,
                                    StrongroomError, ValidationError)
from strongroom.core.export import csvdoc, jsondoc, pdfdoc, spec, xmldoc
from strongroom.core.export.archive import Output, check_directory
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.schedule import next_fire_time, validate as validate_cron
from strongroom.core.repository.records import MODELS, require_read, stream_columns

log = logging.getLogger(__name__)

KIND = "export"
INTERRUPTED = "interrupted"
_exports = Export.__table__
_configurations = ExportConfiguration.__table__
_PASSWORD_AAD = b"strongroom/export-zip-password/v1"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# A systemd credential's name (LoadCredential=NAME:..., SetCredentialEncrypted=NAME:...).
_CREDENTIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# format -> the module (or class) writing it: its Document, EXTENSION, PER_TABLE, TEXT.
DOCUMENTS = {"csv": csvdoc, "ndjson": jsondoc.NdjsonDocument, "json": jsondoc.JsonDocument, "xml": xmldoc,
             "pdf": pdfdoc}


@dataclass(frozen=True)
class Request:
    tables: dict[str, tuple[str, ...]]
    filters: dict
    format: str
    masking: str
    encrypt: bool
    password: bytes | None
    configuration: dict | None = None    # {"id", "name"} when run by name
    bom: bool = False                    # CSV only: a UTF-8 byte order mark first
    files: bool = False                  # the listed client files' content too (_write_files)


    def describe(self) -> dict:
        """What the exports row and the manifest record (no password, no values)."""
        return {**self.filters, "tables": {t: list(f) for t, f in self.tables.items()},
                "masking_profile": self.masking, "encrypted": self.encrypt,
                **({"configuration": self.configuration["name"]} if self.configuration else {}),
                **({"bom": True} if self.bom else {}), **({"files": True} if self.files else {})}


# --- the password of an encrypted ZIP ---------------------------------------------------

def seal_password(ctx: Context, password: str) -> str:
    """The ZIP password sealed with the system key (base64), for a run's parameters."""
    _check_password(password)
    with transaction(ctx.engine) as conn:
        blob = ctx.keyring.system_cipher(conn).encrypt(password.encode(), _PASSWORD_AAD)
    return base64.b64encode(blob).decode()


def _check_password(password: object) -> None:
    if not isinstance(password, str) or len(password) < spec.MIN_PASSWORD:
        raise ValidationError(f"export: an encrypted ZIP needs a password of at least {spec.MIN_PASSWORD} characters")


def _unseal(ctx: Context, sealed: str) -> bytes:
    try:
        blob = base64.b64decode(sealed, validate=True)
        with transaction(ctx.engine, read_only=True) as conn:
            return ctx.keyring.system_cipher(conn).decrypt(blob, _PASSWORD_AAD, where="export password")
    except (ValueError, CryptoError):
        raise ValidationError("export: the sealed ZIP password does not open with this system key") from None


# --- the request --------------------------------------------------------------------------

def _truthy(value: object) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def _configuration(ctx: Context, name: str) -> dict:
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_configurations).where(_configurations.c.name == name)).mappings().first()
    if row is None or not row["is_active"]:
        raise NotFoundError("export configuration: none active by that name")
    tables: dict[str, list[str]] = {}
    for item in row["fields"] or []:
        table, _, field = str(item).partition(".")
        tables.setdefault(table, [])
        if field:
            tables[table].append(field)
    return {"id": row["id"], "name": row["name"], "tables": list(tables),
            "fields": {t: f for t, f in tables.items() if f}, "filters": row["filters"] or {},
            "format": row["format"], "masking": row["masking_profile"], "encrypt": row["encryption_enabled"],
            "password_credential": row["password_credential"], "created_by": row["created_by"]}


def build_request(ctx: Context, params: dict, *, now: datetime | None = None) -> Request:
    """Check every parameter; raises ValidationError (or NotFoundError for an unknown
    configuration) naming the first problem. Nothing is written. A relative range is
    resolved at `now`, else at the run's `as_of` (export.run sets it when the export is
    submitted), else now."""
    configuration = None
    if params.get("configuration"):
        configuration = _configuration(ctx, str(params["configuration"]))
        params = {**configuration, **{k: params[k] for k in ("password_sealed", "actor", "as_of", "bom",
                                                             "scheduled", "files") if k in params}}
    tables = spec.check_tables(params.get("tables"), params.get("fields"))
    filters = spec.check_filters(params.get("filters"), tables)
    if "range" in filters:
        filters = spec.resolve_range(filters, now or _as_of(params.get("as_of")), _zone(ctx, filters))
    fmt = spec.check_format(params.get("format"))
    masking = spec.check_masking(params.get("masking"))
    encrypt = _truthy(params.get("encrypt"))
    bom = _truthy(params.get("bom"))
    if bom and fmt != "csv":
        raise ValidationError("export: bom applies to the csv format only")
    files = _truthy(params.get("files"))
    if files and "client_files" not in tables:
        raise ValidationError("export: files (the client files' content) needs the client_files table "
                              "in the export, which lists each file's id and name")
    if files and not encrypt:
        raise ValidationError("export: files (the client files' content) go only into an encrypted ZIP: "
                              "set encrypt and a password")
    if files and masking != "full":
        raise ValidationError("export: files (the client files' content) cannot be masked; it needs masking full")
    password = None
    if encrypt and configuration is not None and _truthy(params.get("scheduled")):
        password = credential_password(configuration["password_credential"])
    elif encrypt:
        if not params.get("password_sealed"):
            raise ValidationError("export: an encrypted ZIP needs a password (export.run seals it for the run)")
        password = _unseal(ctx, str(params["password_sealed"]))
        _check_password(password.decode(errors="replace"))
    return Request(tables, filters, fmt, masking, encrypt, password,
                   None if configuration is None else {"id": configuration["id"], "name": configuration["name"],
                                                       "created_by": configuration["created_by"]},
                   bom, files)


def _requester(params: dict, request: Request) -> str:
    """Who the export is for: the run's actor, except that a scheduled run of a saved
    configuration (queued by the daemon, so its actor is the system) exports as the
    configuration's owner, checked against the owner's permissions at run time; a
    schedule saved before owners were recorded still runs as the system. A person who
    submits a run with `scheduled` set is still themself: only the system's runs act
    for an owner."""
    actor = str(params.get("actor") or "system")
    owner = (request.configuration or {}).get("created_by")
    if actor == "system" and owner and _truthy(params.get("scheduled")):
        return str(owner)
    return actor


def _as_of(value: object) -> datetime:
    if value in (None, ""):
        return utcnow()
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError("export: as_of is not an ISO datetime") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _zone(ctx: Context, filters: dict) -> ZoneInfo:
    """The time zone a relative range is read in: the filtered practice's, or the one
    every live practice shares; practices in different zones must be told apart."""
    table = Practice.__table__
    query = select(table.c.timezone).where(table.c.deleted_at.is_(None)).distinct()
    if "practice_id" in filters:
        query = query.where(table.c.id == uuid.UUID(filters["practice_id"]))
    with transaction(ctx.engine, read_only=True) as conn:
        zones = list(conn.execute(query).scalars())
    if len(zones) > 1:
        raise ValidationError("export: filter range: the practices are in different time zones; "
                              "name one with practice_id")
    return spec.check_zone(zones[0] if zones else "UTC")


def save_configuration(ctx: Context, name: str, params: dict, principal: Principal) -> dict:
    """Save an export request under `name`, checked (and the saver's permissions) as a
    run would check them, to be run by name later. No password is kept: an encrypted
    one asks for it at each run."""
    if not _NAME.match(name or ""):
        raise ValidationError("export: a configuration name is 1-63 of a-z 0-9 _ -, starting with a letter or digit")
    tables = spec.check_tables(params.get("tables"), params.get("fields"))
    masking = spec.check_masking(params.get("masking"))
    check_access(principal, tables, masking)
    retention = check_retention_days(params.get("retention_days"))
    encrypt = _truthy(params.get("encrypt"))
    timing = _schedule_of(params.get("schedule"), params.get("password_credential"), encrypt)
    row = {"id": uuid.uuid4(), "name": name, "format": spec.check_format(params.get("format")), "retention_days": retention,
           **timing,
           "filters": spec.check_filters(params.get("filters"), tables), "masking_profile": masking,
           "encryption_enabled": encrypt, "is_active": True, "created_at": utcnow(),
           "created_by": principal.actor[:120],
           "fields": [f"{table}.{field}" for table, fields in tables.items() for field in fields]}
    with transaction(ctx.engine) as conn:
        if conn.execute(select(_configurations.c.id).where(_configurations.c.name == name)).first():
            raise ConflictError("export configuration: one by that name already exists")
        conn.execute(insert(_configurations), [row])
        audit.append(conn, actor=principal.actor, action="CONFIG", table_name="export_configurations", record_id=row["id"],
                     details={"event": "export_configuration_saved", "name": name, "format": row["format"],
                              "tables": list(tables), "masking_profile": row["masking_profile"],
                              "retention_days": retention, "schedule": timing["schedule"],
                              "password_credential": timing["password_credential"]})
    return {k: row[k] for k in _SHOWN}


_SHOWN = ("id", "name", "format", "filters", "fields", "masking_profile", "encryption_enabled", "retention_days",
          "schedule", "next_export_at", "password_credential", "created_by")


def check_schedule(value: object) -> str | None:
    """A configuration's crontab(5) schedule, normalised (None: run by hand only)."""
    if value in (None, ""):
        return None
    try:
        return validate_cron(str(value))
    except ValueError:
        raise ValidationError("export: schedule is not a crontab(5) expression (five fields: minute hour "
                              "day-of-month month weekday, or a nickname such as @daily)") from None


def check_credential(value: object) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _CREDENTIAL.match(value):
        raise ValidationError("export: password_credential is not a systemd credential name "
                              "(1-64 of A-Z a-z 0-9 _ . -)")
    return value


def _schedule_of(schedule: object, credential: object, encrypt: bool, now: datetime | None = None) -> dict:
    """schedule, password_credential and next_export_at for a configuration, checked
    together: a scheduled encrypted export needs a credential for its password, and a
    credential is only for an encrypted one."""
    schedule, credential = check_schedule(schedule), check_credential(credential)
    if credential and not encrypt:
        raise ValidationError("export: password_credential applies to an encrypted configuration only")
    if schedule and encrypt and not credential:
        raise ValidationError("export: a scheduled encrypted export needs password_credential (a systemd "
                              "credential holding its ZIP password; it is never kept in the config or database)")
    return {"schedule": schedule, "password_credential": credential,
            "next_export_at": next_fire_time(schedule, now or utcnow()) if schedule else None}


def update_configuration(ctx: Context, name: str, changes: dict, principal: Principal) -> dict:
    """Change a saved configuration's schedule, password_credential or retention_days
    (those keys present in `changes`; an empty value clears one). Checked whole, then
    written in one transaction and audited; the next export time is counted from now."""
    unknown = set(changes) - {"schedule", "password_credential", "retention_days"}
    if unknown:
        raise ValidationError(f"export: {len(unknown)} unknown setting(s) (known: schedule, password_credential, "
                              "retention_days)")
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(_configurations).where(_configurations.c.name == name)
                           .with_for_update()).mappings().first()
        if row is None or not row["is_active"]:
            raise NotFoundError("export configuration: none active by that name")
        merged = {"schedule": row["schedule"], "password_credential": row["password_credential"],
                  "retention_days": row["retention_days"], **changes}
        values = {**_schedule_of(merged["schedule"], merged["password_credential"], row["encryption_enabled"]),
                  "retention_days": check_retention_days(merged["retention_days"])}
        conn.execute(update(_configurations).where(_configurations.c.id == row["id"]).values(**values))
        audit.append(conn, actor=principal.actor, action="CONFIG", table_name="export_configurations",
                     record_id=row["id"], details={"event": "export_configuration_updated", "name": name,
                                                   "changed": sorted(changes),
                                                   **{k: values[k] for k in ("schedule", "password_credential",
                                                                             "retention_days")}})
    return {**{k: row[k] for k in _SHOWN if k in row}, **values}


def list_configurations(ctx: Context) -> list[dict]:
    """Active saved configurations with their schedules (never a password)."""
    with transaction(ctx.engine, read_only=True) as conn:
        rows = conn.execute(select(_configurations).where(_configurations.c.is_active.is_(True))
                            .order_by(_configurations.c.name)).mappings().all()
    return [{k: r[k] for k in _SHOWN} for r in rows]


def credential_password(name: str | None) -> bytes:
    """An encrypted scheduled export's ZIP password, from the systemd credential `name`
    ($CREDENTIALS_DIRECTORY/name, as systemd's LoadCredential= provides it: read at each
    run, never stored). Missing or short: a ValidationError naming the credential."""
    if not name:
        raise ValidationError("export: this scheduled encrypted configuration names no password_credential")
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValidationError(f"export: systemd credential {name} is not available: the daemon has no "
                              "$CREDENTIALS_DIRECTORY (LoadCredential= in strongroomd.service)")
    try:
        password = (Path(directory) / name).read_bytes().rstrip(b"\r\n")
    except OSError:
        raise ValidationError(f"export: systemd credential {name} is missing from $CREDENTIALS_DIRECTORY") from None
    if len(password.decode(errors="replace")) < spec.MIN_PASSWORD:
        raise ValidationError(f"export: systemd credential {name} holds a ZIP password shorter than "
                              f"{spec.MIN_PASSWORD} characters")
    return password


def due_configurations(ctx: Context, now: datetime | None = None) -> list[tuple[str, datetime]]:
    """(name, next_export_at) of active scheduled configurations whose time has come."""
    now = now or utcnow()
    c = _configurations.c
    with transaction(ctx.engine, read_only=True) as conn:
        rows = conn.execute(select(c.name, c.next_export_at).where(
            c.is_active.is_(True), c.schedule.is_not(None), c.next_export_at.is_not(None),
            c.next_export_at <= now).order_by(c.next_export_at, c.name)).all()
    return [(r.name, r.next_export_at) for r in rows]


def claim_run(ctx: Context, name: str, due: datetime, now: datetime | None = None) -> bool:
    """Move a due configuration's next_export_at to its first fire time after `now`
    (not after `due`: missed runs collapse into this one). False if another claim moved
    it first."""
    now = now or utcnow()
    c = _configurations.c
    with transaction(ctx.engine) as conn:
        schedule = conn.execute(select(c.schedule).where(c.name == name)).scalar()
        if not schedule:
            return False
        following = next_fire_time(schedule, now + timedelta(seconds=1))
        moved = conn.execute(update(_configurations).where(c.name == name, c.next_export_at == due)
                             .values(next_export_at=following)).rowcount
    return moved == 1


def release_claim(ctx: Context, name: str, due: datetime) -> None:
    """Put back a claimed time when the run could not be queued (tried again next poll)."""
    with transaction(ctx.engine) as conn:
        conn.execute(update(_configurations).where(_configurations.c.name == name).values(next_export_at=due))


MAX_RETENTION_DAYS = 3650


def check_retention_days(value: object) -> int | None:
    """A configuration's own retention period in days (None: `[export] retention_days`);
    1 to 3650, refused by name otherwise."""
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ValidationError("export: retention_days must be a whole number of days")
    try:
        days = int(str(value).strip())
    except ValueError:
        raise ValidationError("export: retention_days must be a whole number of days") from None
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValidationError(f"export: retention_days must be between 1 and {MAX_RETENTION_DAYS}")
    return days


def principal_of(ctx: Context, actor: str) -> Principal:
    """The actor's permissions now: a user's role and grants, the daemon's local admin
    account, or the system itself; anyone else may do nothing."""
    if actor == "system":
        return SYSTEM
    if actor.startswith("local:"):
        return Principal(actor=actor, permissions=rbac.role_permissions(Role.OP_ADMIN))
    if actor.startswith("user:"):
        with transaction(ctx.engine, read_only=True) as conn:
            try:
                user = get_user(conn, actor.removeprefix("user:"))
            except NotFoundError:
                return Principal(actor=actor)
            if user.disabled:
                return Principal(actor=actor)
            return rbac.principal(conn, user)
    return Principal(actor=actor)


def authorize(principal: Principal, request: Request) -> None:
    check_access(principal, request.tables, request.masking)


def check_access(principal: Principal, tables, masking: str) -> None:
    """Reading each table needs its read permission; PHI in full needs phi:read."""
    for table in tables:
        require_read(principal, table)
    if masking == "full" and not principal.can("phi:read"):
        raise PermissionDenied(f"{principal.actor} lacks permission phi:read (needed for masking profile full)")


def export_directory(settings: Settings) -> Path:
    configured = settings.export.directory
    if configured is None:
        return Path(settings.data_dir) / "exports"
    return configured if configured.is_absolute() else Path(settings.data_dir) / configured


def _check_rate(ctx: Context, actor: str) -> None:
    limit = ctx.settings.export.max_per_hour
    since = utcnow() - timedelta(hours=1)
    with transaction(ctx.engine, read_only=True) as conn:
        started = conn.execute(select(func.count()).select_from(_exports).where(
            _exports.c.requested_by == actor[:120], _exports.c.created_at >= since,
            _exports.c.status != INTERRUPTED)).scalar_one()
    if started >= limit:
        raise RateLimitedError(f"export: {actor} started {started} exports in the last hour (limit {limit}); "
                               "try again later")


# --- the run ------------------------------------------------------------------------------

def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Export as `params` ask (tables, fields, filters, format, masking, encrypt +
    password_sealed; or `configuration` by name); see the module docstring."""
    request = build_request(ctx, params)
    actor = _requester(params, request)
    principal = principal_of(ctx, actor)
    authorize(principal, request)
    root = check_directory(export_directory(ctx.settings))
    _check_rate(ctx, actor)
    export_id = uuid.uuid4()
    created = utcnow()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(_exports), [{
            "id": export_id, "configuration_id": request.configuration["id"] if request.configuration else None,
            "requested_by": actor[:120], "format": request.format, "filters": request.describe(),
            "status": "running", "created_at": created}])
    output = None
    try:
        output = Output(root, directory_name(created, export_id), password=request.password, created=created)
        about = {**request.describe(), "export_id": str(export_id), "requested_by": actor, "created_at": created,
                 "masking_profile": request.masking, "filters": request.filters,
                 "practice": _practice_names(ctx, request.filters)}
        counts = _write(ctx, principal, request, output, progress, about)
        contents = _write_files(ctx, principal, request, output, progress) if request.files else None
        manifest = {"export_id": str(export_id), "format": request.format, "encrypted": request.encrypt,
                    "masking_profile": request.masking, "filters": request.filters,
                    "tables": {t: {"fields": list(f), "rows": counts[t]} for t, f in request.tables.items()},
                    "row_count": sum(counts.values()), "created_at": created.isoformat(),
                    "requested_by": actor, "configuration": (request.configuration or {}).get("name"),
                    **({"bom": True} if request.bom else {}),
                    **({"client_files_content": contents} if contents is not None else {})}
        location, digest = output.finish(manifest)
    except BaseException as exc:
        if output is not None:
            output.abort()
        reason = str(exc) if isinstance(exc, StrongroomError) else f"internal error ({type(exc).__name__})"
        _close(ctx, export_id, principal, request, status="failed", error=reason)
        raise
    total = sum(counts.values())
    _close(ctx, export_id, principal, request, status="succeeded", rows=total, sha256=digest,
           location=str(location), counts=counts, contents=contents)
    return {"export_id": str(export_id), "format": request.format, "encrypted": request.encrypt,
            "masking_profile": request.masking, "row_count": total, "rows": counts, "sha256": digest,
            "location": str(location), "files": [f["name"] for f in output.files],
            **({"client_files_content": contents} if contents is not None else {})}


def _practice_names(ctx: Context, filters: dict) -> str:
    """The practice an export is of (its filter's), or every live practice's name."""
    table = Practice.__table__
    query = select(table.c.name).where(table.c.deleted_at.is_(None)).order_by(table.c.name)
    if "practice_id" in filters:
        query = query.where(table.c.id == uuid.UUID(filters["practice_id"]))
    with transaction(ctx.engine, read_only=True) as conn:
        return ", ".join(conn.execute(query).scalars()) or "-"


def _write(ctx: Context, principal: Principal, request: Request, output: Output, progress,
           about: dict) -> dict[str, int]:
    writer = DOCUMENTS[request.format]
    document_class = getattr(writer, "Document", writer)
    if getattr(writer, "ABOUT", False):     # a report for people: it says what it is
        document_class = functools.partial(document_class, about=about)
    if request.bom:
        document_class = functools.partial(document_class, bom=True)
    extension, per_table, text = writer.EXTENSION, writer.PER_TABLE, writer.TEXT
    where = {t: spec.where_clause(t, request.filters) for t in request.tables}
    counts = {t: 0 for t in request.tables}
    batch = ctx.settings.export.batch_size
    reveal = request.masking == "full"
    with transaction(ctx.engine, read_only=True) as conn:
        total = sum(conn.execute(select(func.count()).select_from(MODELS[t].__table__)
                                 .where(where[t])).scalar_one() for t in request.tables)
        done = 0
        progress(0, total, "starting")

        def copy(document, table: str) -> None:
            nonlocal done
            fields = request.tables[table]
            document.begin_table(table, fields)
            batches = stream_columns(conn, ctx.keyring, principal, table, fields, where=where[table],
                                     reveal=reveal, batch_size=batch)
            while True:
                # The collector paused while one batch is read, opened and written, and the
                # batch dropped before it is back (core.bulk, records.stream_columns).
                with collector_paused():
                    columns = next(batches, None)
                    if columns is None:
                        break
                    rows = len(columns[0])
                    _write_batch(document, fields, columns)
                    del columns
                counts[table] += rows
                done += rows
                progress(done, total, f"{table}: {counts[table]} rows")
            document.end_table()

        if per_table:
            for table in request.tables:
                with output.open(f"{table}.{extension}", text=text, table=table) as stream:
                    document = document_class(stream)
                    copy(document, table)
                    document.close()
        else:
            with output.open(f"report.{extension}", text=text) as stream:
                document = document_class(stream)
                for table in request.tables:
                    copy(document, table)
                document.close()
    return counts


def content_entry(file_id: uuid.UUID, content_type: str) -> str:
    """A client file's name in an export: `files/<file id><extension of its type>`. Not
    the file's own name, which is PHI and the manifest beside an encrypted ZIP lists
    every entry in the clear; the client_files table in the export maps id to name."""
    return f"files/{file_id}{mimetypes.guess_extension(content_type, strict=False) or ''}"


def _write_files(ctx: Context, principal: Principal, request: Request, output: Output, progress) -> dict:
    """Each client file the export's client_files rows list, its content streamed into
    the export's encrypted ZIP (stored, not deflated) as `content_entry`, authenticated chunk by
    chunk and checked whole against its recorded hash before the export can finish
    (core.files.content.read_chunks: a tampered or missing file fails the export,
    naming the file id). Every file read is audited as a READ, as `files get` is. With
    scanning on, a file not scanned clean is exported only for `files:quarantine:read`
    (as `files get`); others are left out and counted, never silently. Memory holds a
    few chunks whatever the files' sizes."""
    from strongroom.core.files.repository import QUARANTINE_PERMISSION, open_file, write_download
    from strongroom.core.files.store import open_files_target

    table = MODELS["client_files"].__table__
    quarantine = ctx.settings.files.scanner != "off"
    with transaction(ctx.engine, read_only=True) as conn:
        rows = conn.execute(select(table.c.id, table.c.virus_scan_status)
                            .where(spec.where_clause("client_files", request.filters))
                            .order_by(table.c.id)).all()
    served = [row.id for row in rows
              if not quarantine or row.virus_scan_status == "clean" or principal.can(QUARANTINE_PERMISSION)]
    store = open_files_target(ctx.settings)
    written = size = 0
    try:
        for file_id in served:
            with transaction(ctx.engine) as conn:      # the READ entry commits with the opening
                download = open_file(conn, ctx.keyring, principal, store, file_id, quarantine=quarantine)
            with output.open(content_entry(file_id, download.content_type), text=False, compress=False) as stream:
                write_download(download, stream.write)     # the stream copies each chunk as it takes it
            written += 1
            size += download.size
            progress(written, len(served), f"client files: {written} of {len(served)}")
    finally:
        store.close()
    return {"files": written, "bytes": size, "left_out_quarantined": len(rows) - len(served)}


def _write_batch(document, fields: tuple[str, ...], columns: list[list]) -> None:
    """One batch into a document: as columns to one that takes them (CSV), else as rows."""
    write_columns = getattr(document, "write_columns", None)
    if write_columns is not None:
        write_columns(columns)
    else:
        document.write_rows([dict(zip(fields, values)) for values in zip(*columns)])


def _close(ctx: Context, export_id: uuid.UUID, principal: Principal, request: Request, *, status: str,
           rows: int | None = None, sha256: str | None = None, location: str | None = None,
           error: str | None = None, counts: dict | None = None, contents: dict | None = None) -> None:
    with transaction(ctx.engine) as conn:
        conn.execute(update(_exports).where(_exports.c.id == export_id).values(
            status=status, row_count=rows, sha256=sha256, location=location, error=error,
            finished_at=utcnow()))
        audit.append(conn, actor=principal.actor, action="EXPORT", table_name="exports", record_id=export_id,
                     outcome="success" if status == "succeeded" else "failure",
                     details={"format": request.format, "tables": list(request.tables), "row_count": rows,
                              "rows": counts, "masking_profile": request.masking, "encrypted": request.encrypt,
                              **({"client_files_content": contents} if contents is not None else {}),
                              **({"error": error} if error else {})})


# --- after a crash ------------------------------------------------------------------------

_DIRECTORY = re.compile(r"^\.?\d{8}T\d{6}Z-[0-9a-f]{8}(\.tmp)?$")


def directory_name(created, export_id: uuid.UUID) -> str:
    """An export's directory name (its temporary one is `.NAME.tmp` beside it)."""
    return f"{created:%Y%m%dT%H%M%SZ}-{export_id.hex[:8]}"


def reconcile_interrupted(ctx: Context) -> list[uuid.UUID]:
    """At start-up, before this daemon runs anything: exports a crash left `running`
    become `interrupted`, and what they wrote is removed; returns their ids.

    Removed, not overwritten first: on journalled, copy-on-write and flash storage an
    overwrite in place does not reach the blocks that held the data, so it would add
    time and no protection. What protects is that unfinished files are ciphertext under
    a key that died with the crashed process, and that they are gone now. A directory
    already moved into place whose export was never recorded as succeeded (a crash
    between the two) goes too: every export directory on disk is a recorded, audited
    one. Leftover temporary directories of no running export (a removal that failed
    before) are removed as well. Audited per export, without PHI: who asked, the format,
    what was removed."""
    root = export_directory(ctx.settings)
    with transaction(ctx.engine) as conn:
        rows = conn.execute(select(_exports.c.id, _exports.c.created_at, _exports.c.requested_by,
                                   _exports.c.format).where(_exports.c.status == "running")).all()
        for row in rows:
            name = directory_name(row.created_at, row.id)
            removed = [what for what, path in (("temporary directory", root / f".{name}.tmp"),
                                               ("unrecorded export directory", root / name))
                       if _remove(path)]
            conn.execute(update(_exports).where(_exports.c.id == row.id).values(
                status=INTERRUPTED, finished_at=utcnow(), location=None,
                error="the daemon stopped while this export was running; its unfinished files were removed"))
            audit.append(conn, actor="system", action="EXPORT", table_name="exports", record_id=row.id,
                         outcome=INTERRUPTED, details={"event": "interrupted_at_start", "format": row.format,
                                                       "requested_by": row.requested_by, "removed": removed})
    for stray in (root.glob(".*.tmp") if root.is_dir() else ()):
        if _DIRECTORY.match(stray.name) and _remove(stray):
            log.warning("export: removed a temporary directory left by an earlier crash",
                        extra={"directory": stray.name})
    return [row.id for row in rows]


def _remove(path: Path) -> bool:
    """Remove an export's directory; True if there was one. A failure is logged, not
    raised: the daemon must start, and the next start sweeps what is left."""
    if not path.is_dir() or path.is_symlink():
        return False
    try:
        shutil.rmtree(path)
    except OSError as exc:
        log.error("export: could not remove an interrupted export's files",
                  extra={"directory": str(path), "error": exc.strerror or str(exc)})
        return False
    return True
