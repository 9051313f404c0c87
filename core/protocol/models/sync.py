"""sync.*: peers, status, a consistency check, a pass, the quarantine and the conflict queue."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result

# core/sync/peers.py NAME, core/sync/status.py and core/sync/conflicts.py MAX_PAGE (a test
# holds them equal): written out here, since the protocol imports no other core module.
PEER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_PAGE = 500


class PeerAddArgs(Args):
    name: str = Field(min_length=1, max_length=64, pattern=PEER_NAME)
    url: str = Field(min_length=1, max_length=500)
    direction: Literal["both", "push", "pull"] = "both"


class PeerNameArgs(Args):
    name: str = Field(min_length=1, max_length=64, pattern=PEER_NAME)


class SyncCheckArgs(Args):
    peer: str = Field(min_length=1, max_length=64, pattern=PEER_NAME)


class SyncRunArgs(Args):
    peer: str | None = Field(default=None, min_length=1, max_length=64, pattern=PEER_NAME)
    push: bool = True
    pull: bool = True


class QuarantineArgs(Args):
    status: Literal["open", "all"] = "open"
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    after_id: uuid.UUID | None = None


class ConflictsArgs(Args):
    status: Literal["open", "resolved", "all"] = "open"
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    after_id: uuid.UUID | None = None


class ConflictArgs(Args):
    conflict_id: uuid.UUID


class ConflictFieldArgs(Args):
    conflict_id: uuid.UUID
    # a field's logical name (`ssn`, not `ssn_enc`); the pattern keeps arbitrary text,
    # which may itself be PHI, out of the core's error
    field: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")


class ResolveArgs(Args):
    conflict_id: uuid.UUID
    # field name -> "local" | "remote" | "base"; checked (and explained) by the core. May
    # be empty: a conflict whose sides hold the same values has nothing to choose.
    choices: dict[str, str] = Field(default_factory=dict, max_length=64)


class Peer(Result):
    """A sync peer; its URL never with a password."""
    id: uuid.UUID
    name: str
    url: str
    direction: str
    is_active: bool
    last_sync_at: datetime | None
    seconds_since_sync: float | None
    pending_changes: int | None
    open_conflicts: int
    inbound: bool
    site_id: uuid.UUID | None
    failures: int
    last_error: str | None
    next_attempt_at: datetime | None
    clock_skew_seconds: float | None


class PeerChanged(Result):
    id: uuid.UUID
    name: str
    event: str


class PeerTable(Result):
    table: str
    push_watermark: int
    pull_watermark: int
    pending_rows: int | None
    last_moved_at: datetime | None


class PeerStatus(Result):
    id: uuid.UUID
    name: str
    url: str
    direction: str
    is_active: bool
    inbound: bool
    site_id: uuid.UUID | None
    last_sync_at: datetime | None
    failures: int
    last_error: str | None
    next_attempt_at: datetime | None
    clock_skew_seconds: float | None
    open_conflicts: int
    lag_seconds: float | None
    pending_rows: int | None
    lagging: bool
    skew_exceeded: bool
    quarantined: int
    tables: list[PeerTable]


class SyncStatus(Result):
    peers: list[PeerStatus]
    open_conflicts: int
    quarantined: int
    max_lag_minutes: int
    clock_skew_seconds: float


class RowProblem(Result):
    row_id: str
    problem: Literal["missing_here", "missing_there", "differing"]


class TableCompared(Result):
    table: str
    rows_here: int
    rows_there: int
    ranges: int
    ranges_differing: int
    missing_here: int
    missing_there: int
    differing: int
    examples: list[RowProblem]


class SyncCheckResult(Result):
    peer: str
    consistent: bool
    tables: list[TableCompared]


class QuarantinedRow(Result):
    id: uuid.UUID
    peer: str | None
    table: str
    row_id: str
    reason: str
    detail: str | None
    status: str
    received_at: datetime


class ConflictSummary(Result):
    id: uuid.UUID
    peer_id: uuid.UUID
    peer: str | None
    table: str
    row_id: str
    status: str
    created_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None
    has_base: bool
    fields: list[str] | None            # the fields that differ (never their values)
    phi: bool | None
    resolution: dict[str, Any] | None   # choices per field and the version written
    problem: str | None


class FieldValue(Result):
    """One field of a conflict: base, local and remote, plaintext or masked."""
    name: str
    phi: bool
    differs: bool
    changed: str | None          # which side moved from base: local, remote, both; None without a base
    base: Any = None            # a field's value as text, a number, a list or None (by field)
    local: Any = None
    remote: Any = None
    absent: list[str]
    unreadable: list[str]
    chosen: str | None


class OtherField(Result):
    name: str
    phi: bool


class ConflictShown(ConflictSummary):
    masked: bool
    field_values: list[FieldValue]
    other_fields: list[OtherField]


class ConflictField(Result):
    id: uuid.UUID
    table: str
    row_id: str
    masked: bool
    field: FieldValue
