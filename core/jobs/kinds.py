"""Every job kind in one table: its typed params, how it may be started, what it audits.

This is the one place a kind is described. Config validation (which kinds a schedule
may name), the scheduler (which kinds run per backup configuration), the runner (which
function runs, and its params checked before a run is even queued), `job.run`,
`status` and the CLI's and console's forms all read `KINDS`; each kind's result model
(core/protocol/models/job_results.py) describes what its runs return. The module
imports only pydantic and those models, so validating a config file does not import
every job module; a kind's function is imported when it first runs.

Params arrive from JSON (the control socket) or from `--param KEY=VALUE` (strings), so
flags accept the usual spellings of true and false; everything is bounded (lengths,
list sizes, numbers) and unknown keys are refused. A refusal names the field and the
rule, never the value (core/validation.py).
"""
from __future__ import annotations

import functools
import importlib
import uuid
from collections.abc import Callable
from datetime import datetime
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter
from pydantic import ValidationError as PydanticError

from strongroom.core.errors import NotFoundError, NotImplementedYetError, ValidationError
from strongroom.core.protocol.models import job_results as R
from strongroom.core.validation import describe

Progress = Callable[[int, int | None, str], None]
JobFunction = Callable[[Any, dict, Progress], dict[str, Any]]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _flag(value: object) -> object:
    """A flag from JSON or from a command line: true/false, 1/0, yes/no, on/off, empty."""
    if value is None:
        return False
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return value   # anything else goes to strict bool checking and is refused


Flag = Annotated[bool, BeforeValidator(_flag), Field(strict=True)]
ConfigurationName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ShortText = Annotated[str, StringConstraints(max_length=64)]


class Params(BaseModel):
    """Base of every kind's params: unknown keys refused, input never echoed. Validators
    are built on a kind's first use, not at import (as core.protocol.models.base)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True, defer_build=True)


class ConfigurationParams(Params):
    configuration: ConfigurationName | None = Field(
        default=None, description='Backup configuration to work on ("default" when left out).')


class BackupParams(ConfigurationParams):
    full: Flag = Field(default=False, description="Write a full snapshot even when an incremental one would do.")


class VerifyParams(ConfigurationParams):
    snapshot_id: uuid.UUID | None = Field(default=None, description="Verify this snapshot (default: the newest).")
    read_data: Flag = Field(default=False, description="Read and check every chunk, not only the manifests.")


class RestoreDrillParams(ConfigurationParams):
    snapshot_id: uuid.UUID | None = Field(default=None, description="Drill this snapshot (default: the newest).")


class PruneParams(ConfigurationParams):
    snapshot_id: uuid.UUID | None = Field(default=None, description="Forget this one snapshot instead of pruning.")
    request_id: uuid.UUID | None = Field(default=None, description="Carry out this approved prune request.")
    dry_run: Flag = Field(default=False, description="Return the plan; change nothing.")


class RestoreParams(ConfigurationParams):
    snapshot_id: uuid.UUID = Field(description="The snapshot to restore.")
    dest: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(
        description="Database URL to restore into (never the live database).")
    force: Flag = Field(default=False, description="Restore into a non-empty database (not the live one).")
    files_dest: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = Field(
        default=None, description="Files store to restore client file content into (a directory or storage "
                                  "URL); default: `files` beside a SQLite dest, required for PostgreSQL.")


def _comma_list(value: object) -> object:
    """A list from JSON, or `a,b` from a command line's --param."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


INTEGRITY_CHECKS = ("audit_chain", "row_checksums", "orphans", "envelopes", "keys", "backups", "unaudited",
                    "sync", "files")


class IntegrityParams(Params):
    full: Flag = Field(default=False, description="Open every encrypted value under its row's AAD "
                                                  "(default: a sample per table, [integrity] open_sample_rows) "
                                                  "and read back every client file (default: a sample).")
    remove_orphans: Flag = Field(default=False, description="Delete stored file objects no live file row "
                                                            "names (older than a day); default: count them.")
    checks: Annotated[list[Literal[INTEGRITY_CHECKS]], BeforeValidator(_comma_list)] = Field(  # type: ignore[valid-type]
        default_factory=list, max_length=len(INTEGRITY_CHECKS),
        description="Run only these checks (default: all): " + ", ".join(INTEGRITY_CHECKS) + ".")


class KeyRotationParams(Params):
    client_ids: list[uuid.UUID] = Field(default_factory=list, max_length=100_000,
                                        description="Rotate only these clients' data keys (default: all).")


class RetentionParams(Params):
    dry_run: Flag = Field(default=False, description="Return what is due; change nothing.")
    horizon_days: int = Field(default=0, ge=0, le=3650, description="With dry_run: also list what falls due "
                                                                    "within this many days.")


_NameList = Annotated[list[Name], Field(max_length=64)]


class ExportParams(Params):
    configuration: Name | None = Field(default=None, description="Run this saved export configuration.")
    tables: _NameList | Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, description="Tables to export (a list, or comma-separated).")
    fields: dict[Name, _NameList | Annotated[str, StringConstraints(max_length=4000)]] = Field(
        default_factory=dict, max_length=16, description="Per table, the fields to export (default: all).")
    filters: dict[Literal["since", "until", "range", "practice_id", "client_id", "client_status",
                          "session_status", "payment_status"],
                  ShortText | Annotated[list[ShortText], Field(max_length=8)] | None] = Field(
        default_factory=dict, description="since/until (ISO date or datetime) or range (last_30_days, "
                                          "last_90_days, this_month, last_quarter), practice_id, client_id, "
                                          "client_status, session_status, payment_status (values, "
                                          "comma-separated).")
    as_of: datetime | None = Field(default=None, description="When a relative range is resolved (export.run "
                                                             "sets the moment it was submitted).")
    format: ShortText | None = Field(default=None, description="csv, ndjson, json, xml or pdf.")
    masking: ShortText | None = Field(default=None, description="masked (default) or full (needs phi:read).")
    encrypt: Flag = Field(default=False, description="Write a password-protected AES ZIP.")
    bom: Flag = Field(default=False, description="CSV only: start each file with a UTF-8 byte order mark "
                                                 "(for spreadsheets).")
    files: Flag = Field(default=False, description="Put the content of each client file the client_files "
                                                   "table lists into the encrypted ZIP too, as "
                                                   "files/<file id>.<ext> (needs encrypt and masking full).")
    password_sealed: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        default=None, description="The ZIP password sealed by export.run (never a clear password).")
    scheduled: Flag = Field(default=False, description="Set by the scheduler for a configuration's scheduled "
                                                       "run: an encrypted one's password comes from its "
                                                       "systemd credential.")


class ExportRetentionParams(Params):
    dry_run: Flag = Field(default=False, description="List the exports past their retention; delete nothing.")


class FilesRescanParams(Params):
    limit: int = Field(default=1000, ge=1, le=100_000, description="Scan at most this many pending files "
                                                                    "(oldest first).")


class ReconcileParams(Params):
    practice_id: uuid.UUID | None = Field(default=None, description="Match this practice's clients only "
                                                                     "(default: every practice).")


class SyncParams(Params):
    peer: Name | None = Field(default=None, description="Sync with this peer only (default: every active peer).")
    push: Flag = Field(default=True, description="Send this site's changes to the peer.")
    pull: Flag = Field(default=True, description="Take the peer's changes.")
    scheduled: Flag = Field(default=False, description="A scheduled pass: skips peers waiting out a retry "
                                                         "backoff and tables within their interval.")


@dataclass(frozen=True)
class JobKind:
    """One kind of job. `module` is the core.jobs module whose `run(ctx, params,
    progress)` does the work (None: planned, not in this release); what it returns is
    `result`, checked against the run's result by `check_result`."""

    name: str
    params: type[Params]
    result: Any                        # its result model (or a union of them): core/protocol/models/job_results
    summary: str
    audit_action: str
    module: str | None
    # What a run's progress counts, one unit from its first event to its last (the
    # console shows "12,400 / 100,000 rows", "1.2 / 3.4 GiB"): a stage that works in
    # another unit reports in its message, never by switching the count.
    progress_unit: str
    on_request_only: bool = False      # needs a person's arguments: never scheduled
    per_configuration: bool = False    # one run at a time per backup configuration

    @property
    def planned(self) -> bool:
        return self.module is None

    @property
    def schedulable(self) -> bool:
        return not self.on_request_only

    def function(self) -> JobFunction:
        if self.module is None:
            raise NotImplementedYetError(f"job kind {self.name} is not implemented in this release")
        return importlib.import_module(f"strongroom.core.jobs.{self.module}").run

    def describe(self) -> dict:
        """For `status`, the CLI and the console's forms: the params' JSON schema too."""
        return {"kind": self.name, "summary": self.summary, "planned": self.planned,
                "schedulable": self.schedulable, "on_request_only": self.on_request_only,
                "per_configuration": self.per_configuration, "progress_unit": self.progress_unit,
                "params": self.params.model_json_schema(),
                "result": result_adapter(self.name).json_schema()}


KINDS: dict[str, JobKind] = {k.name: k for k in (
    JobKind("backup", BackupParams, R.BackupResult,
            "Write a snapshot of the database to a backup configuration's repository.",
            "BACKUP", "backup", progress_unit="bytes", per_configuration=True),
    JobKind("verify", VerifyParams, R.VerifyResult,
            "Check a snapshot's manifest chain and, with read_data, every chunk.",
            "VERIFY", "verify", progress_unit="bytes", per_configuration=True),
    JobKind("restore_drill", RestoreDrillParams, R.RestoreResult,
            "Restore a snapshot into a scratch database and prove it.",
            "INTEGRITY", "restore_drill", progress_unit="records", per_configuration=True),
    JobKind("prune", PruneParams, R.PruneResult | R.EndorsedPrune,
            "Forget snapshots outside the keep rules and reclaim their space.",
            "INTEGRITY", "prune", progress_unit="snapshots", per_configuration=True),
    JobKind("integrity", IntegrityParams, R.IntegrityResult,
            "Check the audit chain, row checksums, orphans, ciphertext, keys, "
            "backups and client file content.",
            "INTEGRITY", "integrity", progress_unit="checks"),
    JobKind("key_rotation", KeyRotationParams, R.KeyRotationResult,
            "Rotate client data keys and re-encrypt their fields.",
            "KEY_ROTATE", "key_rotation", progress_unit="clients"),
    JobKind("restore", RestoreParams, R.RestoreResult,
            "Restore a snapshot into another database.",
            "RESTORE", "restore", progress_unit="records", on_request_only=True),
    JobKind("export", ExportParams, R.ExportResult,
            "Export clinical tables to CSV, NDJSON, JSON, XML or PDF.",
            "EXPORT", "export", progress_unit="rows", on_request_only=True),
    JobKind("retention", RetentionParams, R.RetentionApplied | R.RetentionPlanResult,
            "Archive and delete records whose retention period has passed.",
            "RETENTION", "retention", progress_unit="records"),
    JobKind("export_retention", ExportRetentionParams, R.ExportRetentionResult,
            "Delete export files past their retention_days "
            "(legal holds keep them); each deletion audited.", "RETENTION", "export_retention",
            progress_unit="exports"),
    JobKind("files_rescan", FilesRescanParams, R.FilesRescanResult,
            "Scan client files left pending (clamd was down) with clamd: "
            "clean ones become servable, infected ones are removed and reported.", "INTEGRITY", "file_scan",
            progress_unit="files"),
    JobKind("reconcile", ReconcileParams, R.ReconcileResult,
            "Find likely duplicate clients within a practice and record them "
            "as open pairs (ids, score, reasons) for a person to merge or dismiss.", "READ", "reconcile",
            progress_unit="practices"),
    JobKind("sync", SyncParams, R.SyncResult,
            "Exchange changes with peer sites: keys, then each table, both ways.",
            "SYNC", "sync", progress_unit="peers"),
)}


def kind(name: str) -> JobKind:
    """The kind called `name`; NotFoundError lists the known ones without repeating the name."""
    found = KINDS.get(name)
    if found is None:
        raise NotFoundError(f"unknown job kind (known: {', '.join(sorted(KINDS))})")
    return found


def check_params(name: str, params: dict | None) -> dict:
    """`params` checked against the kind's model, as JSON-ready values with defaults
    filled in (what is stored in job_runs and handed to the job). Raises ValidationError
    naming each bad field and its rule."""
    if not isinstance(params, dict):
        raise ValidationError(f"{name} params: must be an object")
    return _validated(name, params).model_dump(mode="json")


def parse(name: str, params: dict) -> Params:
    """A run's params as the kind's typed model (the `actor` the runner adds set aside):
    the one place a job reads its params, so no job parses flags or ids by hand."""
    return _validated(name, {k: v for k, v in params.items() if k != "actor"})


def _validated(name: str, params: dict) -> Params:
    model = kind(name).params
    try:
        return model.model_validate(params)
    except PydanticError as exc:
        raise ValidationError(describe(exc, model, f"{name} params")) from None


@functools.cache
def result_adapter(name: str) -> TypeAdapter:
    """The validator of kind `name`'s result (built once: a union's adapter is not free)."""
    return TypeAdapter(kind(name).result)


def check_result(name: str, result: object) -> str | None:
    """None when `result` (JSON-ready, as stored in job_runs) matches kind `name`'s
    declared result model; else where it strays and by which rule, never a value."""
    try:
        result_adapter(name).validate_python(result)
    except PydanticError as exc:
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(result)'}: {e['type']}"
                         for e in exc.errors()[:5])
    return None


def check_request(name: str, params: dict, *, live=None) -> None:
    """What can be checked about a run before it is queued beyond its params' types, so
    a mistake is refused at once by name rather than as a failed run: today a restore's
    target (core.restore.check_request; `live`: the caller's own database engine).
    Raises ValidationError or ConflictError."""
    if name == "restore":
        from strongroom.core.restore import check_request as check_restore
        asked = parse(name, params)
        check_restore(asked.dest, force=asked.force, live=live)


def runnable() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in KINDS.items() if not v.planned))


def planned() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in KINDS.items() if v.planned))


def all_kinds() -> tuple[str, ...]:
    return tuple(sorted(KINDS))


def schedulable_kinds() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in KINDS.items() if v.schedulable))


def on_request_only() -> tuple[str, ...]:
    return tuple(sorted(k for k, v in KINDS.items() if v.on_request_only))


def per_configuration() -> frozenset[str]:
    return frozenset(k for k, v in KINDS.items() if v.per_configuration)
