"""integrity.report.get: the newest integrity run, its checks, history and the audit chain."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result
from strongroom.core.protocol.models.status import RunningJob


class ReportArgs(Args):
    history: int = Field(default=10, ge=1, le=100)


class IntegrityRunSummary(Result):
    id: uuid.UUID
    status: str
    trigger: str
    requested_by: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    error: str | None
    checks: int
    failed: list[str | None]
    warnings: list[str | None]


class IntegrityCheckResult(Result):
    name: str | None
    status: str | None
    expected: str | None
    actual: str | None
    evidence: dict[str, Any]    # by check: counts and row ids found (core/integrity)
    check_type: str | None
    table_name: str | None
    started_at: datetime | None
    completed_at: datetime | None


class ChainCheck(Result):
    status: str
    actual: str | None
    completed_at: datetime | None
    evidence: dict[str, Any] | None


class ChainState(Result):
    ok: bool | None
    head_id: int | None
    head_hash: str | None
    last_check: ChainCheck | None


class IntegrityReport(Result):
    latest: IntegrityRunSummary | None
    checks: list[IntegrityCheckResult]
    running: list[RunningJob]
    history: list[IntegrityRunSummary]
    audit_chain: ChainState
