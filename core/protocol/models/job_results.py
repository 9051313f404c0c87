"""What each job kind returns: the `result` of its runs (job.get, job.list, events).

Every kind in core/jobs/kinds.py names one of these, beside its params model, so a
run's result is described in one place: `job.kind.list` sends its JSON schema, and the
runner, with STRONGROOM_CHECK_RESULTS=1 (the test suite sets it), refuses a job whose
result strays from it, as the control server does for command results. A failed run
keeps the partial result its error carries (a verify's or integrity run's evidence),
which the same model describes; keys only a failure adds are optional here.

Top-level keys are exact (a key a job adds without saying so is a bug found by the
tests). Nested evidence that differs check by check (integrity evidence, a sync pass's
per-table counts, prune's per-snapshot reasons) stays an open object: its shape is the
checking module's, and pinning it twice would only make the two drift.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from strongroom.core.protocol.models.backup import PrunePlan
from strongroom.core.protocol.models.retention import RetentionPlan
from strongroom.core.protocol.models.base import Result


class BackupFiles(Result):
    """Client file content a snapshot carries (None when the database has no files)."""
    files: int
    objects: int
    plain_bytes: int
    stored_bytes: int
    added_objects: int
    added_bytes: int
    missing: int


class BackupResult(Result):
    snapshot_id: uuid.UUID
    kind: str                   # full | incremental
    tables: int
    rows: int
    plain_bytes: int
    stored_bytes: int
    added_bytes: int
    target: str
    configuration: str
    verified_after: bool
    files: BackupFiles | None
    problems: list[str] | None = None   # a failed verify-after-backup: its first 50 problems


class VerifiedSnapshot(Result):
    snapshot_id: uuid.UUID
    problems: list[str]
    problem_count: int | None = None    # absent when the manifest itself did not authenticate


class VerifyResult(Result):
    snapshots: list[VerifiedSnapshot]
    read_data: bool
    failed: int
    configuration: str


class RestoreResult(Result):
    """A restore's (and a drill's) proof: what went in and how long it took."""
    snapshot_id: uuid.UUID
    target_engine: str
    tables: int
    rows: int
    seconds: float
    audit_entries: int
    keys: dict[str, int]        # data keys restored / erased / missing
    files: dict[str, int]       # files, objects, bytes put into the files store; not_restored


class PruneResult(PrunePlan):
    """The plan (as backup.forget's preview shows it) and what carrying it out did."""
    configuration: str
    dry_run: bool
    chunks_deleted: int
    superseded: list[uuid.UUID]
    compacted: list[dict[str, uuid.UUID]]   # {"from": old snapshot, "to": its replacement}
    keys_dropped: list[uuid.UUID] | None = None     # data keys no remaining snapshot needs, dropped from the bag
    would_forget: list[uuid.UUID] | None = None     # four-eyes: the plan a request now waits on
    pending_request: dict[str, Any] | None = None   # four-eyes: the request filed or endorsed
    approved_request: uuid.UUID | None = None       # the approved request this run carried out


class EndorsedPrune(Result):
    """A scheduler-filed prune request endorsed by its first person (nothing deleted yet)."""
    forgotten: list[uuid.UUID]
    dry_run: bool
    chunks_deleted: int
    would_forget: list[uuid.UUID]
    pending_request: dict[str, Any]


class IntegrityCheck(Result):
    name: str
    status: str                 # ok | warn | fail
    expected: str
    actual: str
    evidence: dict[str, Any]    # by check: counts and row ids found (core/integrity)


class IntegrityResult(Result):
    checks: list[IntegrityCheck]
    failed: list[str]
    warnings: list[str]
    passed: int


class KeyRotationResult(Result):
    generation: str
    started_at: datetime
    resumed: bool
    clients_rotated: int
    rows_reencrypted: dict[str, int]
    remaining: int
    completed: bool
    seconds: float


class ExportedContent(Result):
    """The client files' content an export carried (files=true)."""
    files: int
    bytes: int
    left_out_quarantined: int   # not scanned clean, and the requester may not read quarantined files


class ExportResult(Result):
    export_id: uuid.UUID
    format: str
    encrypted: bool
    masking_profile: str
    row_count: int
    rows: dict[str, int]        # per table
    sha256: str
    location: str
    files: list[str]
    client_files_content: ExportedContent | None = None   # only when the export asked for files


class RetentionPlanResult(RetentionPlan):
    """retention with dry_run: the plan (as retention.plan.get), nothing changed."""
    dry_run: bool


class RetentionApplied(Result):
    dry_run: bool
    now: datetime
    tables: dict[str, dict[str, int]]   # per table: archived, deleted, keys_destroyed, blocked, ...
    blocked: int
    batches: int
    repositories: list[dict[str, Any]] | None = None   # key bags reached after keys were destroyed


class ExpiredExport(Result):
    export_id: uuid.UUID
    retention_days: int
    outcome: str                # deleted | would_delete | held | failed


class ExportRetentionResult(Result):
    dry_run: bool
    checked: int
    due: int
    deleted: int
    held: int
    failed: int
    would_delete: int | None = None
    exports: list[ExpiredExport]


class FilesRescanResult(Result):
    pending: int
    clean: int
    infected: int
    refused: int
    unreadable: int
    gone: int


class ReconciledPractice(Result):
    practice_id: uuid.UUID
    clients: int
    blocks: int
    oversized_blocks: int
    compared: int
    pairs_found: int
    new: int
    already_decided: int
    still_open: int
    read_seconds: float
    seconds: float


class ReconcileResult(Result):
    practices: list[ReconciledPractice]
    pairs_found: int
    new: int


class SyncResult(Result):
    peers: list[dict[str, Any]]     # per peer: its pass's counts by direction and table, or why skipped/failed
    failed: list[str]
