"""user.*, role.list: accounts, roles, grants, and a user's security profile, consent
and devices."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class UsernameArgs(Args):
    username: str = Field(min_length=1, max_length=64)


class LockArgs(UsernameArgs):
    minutes: int | None = Field(default=None, ge=1, le=525600)
    reason: str = Field(default="", max_length=500)


class ReasonArgs(UsernameArgs):
    reason: str = Field(default="", max_length=500)


class RoleArgs(UsernameArgs):
    role: str = Field(min_length=1, max_length=32)
    reason: str = Field(default="", max_length=500)


class GrantsArgs(UsernameArgs):
    include_ended: bool = False


class GrantArgs(UsernameArgs):
    permission: str = Field(min_length=1, max_length=120)
    duration: str = Field(min_length=1, max_length=16, description="30m, 8h, 2d, 1w")
    reason: str = Field(default="", max_length=500)


class RevokeGrantArgs(Args):
    grant_id: uuid.UUID
    reason: str = Field(default="", max_length=500)


class UserAddArgs(UsernameArgs):
    role: str = Field(min_length=1, max_length=32)
    full_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)


class UserInfo(Result):
    """An account as the rest of the system sees one: no password hash, no TOTP secret."""
    id: uuid.UUID
    practice_id: uuid.UUID
    username: str
    full_name: str
    email: str | None
    role: str
    totp_enabled: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    disabled: bool
    created_at: datetime
    totp_pending: bool          # 2FA reset: the owner enrols a new secret at next login


class TotpResetResult(Result):
    user: UserInfo
    pending_enrolment: bool


class RoleInfo(Result):
    role: str
    name: str
    scope: Literal["practice", "operator"]
    summary: str
    permissions: list[str]
    assignable: bool


class GrantInfo(Result):
    id: uuid.UUID
    user_id: uuid.UUID
    permission: str
    granted_by: str
    reason: str
    granted_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


# --- the security profile (core/auth/profiles.py) ------------------------------------------

class TargetArgs(Args):
    username: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="whose; default: the caller's own")


class ProfileSetArgs(Args):
    username: str = Field(min_length=1, max_length=64)
    session_idle_minutes: int | None = Field(default=None, description="0 clears it back to the policy")
    max_sessions: int | None = Field(default=None, description="0 clears it back to the policy")
    storage_quota_mb: int | None = Field(default=None, description="0 clears it back to the policy")
    rate_limits: dict[str, int] | None = Field(default=None, description="class -> per hour; {} clears them")


class ConsentArgs(Args):
    version: str = Field(min_length=1, max_length=32)
    username: str | None = Field(default=None, min_length=1, max_length=64,
                                 description="whose; default: the caller's own (others need user:manage)")


class ProfileValues(Result):
    """Session, rate-limit and quota settings; None: not set (the policy applies)."""
    session_idle_minutes: int | None
    max_sessions: int | None
    rate_limits: dict[str, int] | None        # command class -> commands per hour
    storage_quota_mb: int | None


class HipaaConsent(Result):
    at: datetime | None
    version: str | None
    required_version: str | None
    current: bool


class ProfileResult(Result):
    username: str
    own: ProfileValues
    policy: ProfileValues
    effective: ProfileValues
    storage_used_bytes: int
    two_factor: bool
    hipaa_consent: HipaaConsent
    updated_at: datetime | None
    updated_by: str | None


class DeviceInfo(Result):
    id: uuid.UUID
    kind: str
    label: str | None
    fingerprint: str        # the first 16 hex digits; never the key or the address
    first_seen_at: datetime
    last_seen_at: datetime
    logins: int


class InvitationResult(Result):
    """A new account and its invitation, shown this once: the holder gives the token at
    the login screen (or `auth.invitation.accept`) with a password of their own."""
    user: UserInfo
    invitation: str
    expires_at: datetime
