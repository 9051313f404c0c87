"""compliance.report.get, compliance.document.create and notification.test."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class ComplianceCheck(Result):
    area: str
    name: str
    passed: bool
    evidence: dict[str, Any]    # what the check found; its keys differ by check (core/compliance.py)
    safeguard: str
    remediation: str


class ScoreOfDay(Result):
    day: str                    # YYYY-MM-DD
    score: int


class ComplianceReport(Result):
    score: int
    # area -> its weight, points, status and what a missing configuration forgoes (core/compliance.py)
    areas: dict[str, dict[str, Any]]
    generated_at: datetime
    not_evidenced: dict[str, Any]   # area -> the points forgone while it is not configured
    checks: list[ComplianceCheck]
    history: list[ScoreOfDay]


class ComplianceDocumentArgs(Args):
    format: str = Field(max_length=16)
    since: str | None = Field(default=None, max_length=40)
    until: str | None = Field(default=None, max_length=40)


class ComplianceDocument(Result):
    format: str
    sha256: str
    size: int
    score: int
    data: str                   # the signed document, base64


class Delivery(Result):
    """One channel's outcome; target and detail hold no password, URL path or query."""
    channel: Literal["webhook", "email", "deadman"]
    target: str
    ok: bool
    detail: str
    attempts: int
