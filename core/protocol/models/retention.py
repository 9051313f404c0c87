"""retention.*, hold.*, erasure.*: records retention policies and plan, legal holds,
and erasure requests with their certificates."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result

# core/jobs/retention.py MAX_HORIZON_DAYS (a test holds the two equal)
MAX_HORIZON_DAYS = 3650
# The tables a retention policy may name: core/retention TABLES (a test holds the two equal),
# what the console's policy form offers to pick from.
TABLES = ("clients", "therapy_sessions", "client_files")


class PolicySetArgs(Args):
    table_name: str = Field(min_length=1, max_length=64)
    archive_after_days: int | None = None
    delete_after_days: int | None = None
    active: bool = True


class PlanArgs(Args):
    horizon_days: int = Field(default=30, ge=0, le=MAX_HORIZON_DAYS)
    limit: int = Field(default=200, ge=1, le=1000)


class HoldsListArgs(Args):
    include_released: bool = False
    limit: int = Field(default=200, ge=1, le=1000)


class HoldPlaceArgs(Args):
    reason: str = Field(min_length=1, max_length=500)
    client_id: uuid.UUID | None = None
    practice_id: uuid.UUID | None = None


class HoldIdArgs(Args):
    hold_id: uuid.UUID


class ErasureListArgs(Args):
    include_closed: bool = False
    limit: int = Field(default=100, ge=1, le=1000)


class ErasureRequestArgs(Args):
    client_id: uuid.UUID
    reason: str = Field(min_length=1, max_length=500)


class RequestIdArgs(Args):
    request_id: uuid.UUID


class CertificateArgs(Args):
    request_id: uuid.UUID
    reissue: bool = False


class RetentionPolicy(Result):
    id: uuid.UUID
    table_name: str
    archive_after_days: int | None
    delete_after_days: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class PlanSummary(Result):
    table: str
    action: str
    due_now: int
    upcoming: int
    blocked: int


class DueAction(Result):
    """One row an action is (or will be) due for; ids and dates only, never values."""
    table: str
    action: str
    row_id: uuid.UUID
    practice_id: uuid.UUID
    client_id: uuid.UUID
    due_at: datetime
    reason: str                 # age | inactive | expiry_date
    policy_id: uuid.UUID
    blocked_by: uuid.UUID | None


class RetentionPlan(Result):
    now: datetime
    horizon_days: int
    summary: list[PlanSummary]
    actions: list[DueAction]
    truncated: bool
    holds_in_force: int


class Hold(Result):
    id: uuid.UUID
    practice_id: uuid.UUID
    client_id: uuid.UUID | None
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    scope: str
    active: bool


class ErasureRequest(Result):
    id: uuid.UUID
    client_id: uuid.UUID
    requested_by: str
    approved_by: str | None
    status: str
    reason: str
    created_at: datetime
    executed_at: datetime | None
    expires_at: datetime | None
    decided_at: datetime | None
    rejected_by: str | None


class ErasureListed(ErasureRequest):
    held_by: uuid.UUID | None       # the legal hold that would refuse it now


class CertificateSignature(Result):
    algorithm: str
    key_id: uuid.UUID
    public_key: str
    value: str
    sha256: str


class DestroyedKey(Result):
    key_id: uuid.UUID
    purpose: str
    version: int
    destroyed_at: datetime | None


class AuditEntryRef(Result):
    id: int
    hash: str


class ErasureCertificate(Result):
    """The signed statement that a client's data was erased (core/retention/certificate.py)."""
    kind: str
    version: int
    request_id: uuid.UUID
    client_id: uuid.UUID
    requested_by: str
    requested_at: datetime
    approved_by: str | None
    executed_at: datetime
    destroyed_keys: list[DestroyedKey]
    rows_tombstoned: dict[str, int]         # table -> rows
    file_objects: dict[str, int] | None     # files, objects_deleted, objects_failed; None: not recorded
    repositories: list[dict[str, Any]]      # per backup configuration: reached or pending, and why
    reached_all_copies: bool
    audit_execute_entry: AuditEntryRef
    issued_at: datetime
    signature: CertificateSignature


class FilesPurged(Result):
    files: int
    objects_deleted: int
    objects_failed: int
    failed_file_ids: list[uuid.UUID]


class ErasureExecuted(ErasureRequest):
    erased: dict[str, int]                  # table -> rows tombstoned
    file_objects: FilesPurged
    certificate: ErasureCertificate
