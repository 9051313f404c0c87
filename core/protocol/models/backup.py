"""backup.*: configurations, snapshots, forgetting one, four-eyes requests."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result
from strongroom.core.protocol.models.jobs import JobRun

CONFIGURATION_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class LimitArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)


class ConfigurationArgs(Args):
    configuration: str = Field(default="default", pattern=CONFIGURATION_NAME)


class SnapshotArgs(ConfigurationArgs):
    snapshot_id: uuid.UUID


class ForgetArgs(SnapshotArgs):
    dry_run: bool = False


class RequestsArgs(Args):
    include_closed: bool = False
    limit: int = Field(default=50, ge=1, le=1000)


class ApproveArgs(Args):
    request_id: uuid.UUID


class BackupRow(Result):
    """A snapshot as the database records it, with how far it has been proven."""
    id: uuid.UUID
    configuration_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    kind: str
    status: str
    proof: str
    started_at: datetime
    finished_at: datetime | None
    manifest_key: str | None
    change_watermark: int | None
    size_bytes: int | None
    stored_bytes: int | None
    row_count: int | None
    file_count: int | None
    file_bytes: int | None
    files_missing: int | None
    verified_at: datetime | None
    drilled_at: datetime | None
    error: str | None
    superseded_by: uuid.UUID | None


class BackupConfiguration(Result):
    id: uuid.UUID
    name: str
    backup_type: str
    schedule: str | None
    target: str
    compression_level: int
    encryption_enabled: bool
    retention: dict[str, Any]       # the keep rules (core/backup keep policy) and four-eyes settings
    tables: list[str]
    verify_after: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


class SnapshotTotals(Result):
    tables: int
    rows: int
    tombstones: int
    chunks: int
    plain_bytes: int
    stored_bytes: int
    added_bytes: int


class SnapshotTable(Result):
    name: str
    mode: str
    rows: int
    tombstones: int
    live_rows: int
    chunks: int
    plain_bytes: int
    stored_bytes: int


class SnapshotFiles(Result):
    files: int
    objects: int
    plain_bytes: int
    stored_bytes: int
    added_objects: int
    added_bytes: int
    missing: int


class SnapshotInfo(Result):
    snapshot_id: uuid.UUID
    kind: str
    parent_id: uuid.UUID | None
    chain_length: int
    created_at: datetime
    schema_revision: str | None
    change_watermark: int | None
    proof: str
    status: str
    verified_at: datetime | None
    drilled_at: datetime | None
    totals: SnapshotTotals
    tables: list[SnapshotTable]
    files: SnapshotFiles
    target: str


class Compaction(Result):
    chain: list[uuid.UUID]
    new_base_from: uuid.UUID
    reason: str
    superseded: list[uuid.UUID]


class PrunePlan(Result):
    forgotten: list[uuid.UUID]
    kept: int
    unknown_snapshots_left_alone: list[uuid.UUID]
    compactions: list[Compaction]
    compaction_skipped: list[str]
    would_supersede: list[uuid.UUID]
    snapshots: list[dict[str, Any]]     # every snapshot with what the plan does to it and why


class ForgetPreview(Result):
    """backup.forget with dry_run: what would happen."""
    plan: PrunePlan
    requires_approval: bool
    snapshot: SnapshotInfo


class ForgetStarted(JobRun):
    """backup.forget: the prune run that carries it out (or files the four-eyes request)."""
    requires_approval: bool


ForgetResult = ForgetPreview | ForgetStarted


class PruneRequest(Result):
    id: uuid.UUID
    configuration_id: uuid.UUID
    configuration: str | None
    kind: str
    snapshot_ids: list[uuid.UUID]
    plan: dict[str, Any]            # superseded snapshots and planned compactions, as filed
    status: str
    requested_by: str
    requested_at: datetime
    expires_at: datetime
    approved_by: str | None
    approved_at: datetime | None
    executed_at: datetime | None
    error: str | None
