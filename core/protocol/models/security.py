"""security.event.list, session.list and session.revoke."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class SecurityEventListArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=2 ** 63 - 1)
    event_type: str | None = Field(default=None, max_length=40)


class SecurityEvent(Result):
    id: int
    occurred_at: datetime
    user_id: uuid.UUID | None
    username: str | None
    event_type: str
    severity: str
    description: str
    ip_address: str | None
    user_agent: str | None
    details: dict[str, Any]     # by event type (core/auth/security.py callers)


class SessionListArgs(Args):
    active_only: bool = True


class SessionRevokeArgs(Args):
    session_id: uuid.UUID
    reason: str = Field(default="revoked by operator", max_length=64)


class SessionInfo(Result):
    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    idle_timeout_seconds: int
    revoked_at: datetime | None
    revoked_reason: str | None
    client_host: str | None
    client_addr: str | None
    client_name: str | None
    client_version: str | None


class SessionListed(SessionInfo):
    username: str | None
