"""Account management by a person: the guards around users.lock/unlock/reset_2fa and
rbac.grant/revoke_grant when someone other than the machine's operator acts.

The functions in users and rbac do what they are told; these decide whether the person
asking may ask. Four rules, each checked before anything is written, so a refusal
changes nothing:

- Nobody locks themselves out, or takes away their own power to manage users (by
  changing their own role): the person at the keyboard would be cut off mid-task.
- The last active account able to manage users (a role holding `user:manage`, not
  locked, not disabled) cannot be locked or moved to a role without it: the practice
  would be left with nobody who can unlock anyone short of the offline CLI.
- A grant never gives more than the granter holds, and nobody grants to themselves:
  `user:manage` must not become a way around the role design (an ADMIN may not hand
  out `keys:manage`, which the ADMIN role deliberately lacks).
- Nobody acts on an account (lock, unlock, reset its second factor, end its session,
  change its role, grant it or revoke its grants) that holds a permission they lack, by
  role or by grant: a clinical ADMIN may not lock out, or take over the second factor
  of, an operator `admin` who holds every permission.
- Every change is a security event mirrored into the audit chain (users and rbac
  record them); a role change is recorded here.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update
from strongroom.core.auth import invitation, rbac, security, sessions, users
from strongroom.core.auth.users import UserRecord
from strongroom.core.config import Settings
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import AuthSession, Role, RoleGrant, User
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied
from strongroom.core.principal import Principal

_users = User.__table__
_grants = RoleGrant.__table__
_sessions = AuthSession.__table__
MANAGE = "user:manage"


def admin_roles() -> frozenset[Role]:
    """The roles whose own permissions include managing users."""
    return frozenset(role for role, perms in rbac.ROLE_PERMISSIONS.items()
                     if rbac.has_permission(perms, MANAGE))


def _active(user: UserRecord, now: datetime) -> bool:
    return not user.disabled and not user.is_locked(now)


def active_admins(conn: Connection, *, now: datetime | None = None) -> list[UserRecord]:
    """Accounts that can manage users right now by their role (grants are temporary and
    do not count), not locked, not disabled, not tombstoned."""
    now = now or utcnow()
    roles = admin_roles()
    return [u for u in users.list_users(conn) if u.role in roles and _active(u, now)]


def _target(conn: Connection, username: str) -> UserRecord:
    row = conn.execute(select(_users.c.deleted_at).where(_users.c.username == username)).first()
    if row is None or row.deleted_at is not None:
        raise NotFoundError("no user by that name")
    return users.get_user(conn, username)


def _is_self(by: Principal, user: UserRecord) -> bool:
    return by.user_id is not None and by.user_id == user.id


def _refuse_last_admin(conn: Connection, user: UserRecord, action: str, now: datetime) -> None:
    if user.role not in admin_roles() or not _active(user, now):
        return
    others = [u for u in active_admins(conn, now=now) if u.id != user.id]
    if not others:
        raise ConflictError(
            f"refused to {action} {user.username!r}: it is the last active account able to "
            f"manage users (role {user.role.value}); give another account an administrator "
            "role first, or nobody could unlock or manage accounts from the console")


def refuse_stronger(conn: Connection, by: Principal, user: UserRecord, action: str, *,
                    now: datetime | None = None) -> None:
    """PermissionDenied when `user` holds (by role or an active grant) a permission `by`
    lacks. The refusal names the permissions, not the account."""
    if _is_self(by, user):
        return          # acting on oneself is governed by the rules above
    held = rbac.effective_permissions(conn, user, now=now or utcnow())
    beyond = sorted(p for p in _concrete(held) if not by.can(p))
    if beyond:
        raise PermissionDenied(f"refused: {by.actor} may not {action} an account holding permissions it "
                               f"lacks ({', '.join(beyond[:5])}{', ...' if len(beyond) > 5 else ''})")


def may_revoke_session(conn: Connection, by: Principal, session_id: uuid.UUID) -> None:
    """Ending someone's session is acting on their account: refused as `refuse_stronger`
    refuses. An unknown session is left to the revocation to report."""
    row = conn.execute(select(_sessions.c.user_id).where(_sessions.c.id == session_id)).first()
    if row is None or row.user_id is None:
        return
    refuse_stronger(conn, by, users.get_user_by_id(conn, row.user_id), "end a session of")


def lock_user(conn: Connection, by: Principal, username: str, *, minutes: int | None = None,
              reason: str = "", now: datetime | None = None) -> UserRecord:
    """Lock an account (indefinitely, or for `minutes`) and end its sessions; refuses
    to lock oneself or the last active administrator."""
    now = now or utcnow()
    user = _target(conn, username)
    if _is_self(by, user):
        raise PermissionDenied("refused: you cannot lock your own account")
    refuse_stronger(conn, by, user, "lock", now=now)
    _refuse_last_admin(conn, user, "lock", now)
    return users.lock(conn, user, by=by.actor, minutes=minutes, reason=reason, now=now)


def unlock_user(conn: Connection, by: Principal, username: str, *, reason: str = "",
                now: datetime | None = None) -> UserRecord:
    """Clear a lock and the failed-login count; a ConflictError when there is neither."""
    now = now or utcnow()
    user = _target(conn, username)
    refuse_stronger(conn, by, user, "unlock", now=now)
    if not user.is_locked(now) and not user.failed_logins:
        raise ConflictError(f"user {username!r} is not locked and has no failed logins to clear")
    return users.unlock(conn, user, by=by.actor, reason=reason, now=now)


def reset_second_factor(conn: Connection, keyring: Keyring, settings: Settings, by: Principal,
                        username: str, *, now: datetime | None = None) -> UserRecord:
    """Wipe the user's TOTP secret (their authenticator stops working at once) and end
    their sessions; they enrol a new one at their next login. Nothing secret is returned:
    whoever resets a second factor must not be able to use the next one."""
    now = now or utcnow()
    user = _target(conn, username)
    refuse_stronger(conn, by, user, "reset the second factor of", now=now)
    if user.disabled:
        raise ConflictError(f"user {username!r} is disabled; enable the account before resetting its 2FA")
    return users.reset_2fa(conn, keyring, settings, user, by=by.actor, now=now)


def change_role(conn: Connection, settings: Settings, by: Principal, username: str,
                role: str | Role, *, reason: str = "", now: datetime | None = None) -> UserRecord:
    """Give a user another role. Refuses removing one's own or the last active
    administrator's power to manage users, and moving anyone from or to a role that
    holds more than the person asking. Sessions end (their permissions change); moving
    into a role that requires 2FA without an enrolment is refused."""
    now = now or utcnow()
    new = users.parse_role(role)
    user = _target(conn, username)
    if new is user.role:
        raise ConflictError(f"user {username!r} already has role {new.value}")
    losing_admin = user.role in admin_roles() and new not in admin_roles()
    if losing_admin and _is_self(by, user):
        raise PermissionDenied("refused: you cannot remove your own administrator role")
    if losing_admin:
        _refuse_last_admin(conn, user, f"move to role {new.value}", now)
    refuse_stronger(conn, by, user, "change the role of", now=now)
    for side in (user.role, new):
        _refuse_beyond(by, side)
    if users.requires_2fa(new, settings) and not user.totp_enabled:
        raise ConflictError(f"role {new.value} requires two-factor authentication and {username!r} "
                            "has no TOTP enrolment; reset their 2FA first")
    conn.execute(update(_users).where(_users.c.id == user.id).values(role=new, updated_at=now))
    ended = sessions.revoke_user_sessions(conn, user.id, "role_changed", now=now)
    security.record(conn, "role_changed", severity="medium", user_id=user.id, username=user.username,
                    actor=by.actor, description=f"role changed from {user.role.value} to {new.value}",
                    details={"from": user.role.value, "to": new.value, "reason": reason[:500],
                             "sessions_revoked": ended}, now=now)
    return users.get_user_by_id(conn, user.id)


def invite_user(conn: Connection, keyring: Keyring, settings: Settings, by: Principal, username: str,
                role: str | Role, full_name: str = "", email: str | None = None, *,
                now: datetime | None = None) -> invitation.Invitation:
    """A new account in the caller's practice (the only one, for the local operator),
    for a person who sets their own password at first login (core/auth/invitation.py).
    Refused for a role that holds permissions the person asking does not: nobody makes
    an account stronger than their own."""
    new = users.parse_role(role)
    _refuse_beyond(by, new)
    practice_id = by.practice_id or users.only_practice_id(conn)
    return invitation.invite(conn, keyring, settings, practice_id, username, new, full_name, email,
                             actor=by.actor, now=now)


def _refuse_beyond(by: Principal, role: Role) -> None:
    beyond = sorted(p for p in _concrete(rbac.role_permissions(role)) if not by.can(p))
    if beyond:
        raise PermissionDenied(f"refused: role {role.value} holds permissions {by.actor} does not "
                               f"({', '.join(beyond[:5])}{', ...' if len(beyond) > 5 else ''})")


def _concrete(patterns: frozenset[str] | set[str]) -> set[str]:
    """Every known permission a set of permissions or patterns covers."""
    return {p for p in rbac.PERMISSIONS if rbac.has_permission(frozenset(patterns), p)}


def grant_permission(conn: Connection, by: Principal, username: str, permission: str, *,
                     duration: timedelta | None = None, expires_at: datetime | None = None,
                     reason: str = "", now: datetime | None = None) -> rbac.Grant:
    """Grant one permission (or pattern) until an expiry; never to oneself and never
    beyond what the granter holds."""
    now = now or utcnow()
    user = _target(conn, username)
    permission = rbac.validate_permission(permission)
    if _is_self(by, user):
        raise PermissionDenied("refused: you cannot grant permissions to yourself")
    refuse_stronger(conn, by, user, "grant to", now=now)
    beyond = sorted(p for p in _concrete({permission}) if not by.can(p))
    if beyond:
        raise PermissionDenied(f"refused: {by.actor} cannot grant what it does not hold ({', '.join(beyond)})")
    return rbac.grant(conn, user, permission, granted_by=by.actor, reason=reason,
                      duration=duration, expires_at=expires_at, now=now)


def revoke_permission_grant(conn: Connection, by: Principal, grant_id: uuid.UUID, *,
                            reason: str = "", now: datetime | None = None) -> rbac.Grant:
    """End a grant early. Unknown -> NotFoundError; already ended -> ConflictError."""
    now = now or utcnow()
    row = conn.execute(select(_grants).where(_grants.c.id == grant_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"grant {grant_id} does not exist")
    refuse_stronger(conn, by, users.get_user_by_id(conn, row["user_id"]), "revoke a grant of", now=now)
    if row["expires_at"] is not None and row["expires_at"] <= now and row["revoked_at"] is None:
        raise ConflictError(f"grant {grant_id} already expired at "
                            f"{row['expires_at'].isoformat(timespec='seconds')}")
    return rbac.revoke_grant(conn, grant_id, revoked_by=by.actor, reason=reason, now=now)


def grant_owner(conn: Connection, grant_id: uuid.UUID) -> str | None:
    """The username a grant belongs to, or None for an unknown grant."""
    return conn.execute(select(_users.c.username).join(_grants, _grants.c.user_id == _users.c.id)
                        .where(_grants.c.id == grant_id)).scalar()


def grants_of(conn: Connection, username: str, *, include_ended: bool = False,
              now: datetime | None = None) -> list[rbac.Grant]:
    """A user's grants, newest first; ended (expired or revoked) ones on request."""
    user = _target(conn, username)
    return rbac.list_grants(conn, user_id=user.id, active_only=not include_ended, now=now)
