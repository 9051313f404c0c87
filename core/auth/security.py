"""Security events: the `security_events` table, each mirrored into the audit chain.

Security events are what an operator watches (failed logins, lockouts, grants, expired
sessions); the audit chain is what proves history was not rewritten. Writing both in the
same transaction means neither can exist without the other.

Never pass PHI, passwords, TOTP codes or session tokens: `record` refuses detail keys
that name such secrets, as a guard against a careless caller.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection, insert

from strongroom.core import audit
from strongroom.core.db.models import SecurityEvent
from strongroom.core.db.types import utcnow

_events = SecurityEvent.__table__

SEVERITIES = ("info", "low", "medium", "high", "critical")

# The audit action for each event type; anything else is audited as SECURITY.
AUDIT_ACTIONS = {
    "login_success": "LOGIN",
    "login_failed": "LOGIN_FAILED",
    "rate_limited": "LOGIN_FAILED",
    "account_locked": "LOCK",
    "user_locked": "LOCK",
    "user_unlocked": "UNLOCK",
    "grant_created": "GRANT",
    "grant_revoked": "REVOKE",
    "logout": "LOGOUT",
    "user_created": "CREATE",
    "password_changed": "UPDATE",
    "totp_reset": "UPDATE",
    "role_changed": "UPDATE",
}

_OUTCOMES = {"login_failed": "failure", "rate_limited": "failure", "grant_expired_use": "denied",
             "permission_denied": "denied"}

# Detail keys that would mean a secret is about to be written down.
_SECRET_KEYS = ("password", "passwd", "totp", "otp", "code", "token", "secret")


class ActorContext(Protocol):
    """Who is acting and from where (strongroom.core.principal.Principal fits this)."""

    actor: str
    session_id: str | None
    ip_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class Actor:
    """A minimal ActorContext for callers without a richer principal."""

    actor: str
    session_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


def _check_details(details: dict) -> None:
    for key in details:
        lowered = str(key).lower()
        if any(word in lowered for word in _SECRET_KEYS):
            raise ValueError(f"security event detail {key!r} looks like a secret; not recorded")


def record(conn: Connection, event_type: str, *, severity: str = "info",
           user_id: uuid.UUID | None = None, username: str | None = None,
           description: str = "", ip_address: str | None = None,
           user_agent: str | None = None, details: dict | None = None,
           actor: str | None = None, session_id: str | None = None,
           table_name: str | None = None, record_id: object | None = None,
           now: datetime | None = None) -> int:
    """Write one security event and its audit entry in the caller's transaction.

    `actor` defaults to `user:<username>` (or `anonymous`). Returns the event id.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}")
    details = dict(details or {})
    _check_details(details)
    username = username[:64] if username else username
    row = {
        "occurred_at": now or utcnow(), "user_id": user_id, "username": username,
        "event_type": event_type[:40], "severity": severity, "description": description[:500],
        "ip_address": ip_address[:64] if ip_address else ip_address,
        "user_agent": user_agent[:200] if user_agent else user_agent, "details": details,
    }
    event_id = conn.execute(insert(_events).values(**row).returning(_events.c.id)).scalar_one()
    audit.append(
        conn, actor=actor or (f"user:{username}" if username else "anonymous"),
        action=AUDIT_ACTIONS.get(event_type, "SECURITY"),
        table_name=table_name or ("users" if user_id else None),
        record_id=record_id if record_id is not None else user_id,
        outcome=_OUTCOMES.get(event_type, "success"),
        details={"event": event_type, "severity": severity, "security_event_id": event_id,
                 **details},
        session_id=session_id, ip_address=ip_address, user_agent=user_agent,
    )
    return event_id
