"""Session records: hashed tokens with an idle timeout and an absolute lifetime.

The token is returned once, at login; only its SHA-256 is stored, so a copy of the
database (or a backup) holds nothing that opens a session. SHA-256 rather than a slow
hash is right here: the token has 256 bits of entropy, there is nothing to brute-force.

This module keeps the `auth_sessions` rows; strongroom.core.auth.login decides who gets
one and checks tokens on every request.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from strongroom.core.auth import security
from strongroom.core.config import AuthSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuthSession
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError
from strongroom.core.ids import new_id

_sessions = AuthSession.__table__


@dataclass(frozen=True)
class SessionRecord:
    """One auth_sessions row, without the token hash."""

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

    def idle_deadline(self) -> datetime:
        return self.last_seen_at + timedelta(seconds=self.idle_timeout_seconds)

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at and now < self.idle_deadline()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record(row) -> SessionRecord:
    return SessionRecord(
        row["id"], row["user_id"], row["created_at"], row["last_seen_at"], row["expires_at"],
        row["idle_timeout_seconds"], row["revoked_at"], row["revoked_reason"],
        row["client_host"], row["client_addr"], row["client_name"], row["client_version"])


def _active_clause(now: datetime):
    # Idle expiry depends on a per-row interval, which the two engines express
    # differently in SQL; callers that need it filter with SessionRecord.active.
    return (_sessions.c.revoked_at.is_(None), _sessions.c.expires_at > now)


def create(conn: Connection, user_id: uuid.UUID, username: str, settings: AuthSettings, *,
           client_host: str | None = None, client_addr: str | None = None,
           client_name: str | None = None, client_version: str | None = None,
           user_agent: str | None = None, now: datetime | None = None
           ) -> tuple[str, SessionRecord]:
    """Open a session and return (token, record); the token exists nowhere else.

    Makes room first: the user's oldest active sessions beyond their concurrent-session
    limit - 1 are revoked with reason `session_limit`. The limit and the idle timeout
    are the user's own where their profile is stricter than the policy (core.auth.profiles).
    """
    from strongroom.core.auth.profiles import effective_for
    now = now or utcnow()
    limits = effective_for(conn, settings, user_id)
    _enforce_limit(conn, user_id, username, limits["max_sessions"] - 1,
                   ip_address=client_addr, user_agent=user_agent, now=now)
    token = secrets.token_urlsafe(32)
    row = {
        "id": new_id(), "token_hash": hash_token(token), "user_id": user_id,
        "created_at": now, "last_seen_at": now,
        "expires_at": now + timedelta(hours=settings.session_absolute_hours),
        "idle_timeout_seconds": limits["session_idle_minutes"] * 60,
        "revoked_at": None, "revoked_reason": None,
        "client_host": client_host[:255] if client_host else None,
        "client_addr": client_addr[:64] if client_addr else None,
        "client_name": client_name[:64] if client_name else None,
        "client_version": client_version[:32] if client_version else None,
    }
    conn.execute(insert(_sessions).values(**row))
    return token, _record(row)


def user_sessions(conn: Connection, user_id: uuid.UUID, *, now: datetime) -> list[SessionRecord]:
    """The user's active sessions, oldest first."""
    rows = conn.execute(select(_sessions).where(_sessions.c.user_id == user_id, *_active_clause(now))
                        .order_by(_sessions.c.created_at, _sessions.c.id)).mappings()
    return [s for s in map(_record, rows) if s.active(now)]


def _enforce_limit(conn: Connection, user_id: uuid.UUID, username: str, keep: int, *,
                   ip_address: str | None, user_agent: str | None, now: datetime) -> None:
    active = user_sessions(conn, user_id, now=now)
    for old in active[:max(0, len(active) - keep)]:
        mark_revoked(conn, old.id, "session_limit", now=now)
        security.record(
            conn, "session_limit", severity="low", user_id=user_id, username=username,
            description="oldest session revoked: concurrent session limit reached",
            ip_address=ip_address, user_agent=user_agent, table_name="auth_sessions",
            record_id=old.id, details={"session_id": str(old.id)}, now=now)


def mark_revoked(conn: Connection, session_id: uuid.UUID, reason: str, *, now: datetime) -> bool:
    """Revoke one session row if still open; False when it was already revoked."""
    result = conn.execute(update(_sessions).where(
        _sessions.c.id == session_id, _sessions.c.revoked_at.is_(None),
    ).values(revoked_at=now, revoked_reason=reason[:64]))
    return result.rowcount == 1


def revoke_user_sessions(conn: Connection, user_id: uuid.UUID, reason: str, *,
                         now: datetime | None = None) -> int:
    """Revoke every open session of a user (locked, password changed). Returns the count."""
    result = conn.execute(update(_sessions).where(
        _sessions.c.user_id == user_id, _sessions.c.revoked_at.is_(None),
    ).values(revoked_at=now or utcnow(), revoked_reason=reason[:64]))
    return result.rowcount


def get(conn: Connection, session_id: uuid.UUID) -> SessionRecord:
    row = conn.execute(select(_sessions).where(_sessions.c.id == session_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"session {session_id} does not exist")
    return _record(row)


def find_by_token(conn: Connection, token: str) -> SessionRecord | None:
    row = conn.execute(select(_sessions).where(
        _sessions.c.token_hash == hash_token(token))).mappings().first()
    return None if row is None else _record(row)


def touch(conn: Connection, session_id: uuid.UUID, *, now: datetime) -> None:
    conn.execute(update(_sessions).where(_sessions.c.id == session_id).values(last_seen_at=now))


def revoke(engine: Engine, session_id: uuid.UUID, *, by: str, reason: str = "revoked",
           now: datetime | None = None) -> SessionRecord:
    """An operator ends a session. Unknown -> NotFoundError; already ended -> ConflictError."""
    now = now or utcnow()
    with transaction(engine) as conn:
        current = get(conn, session_id)
        if not mark_revoked(conn, session_id, reason, now=now):
            raise ConflictError(f"session {session_id} was already revoked "
                                f"({current.revoked_reason})")
        security.record(
            conn, "session_revoked", severity="low", user_id=current.user_id,
            description="session revoked by an operator", actor=by,
            table_name="auth_sessions", record_id=session_id,
            details={"reason": reason[:64]}, now=now)
        return get(conn, session_id)


def list_sessions(engine: Engine, active_only: bool = True, *, user_id: uuid.UUID | None = None,
                  now: datetime | None = None) -> list[SessionRecord]:
    """Sessions, newest first; `active_only` hides revoked, expired and idle ones."""
    now = now or utcnow()
    query = select(_sessions).order_by(_sessions.c.created_at.desc())
    if user_id is not None:
        query = query.where(_sessions.c.user_id == user_id)
    if active_only:
        query = query.where(*_active_clause(now))
    with transaction(engine, read_only=True) as conn:
        records = [_record(row) for row in conn.execute(query).mappings()]
    return [s for s in records if s.active(now)] if active_only else records
