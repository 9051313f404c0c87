"""Roles, permissions and time-limited grants.

Permissions are strings in the source specification's form, `<kind>:<object>:<verb>`
(`table:clients:read`, `job:backup:run`) or `<area>:<verb>` (`audit:read`). A role or a
grant may hold a pattern in which `*` stands for one whole segment (`job:*:run`), or `*`
alone for everything.

A user's effective permissions are their role's plus their active grants (not revoked,
not expired). When a permission is missing but an expired grant would have given it, the
denial says so, so the person asking knows to request a renewal rather than suspect a
bug, and the attempt is recorded as a security event in its own transaction: the denial
raises, and the caller's transaction rolls back, but the evidence must stay.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, and_, insert, or_, select, text, update
from sqlalchemy.exc import OperationalError

from strongroom.core.auth import security
from strongroom.core.auth.security import ActorContext
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role, RoleGrant
from strongroom.core.db.types import utcnow
from strongroom.core.principal import Principal, permission_matches
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.jobs.kinds import all_kinds

_grants = RoleGrant.__table__

# The practice's details, staff and service catalogue (issue 20) are tables like these.
_TABLES = ("clients", "therapy_sessions", "client_files", "practices", "staff", "services")
# Every job kind can be granted by its exact name.
_JOBS = all_kinds()

PERMISSIONS: frozenset[str] = frozenset(
    [f"table:{t}:{v}" for t in _TABLES for v in ("read", "write", "delete")]
    + [f"job:{j}:run" for j in _JOBS]
    + ["audit:read", "security:read", "sync:resolve", "user:manage", "session:revoke",
       "config:read", "keys:manage", "phi:read", "compliance:read",
       # Change what the daemon is set up with at run time (sync peers).
       "config:write",
       # Records retention: see policies, plan, holds and requests; change policies and
       # holds; file an erasure request; approve or reject one (never one's own).
       "retention:read", "retention:manage", "erasure:request", "erasure:approve",
       # Fetch a client file that malware scanning has not cleared (pending or infected
       # while [files] scanner is on): for whoever investigates a quarantined file. No
       # practice role has it; grant it for a time (`strongroom user grant`).
       "files:quarantine:read"]
)

_CLINICAL_READ_WRITE = ("table:clients:read", "table:clients:write",
                        "table:therapy_sessions:read", "table:therapy_sessions:write",
                        "table:client_files:read", "table:client_files:write")
# Every practice role reads the practice, its staff and its services; the practice
# owner (table:*:*) and operator admins edit them.
_PRACTICE_READ = ("table:practices:read", "table:staff:read", "table:services:read")

# Finding duplicate clients (job:reconcile:run) is the practice's own data work: its
# owner and managers run it, and merge with table:clients:write; an operator may start
# it but never sees the pairs (no table:clients:read).
ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    # The practice owner: all clinical data, its people and its evidence; not the keys,
    # not restores over the live database (operators do those).
    Role.ADMIN: frozenset({"table:*:*", "phi:read", "user:manage", "session:revoke",
                           "audit:read", "security:read", "compliance:read", "config:read",
                           "job:backup:run", "job:export:run", "job:reconcile:run", "retention:read",
                           "retention:manage",
                           "erasure:request", "erasure:approve"}),
    Role.MANAGER: frozenset({*_CLINICAL_READ_WRITE, *_PRACTICE_READ, "phi:read", "audit:read",
                             "compliance:read", "job:export:run", "job:reconcile:run", "retention:read",
                             "erasure:request"}),
    Role.PRACTITIONER: frozenset({*_CLINICAL_READ_WRITE, *_PRACTICE_READ, "phi:read"}),
    # Front desk: schedules sessions and sees clients, but only masked (no phi:read).
    Role.STAFF: frozenset({"table:clients:read", "table:therapy_sessions:read",
                           "table:therapy_sessions:write", *_PRACTICE_READ}),
    Role.OP_ADMIN: frozenset({"*"}),
    # Runs the machinery, never reads PHI and never manages people.
    Role.OPERATOR: frozenset({"job:*:run", "sync:resolve", "config:read", "security:read",
                              "compliance:read", "retention:read"}),
    Role.AUDITOR: frozenset({"audit:read", "security:read", "compliance:read", "retention:read"}),
}

MAX_GRANT = timedelta(days=366)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class HasRole(Protocol):
    id: uuid.UUID
    practice_id: uuid.UUID
    username: str
    role: Role


@dataclass(frozen=True)
class Grant:
    id: uuid.UUID
    user_id: uuid.UUID
    permission: str
    granted_by: str
    reason: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def matches(pattern: str, permission: str) -> bool:
    """`job:*:run` matches `job:backup:run`; `*` matches everything; segments match 1:1.
    (One rule for the whole system: the repository layer's Principal uses the same.)"""
    return permission_matches(pattern, permission)


def validate_permission(permission: str) -> str:
    """A known permission, or a pattern that matches at least one; else ValidationError."""
    permission = permission.strip()
    if permission in PERMISSIONS or (
            "*" in permission and any(matches(permission, p) for p in PERMISSIONS)):
        return permission
    raise ValidationError(f"unknown permission {permission!r}; known permissions: "
                          + ", ".join(sorted(PERMISSIONS)))


def parse_duration(value: str) -> timedelta:
    """`30m`, `8h`, `2d`, `1w` -> timedelta; at least a minute, at most MAX_GRANT."""
    found = _DURATION.match(value)
    if not found:
        raise ValidationError("duration: expected a number and a unit s/m/h/d/w, e.g. 8h")
    delta = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if delta < timedelta(minutes=1) or delta > MAX_GRANT:
        raise ValidationError(f"duration {value!r}: must be between 1 minute and {MAX_GRANT.days} days")
    return delta


def role_permissions(role: Role) -> frozenset[str]:
    return ROLE_PERMISSIONS[Role(role)]


def _grant(row) -> Grant:
    return Grant(row["id"], row["user_id"], row["permission"], row["granted_by"], row["reason"],
                 row["granted_at"], row["expires_at"], row["revoked_at"])


def list_grants(conn: Connection, *, user_id: uuid.UUID | None = None,
                active_only: bool = True, now: datetime | None = None) -> list[Grant]:
    """Grants, newest first; `active_only` drops revoked and expired ones."""
    now = now or utcnow()
    query = select(_grants).order_by(_grants.c.granted_at.desc())
    if user_id is not None:
        query = query.where(_grants.c.user_id == user_id)
    if active_only:
        query = query.where(_grants.c.revoked_at.is_(None),
                            or_(_grants.c.expires_at.is_(None), _grants.c.expires_at > now))
    return [_grant(row) for row in conn.execute(query).mappings()]


def effective_permissions(conn: Connection, user: HasRole, *,
                          now: datetime | None = None) -> frozenset[str]:
    """The role's permissions plus the user's active grants (patterns kept as patterns)."""
    granted = {g.permission for g in list_grants(conn, user_id=user.id, now=now)}
    return role_permissions(user.role) | granted


def principal(conn: Connection, user: HasRole, *, session_id: str | None = None,
              ip_address: str | None = None, user_agent: str | None = None,
              now: datetime | None = None) -> Principal:
    """The Principal the repository layer expects, carrying the effective permissions and
    the user's own practice: a user is a row of one practice and acts within it only
    (strongroom.daemon.tenancy); there is deliberately no way to bind them to another."""
    return Principal(actor=f"user:{user.username}",
                     permissions=effective_permissions(conn, user, now=now),
                     user_id=user.id, practice_id=user.practice_id, session_id=session_id,
                     ip_address=ip_address, user_agent=user_agent)


def has_permission(permissions: frozenset[str], permission: str) -> bool:
    return any(matches(p, permission) for p in permissions)


def _expired_grant_for(conn: Connection, user_id: uuid.UUID, permission: str,
                       now: datetime) -> Grant | None:
    rows = conn.execute(select(_grants).where(
        _grants.c.user_id == user_id, _grants.c.revoked_at.is_(None),
        _grants.c.expires_at.is_not(None), _grants.c.expires_at <= now,
    ).order_by(_grants.c.expires_at.desc())).mappings()
    return next((_grant(r) for r in rows if matches(r["permission"], permission)), None)


def require(conn: Connection | Engine, user: HasRole, permission: str, *,
            actor_ctx: ActorContext | None = None, now: datetime | None = None) -> None:
    """Raise PermissionDenied unless `user` holds `permission` now.

    Pass the engine, or a connection that is read-only on SQLite (SQLite allows one
    writer, and the expired-grant event is written in a transaction of its own so it
    survives the denial). A write-locked SQLite connection gets the event on itself.
    """
    now = now or utcnow()
    if isinstance(conn, Engine):
        with transaction(conn, read_only=True) as read:
            _require(read, conn, user, permission, actor_ctx, now)
    else:
        _require(conn, conn.engine, user, permission, actor_ctx, now)


def _require(conn: Connection, engine: Engine, user: HasRole, permission: str,
             actor_ctx: ActorContext | None, now: datetime) -> None:
    if has_permission(effective_permissions(conn, user, now=now), permission):
        return
    expired = _expired_grant_for(conn, user.id, permission, now)
    if expired is None:
        raise PermissionDenied(f"user {user.username!r} (role {Role(user.role).value}) "
                               f"lacks permission {permission!r}")
    _record_expired_use(conn, engine, user, permission, expired, actor_ctx, now)
    raise PermissionDenied(
        f"user {user.username!r} lacks permission {permission!r}: the grant for it "
        f"({expired.permission!r}, id {expired.id}) expired at "
        f"{expired.expires_at.isoformat(timespec='seconds')}; ask an administrator to renew it")


def _record_expired_use(conn: Connection, engine: Engine, user: HasRole, permission: str,
                        expired: Grant, actor_ctx: ActorContext | None, now: datetime) -> None:
    kwargs = dict(
        severity="medium", user_id=user.id, username=user.username,
        description=f"use of permission {permission} after its grant expired",
        ip_address=getattr(actor_ctx, "ip_address", None),
        user_agent=getattr(actor_ctx, "user_agent", None),
        session_id=getattr(actor_ctx, "session_id", None),
        actor=getattr(actor_ctx, "actor", None) or f"user:{user.username}",
        table_name="role_grants", record_id=expired.id,
        details={"permission": permission, "grant_id": str(expired.id),
                 "expired_at": expired.expires_at.isoformat()},
        now=now,
    )
    sqlite_writer = (conn.dialect.name == "sqlite"
                     and conn.get_execution_options().get("sqlite_immediate", False))
    if sqlite_writer:
        security.record(conn, "grant_expired_use", **kwargs)
        return
    try:
        with transaction(engine) as own:
            if own.dialect.name == "postgresql":
                # If the caller's transaction already holds the audit lock we would wait
                # on ourselves; give up after a moment and fall back to the caller's.
                own.execute(text("SET LOCAL lock_timeout = '3s'"))
            security.record(own, "grant_expired_use", **kwargs)
    except OperationalError:
        security.record(conn, "grant_expired_use", **kwargs)


def grant(conn: Connection, user: HasRole, permission: str, *, granted_by: str,
          reason: str = "", expires_at: datetime | None = None,
          duration: timedelta | None = None, now: datetime | None = None) -> Grant:
    """Give `user` one permission beyond their role until `expires_at` (or now+duration)."""
    now = now or utcnow()
    permission = validate_permission(permission)
    if (expires_at is None) == (duration is None):
        raise ValidationError("grant: give exactly one of an expiry time or a duration")
    expires_at = expires_at or now + duration
    if expires_at <= now:
        raise ValidationError("grant: the expiry must be in the future")
    if expires_at - now > MAX_GRANT:
        raise ValidationError(f"grant: at most {MAX_GRANT.days} days")
    row = {"id": new_id(), "user_id": user.id, "permission": permission,
           "granted_by": granted_by[:120], "reason": reason[:500], "granted_at": now,
           "expires_at": expires_at, "revoked_at": None}
    conn.execute(insert(_grants).values(**row))
    security.record(
        conn, "grant_created", severity="medium", user_id=user.id, username=user.username,
        description=f"permission {permission} granted until {expires_at.isoformat(timespec='seconds')}",
        actor=granted_by, table_name="role_grants", record_id=row["id"],
        details={"permission": permission, "expires_at": expires_at.isoformat(),
                 "reason": reason[:500]}, now=now)
    return _grant(row)


def revoke_grant(conn: Connection, grant_id: uuid.UUID, *, revoked_by: str, reason: str = "",
                 now: datetime | None = None) -> Grant:
    """End a grant before its expiry. Unknown -> NotFoundError; already ended -> ConflictError."""
    now = now or utcnow()
    row = conn.execute(select(_grants).where(_grants.c.id == grant_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"grant {grant_id} does not exist")
    current = _grant(row)
    if current.revoked_at is not None:
        raise ConflictError(f"grant {grant_id} was already revoked at "
                            f"{current.revoked_at.isoformat(timespec='seconds')}")
    conn.execute(update(_grants).where(and_(_grants.c.id == grant_id,
                                            _grants.c.revoked_at.is_(None)))
                 .values(revoked_at=now))
    security.record(
        conn, "grant_revoked", severity="medium", user_id=current.user_id,
        description=f"permission {current.permission} revoked", actor=revoked_by,
        table_name="role_grants", record_id=grant_id,
        details={"permission": current.permission, "reason": reason[:500]}, now=now)
    return Grant(**{**current.__dict__, "revoked_at": now})
