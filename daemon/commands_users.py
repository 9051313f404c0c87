"""User management commands: add (by invitation), lock, unlock, reset 2FA, change role, grants.

All need `user:manage`; the guards (no self-lock, never the last administrator, no
grant beyond one's own) are core.auth.management's. A refused change writes nothing to
the account, but the attempt is kept as a `user_change_refused` security event, in a
transaction of its own so the refusal does not roll it back. Sessions a change ends are
dropped from the transport's token cache at once, so a locked user's next command is
refused even within the cache's few seconds.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from strongroom.core.auth import management, rbac, security, sessions
from strongroom.core.auth.users import get_user
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied

from strongroom.core.protocol.models.users import (GrantArgs, GrantInfo, GrantsArgs, InvitationResult, LockArgs,
                                                   ReasonArgs, RevokeGrantArgs, RoleArgs, RoleInfo, TotpResetResult,
                                                   UserAddArgs, UserInfo, UsernameArgs)
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

MANAGE = "user:manage"


def _open_sessions(conn, username: str) -> list[uuid.UUID]:
    try:
        user = get_user(conn, username)
    except NotFoundError:
        return []
    return [s.id for s in sessions.user_sessions(conn, user.id, now=utcnow())]


def _change(d: "Daemon", call: Call, action: str, username: str | None,
            change: Callable[[Any], Any]) -> Any:
    """Run one management change in a transaction; keep the evidence of a refusal."""
    p = call.principal
    try:
        with transaction(d.ctx.engine) as conn:
            # Sessions whose cached permissions this change makes stale (or ends).
            stale = _open_sessions(conn, username) if username else []
            result = change(conn)
    except (PermissionDenied, ConflictError) as refusal:
        with transaction(d.ctx.engine) as conn:
            security.record(conn, "user_change_refused", severity="medium", username=username,
                            actor=p.actor, session_id=p.session_id, ip_address=p.ip_address,
                            description=f"{action} refused",
                            details={"action": action, "why": str(refusal)[:300]})
        d.publish_security("user_change_refused", action=action)
        raise
    for session_id in stale:
        d.forget_session(session_id)
    d.publish_security(action)
    return result


@command("user.lock", permission=MANAGE, args=LockArgs, result=UserInfo)
def user_lock_cmd(d: "Daemon", call: Call) -> dict:
    """Lock an account (indefinitely or for N minutes) and end its sessions."""
    a: LockArgs = call.args
    return _change(d, call, "user_locked", a.username, lambda conn: management.lock_user(
        conn, call.principal, a.username, minutes=a.minutes, reason=a.reason)).as_dict()


@command("user.unlock", permission=MANAGE, args=ReasonArgs, result=UserInfo)
def user_unlock_cmd(d: "Daemon", call: Call) -> dict:
    """Unlock an account and clear its failed-login count."""
    a: ReasonArgs = call.args
    return _change(d, call, "user_unlocked", a.username, lambda conn: management.unlock_user(
        conn, call.principal, a.username, reason=a.reason)).as_dict()


@command("user.totp.reset", permission=MANAGE, args=UsernameArgs, result=TotpResetResult)
def user_reset_2fa_cmd(d: "Daemon", call: Call) -> dict:
    """Wipe a user's TOTP secret and end their sessions; they enrol a new one at next login."""
    a: UsernameArgs = call.args
    user = _change(d, call, "totp_reset", a.username, lambda conn: management.reset_second_factor(
        conn, d.ctx.keyring, d.ctx.settings, call.principal, a.username))
    # No secret in the reply: whoever resets a second factor must not hold the next one.
    # The owner is offered it at their next login (auth.login -> enrolment_required).
    return {"user": user.as_dict(), "pending_enrolment": True}


@command("user.add", permission=MANAGE, args=UserAddArgs, result=InvitationResult)
def user_add_cmd(d: "Daemon", call: Call) -> dict:
    """Make an account for a person, who sets the password (and enrols a second factor,
    where the role requires one) at first login with the invitation returned here, once.
    Only roles within the caller's own permissions."""
    a: UserAddArgs = call.args
    made = _change(d, call, "user_created", a.username, lambda conn: management.invite_user(
        conn, d.ctx.keyring, d.ctx.settings, call.principal, a.username, a.role, a.full_name, a.email))
    return {"user": made.user.as_dict(), "invitation": made.token, "expires_at": made.expires_at.isoformat()}


@command("user.role.set", permission=MANAGE, args=RoleArgs, result=UserInfo)
def user_set_role_cmd(d: "Daemon", call: Call) -> dict:
    """Give a user another role (their sessions end so the new permissions apply)."""
    a: RoleArgs = call.args
    return _change(d, call, "role_changed", a.username, lambda conn: management.change_role(
        conn, d.ctx.settings, call.principal, a.username, a.role, reason=a.reason)).as_dict()


# One name per role, so the clinical ADMIN and the operator admin never read as one role
# spelt twice, and what each is for.
ROLE_TEXT = {
    Role.ADMIN: ("practice admin", "practice", "practice owner: clinical data, people, evidence"),
    Role.MANAGER: ("manager", "practice", "clinical data, audit and compliance reading"),
    Role.PRACTITIONER: ("practitioner", "practice", "clinical data of their practice"),
    Role.STAFF: ("staff", "practice", "front desk: schedules, masked client details"),
    Role.OP_ADMIN: ("operator admin", "operator", "runs Strongroom: everything, including keys"),
    Role.OPERATOR: ("operator", "operator", "runs jobs, never reads PHI or manages people"),
    Role.AUDITOR: ("auditor", "operator", "reads audit, security and compliance evidence"),
}


@command("role.list", permission=MANAGE, result=list[RoleInfo])
def roles_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Every role once: its value (as user.role.set takes it), name, scope (practice or
    operator), what it is for, its permissions, and whether the caller may give it (a
    role holding a permission the caller lacks is refused by user.role.set)."""
    out = []
    for role in Role:
        name, scope, summary = ROLE_TEXT[role]
        patterns = rbac.role_permissions(role)
        covered = [p for p in rbac.PERMISSIONS if rbac.has_permission(patterns, p)]
        out.append({"role": role.value, "name": name, "scope": scope, "summary": summary,
                    "permissions": sorted(patterns),
                    "assignable": all(call.principal.can(p) for p in covered)})
    return out


@command("user.grant.list", permission=MANAGE, args=GrantsArgs, result=list[GrantInfo])
def user_grants_cmd(d: "Daemon", call: Call) -> list[dict]:
    """A user's permission grants, newest first (ended ones with include_ended)."""
    a: GrantsArgs = call.args
    now = utcnow()
    with transaction(d.ctx.engine, read_only=True) as conn:
        grants = management.grants_of(conn, a.username, include_ended=a.include_ended, now=now)
    return [{**g.__dict__, "active": g.active(now)} for g in grants]


@command("user.grant.add", permission=MANAGE, args=GrantArgs, result=GrantInfo)
def user_grant_cmd(d: "Daemon", call: Call) -> dict:
    """Grant one permission beyond the user's role until an expiry (e.g. 8h, 2d)."""
    a: GrantArgs = call.args
    duration = rbac.parse_duration(a.duration)
    grant = _change(d, call, "grant_created", a.username, lambda conn: management.grant_permission(
        conn, call.principal, a.username, a.permission, duration=duration, reason=a.reason))
    return {**grant.__dict__, "active": True}


@command("user.grant.revoke", permission=MANAGE, args=RevokeGrantArgs, result=GrantInfo)
def user_revoke_grant_cmd(d: "Daemon", call: Call) -> dict:
    """End a permission grant before its expiry."""
    a: RevokeGrantArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        username = management.grant_owner(conn, a.grant_id)
    grant = _change(d, call, "grant_revoked", username, lambda conn: management.revoke_permission_grant(
        conn, call.principal, a.grant_id, reason=a.reason))
    return {**grant.__dict__, "active": False}
