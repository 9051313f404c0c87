"""audit.tail and audit.verify: the hash-chained audit log."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class AuditTailArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=2 ** 63 - 1)
    actor: str | None = Field(default=None, max_length=120)
    action: str | None = Field(default=None, max_length=24)
    table_name: str | None = Field(default=None, max_length=64)


class AuditEntry(Result):
    id: int
    occurred_at: datetime
    actor: str
    action: str
    table_name: str | None
    record_id: str | None
    outcome: str
    details: dict[str, Any]     # what each action records differs (core/audit.py callers)
    hash: str


class CheckpointSummary(Result):
    head_id: int | None
    head_hash: str | None
    signed_at: str | None
    key_id: str | None


class CertificateVerdict(Result):
    ok: bool
    request_id: str
    reason: str | None


class CertificatesChecked(Result):
    checked: int
    failed: list[CertificateVerdict]


class AuditVerifyResult(Result):
    ok: bool
    checked: int
    head_id: int | None
    head_hash: str
    broken_id: int | None
    reason: str | None
    sealed: bool
    unsealed_legacy: int
    database_written: list[int]
    database_written_count: int
    rows_missing_after: int | None
    checkpoint: CheckpointSummary | None
    certificates: CertificatesChecked
