"""Per-user security profiles: a person's own session, rate-limit and storage settings,
and their HIPAA acknowledgement.

The global policy ([auth] in the config) is both the default and the bound: a user's
setting may be stricter than the policy, never looser (a shorter idle timeout, fewer
concurrent sessions, a lower rate limit or storage quota). So a compromised or careless
account manager cannot loosen the practice's policy for one account, and tightening the
policy tightens every profile at once (effective values are the stricter of the two,
computed when used, not copied when set).

Setting a profile needs `user:manage` (the caller checks), is refused before anything
is written when a value is out of bounds (the error names the field, never the value),
and is audited with the fields changed.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Connection, func, insert, select, update

from strongroom.core import audit
from strongroom.core.config import AuthSettings
from strongroom.core.db.models import ClientFile, User, UserSecurityProfile
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError

_profiles = UserSecurityProfile.__table__
_users = User.__table__
_files = ClientFile.__table__
SETTABLE = ("session_idle_minutes", "max_sessions", "rate_limits", "storage_quota_mb")
_CLASS = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


def _user_id(conn: Connection, username: str) -> uuid.UUID:
    found = conn.execute(select(_users.c.id).where(_users.c.username == username,
                                                   _users.c.deleted_at.is_(None))).scalar()
    if found is None:
        raise NotFoundError("no such user")
    return found


def _row(conn: Connection, user_id: uuid.UUID) -> Mapping | None:
    return conn.execute(select(_profiles).where(_profiles.c.user_id == user_id)).mappings().first()


def effective(policy: AuthSettings, row: Mapping | None) -> dict:
    """The values in force for a user: the stricter of their own and the policy's."""
    own = row or {}
    limits = dict(policy.rate_limits)
    for cls, n in (own.get("rate_limits") or {}).items():
        limits[cls] = min(n, limits[cls]) if cls in limits else n
    quota = own.get("storage_quota_mb")
    if policy.storage_quota_mb is not None:
        quota = min(quota, policy.storage_quota_mb) if quota is not None else policy.storage_quota_mb
    return {
        "session_idle_minutes": min(own.get("session_idle_minutes") or policy.session_idle_minutes,
                                    policy.session_idle_minutes),
        "max_sessions": min(own.get("max_sessions") or policy.max_sessions_per_user, policy.max_sessions_per_user),
        "rate_limits": limits,
        "storage_quota_mb": quota,
    }


def effective_for(conn: Connection, policy: AuthSettings, user_id: uuid.UUID) -> dict:
    return effective(policy, _row(conn, user_id))


def storage_used_bytes(conn: Connection, user_id: uuid.UUID) -> int:
    """Client file content this user added that is still kept (removed files do not count)."""
    return int(conn.execute(select(func.coalesce(func.sum(_files.c.size_bytes), 0))
                            .where(_files.c.uploaded_by == user_id, _files.c.deleted_at.is_(None))).scalar())


def check_quota(conn: Connection, policy: AuthSettings, user_id: uuid.UUID | None, adding: int) -> None:
    """Refuse, before anything is written, content that would take a user past their quota."""
    if user_id is None:
        return
    quota = effective_for(conn, policy, user_id)["storage_quota_mb"]
    if quota is None:
        return
    used = storage_used_bytes(conn, user_id)
    if used + adding > quota * 1024 * 1024:
        raise ConflictError(f"storage quota exceeded: this account may keep {quota} MiB of client files and "
                            f"holds {used / 1048576:.1f} MiB; remove files or ask for a larger quota")


def show(conn: Connection, policy: AuthSettings, username: str) -> dict:
    """A user's profile as a person reads it: their own settings, the policy, what is in
    force, storage used, second factor and consent."""
    user_id = _user_id(conn, username)
    user = conn.execute(select(_users.c.totp_enabled, _users.c.role).where(_users.c.id == user_id)).mappings().one()
    row = _row(conn, user_id)
    own = {name: (row or {}).get(name) for name in SETTABLE}
    consented = (row or {}).get("hipaa_consent_version")
    return {
        "username": username, "own": own,
        "policy": {"session_idle_minutes": policy.session_idle_minutes,
                   "max_sessions": policy.max_sessions_per_user, "rate_limits": dict(policy.rate_limits),
                   "storage_quota_mb": policy.storage_quota_mb},
        "effective": effective(policy, row),
        "storage_used_bytes": storage_used_bytes(conn, user_id),
        "two_factor": bool(user["totp_enabled"]),
        "hipaa_consent": {"at": (row or {}).get("hipaa_consent_at"), "version": consented,
                          "required_version": policy.hipaa_consent_version,
                          "current": policy.hipaa_consent_version is None or consented == policy.hipaa_consent_version},
        "updated_at": (row or {}).get("updated_at"), "updated_by": (row or {}).get("updated_by"),
    }


def _checked(policy: AuthSettings, changes: Mapping[str, object]) -> dict:
    """The changes validated against the policy: each a stricter value or None (back to
    the policy). Raises ValidationError naming the first bad field."""
    out: dict = {}
    unknown = sorted(set(changes) - set(SETTABLE))
    if unknown:
        raise ValidationError(f"profile: unknown setting(s); settable: {', '.join(SETTABLE)}")
    for name, value in changes.items():
        if value is None:
            out[name] = None
            continue
        if name == "rate_limits":
            out[name] = _checked_limits(policy, value)
            continue
        bound = {"session_idle_minutes": policy.session_idle_minutes, "max_sessions": policy.max_sessions_per_user,
                 "storage_quota_mb": policy.storage_quota_mb or 10_000_000}[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= bound:
            raise ValidationError(f"profile.{name}: must be a whole number from 1 to {bound} (the policy's; "
                                  "a user's setting may be stricter than the policy, never looser)")
        out[name] = value
    return out


def _checked_limits(policy: AuthSettings, value: object) -> dict[str, int] | None:
    if not isinstance(value, Mapping) or len(value) > 64:
        raise ValidationError("profile.rate_limits: must map command classes to hourly limits")
    limits: dict[str, int] = {}
    for cls, n in value.items():
        if not isinstance(cls, str) or not _CLASS.match(cls):
            raise ValidationError("profile.rate_limits: a command class is a lower-case name like exports")
        bound = policy.rate_limits.get(cls, 1_000_000)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= bound:
            raise ValidationError(f"profile.rate_limits.{cls}: must be a whole number from 0 to {bound} "
                                  "(the policy's; a user's limit may be lower, never higher)")
        limits[cls] = n
    return limits or None


def _store(conn: Connection, user_id: uuid.UUID, values: Mapping[str, object], *, now: datetime,
           actor: str) -> None:
    """Write these columns of the user's profile row, making the row on first use."""
    if _row(conn, user_id) is None:
        conn.execute(insert(_profiles), [{"user_id": user_id, **values, "updated_at": now, "updated_by": actor}])
    else:
        conn.execute(update(_profiles).where(_profiles.c.user_id == user_id)
                     .values(**values, updated_at=now, updated_by=actor))


def update_profile(conn: Connection, policy: AuthSettings, username: str, changes: Mapping[str, object], *,
                   actor: str, now: datetime | None = None) -> dict:
    """Set (or, with None, clear back to the policy) some of a user's own settings."""
    now = now or utcnow()
    if not changes:
        raise ValidationError("profile: nothing to change")
    values = _checked(policy, changes)
    user_id = _user_id(conn, username)
    _store(conn, user_id, values, now=now, actor=actor)
    audit.append(conn, actor=actor, action="SECURITY", table_name="user_security_profiles", record_id=user_id,
                 details={"event": "profile_updated", "user": username, "fields": sorted(values)})
    return show(conn, policy, username)


def record_consent(conn: Connection, policy: AuthSettings, username: str, version: str, *, actor: str,
                   now: datetime | None = None) -> dict:
    """Record that a user acknowledged the practice's HIPAA notice at `version`."""
    now = now or utcnow()
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ValidationError("consent version: letters, digits, '.', '_' and '-', at most 32 characters")
    user_id = _user_id(conn, username)
    _store(conn, user_id, {"hipaa_consent_at": now, "hipaa_consent_version": version}, now=now, actor=actor)
    audit.append(conn, actor=actor, action="SECURITY", table_name="user_security_profiles", record_id=user_id,
                 details={"event": "hipaa_consent", "user": username, "version": version})
    return show(conn, policy, username)


def without_current_consent(conn: Connection, policy: AuthSettings) -> list[str]:
    """Active users who have not acknowledged the version in force (none when untracked)."""
    if policy.hipaa_consent_version is None:
        return []
    rows = conn.execute(select(_users.c.username, _profiles.c.hipaa_consent_version)
                        .select_from(_users.outerjoin(_profiles, _profiles.c.user_id == _users.c.id))
                        .where(_users.c.deleted_at.is_(None), _users.c.disabled.is_(False))
                        .order_by(_users.c.username))
    return [name for name, version in rows if version != policy.hipaa_consent_version]
