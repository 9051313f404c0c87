"""User accounts: creation, listing, locking, 2FA reset and password changes.

Roles named in `auth.require_2fa_roles` are enrolled in TOTP the moment they are
created, so no such account ever exists that a password alone could open. Every change
is a security event with its audit entry; none of them records the password or secret.

A 2FA reset wipes the secret and leaves the account *pending enrolment* (`totp_enabled`
with no secret): no password alone opens it, and at the owner's next login the right
password earns them, and only them, a new secret (core.auth.enrolment). Whoever reset it
never sees a secret they could use to log in as the owner.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as DBIntegrityError

from strongroom.core.auth import passwords, security, sessions, totp
from strongroom.core.auth.totp import Enrolment
from strongroom.core.config import Settings
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import Practice, Role, User
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.ids import new_id

_users = User.__table__
_practices = Practice.__table__

USERNAME = re.compile(r"^[a-z0-9._-]{3,64}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# "Locked until further notice": a date no clock reaches, so one comparison covers both.
INDEFINITE = datetime(9999, 12, 31, tzinfo=timezone.utc)


@dataclass(frozen=True)
class UserRecord:
    """A user as the rest of the system sees one: no password hash, no TOTP secret."""

    id: uuid.UUID
    practice_id: uuid.UUID
    username: str
    full_name: str
    email: str | None
    role: Role
    totp_enabled: bool
    failed_logins: int
    locked_until: datetime | None
    last_login_at: datetime | None
    disabled: bool
    created_at: datetime
    totp_pending: bool = False      # 2FA reset: the owner enrols a new secret at next login

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def as_dict(self) -> dict:
        return {**self.__dict__, "role": self.role.value}


def record_of(row) -> UserRecord:
    return UserRecord(
        row["id"], row["practice_id"], row["username"], row["full_name"], row["email"],
        Role(row["role"]), row["totp_enabled"], row["failed_logins"], row["locked_until"],
        row["last_login_at"], row["disabled"], row["created_at"],
        bool(row["totp_enabled"]) and row["totp_secret_enc"] is None)


def validate_username(username: str) -> str:
    if not USERNAME.match(username):
        raise ValidationError("username: 3-64 characters of lowercase a-z, 0-9, '.', '_' or '-'")
    return username


def parse_role(value: str | Role) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError("role: expected one of "
                              + ", ".join(r.value for r in Role)) from None


def requires_2fa(role: Role, settings: Settings) -> bool:
    return Role(role).value in settings.auth.require_2fa_roles


def only_practice_id(conn: Connection) -> uuid.UUID:
    """The practice when there is exactly one, else a ValidationError asking to choose."""
    ids = list(conn.execute(select(_practices.c.id).where(_practices.c.deleted_at.is_(None))
                            .limit(2)).scalars())
    if len(ids) != 1:
        raise ValidationError("practice: " + ("no practice exists yet (run `strongroom init`)"
                                             if not ids else "several practices exist; pass --practice-id"))
    return ids[0]


def get_user(conn: Connection, username: str) -> UserRecord:
    row = conn.execute(select(_users).where(_users.c.username == username)).mappings().first()
    if row is None:
        raise NotFoundError("no user by that name")
    return record_of(row)


def get_user_by_id(conn: Connection, user_id: uuid.UUID) -> UserRecord:
    row = conn.execute(select(_users).where(_users.c.id == user_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"user {user_id} does not exist")
    return record_of(row)


def list_users(conn: Connection, *, practice_id: uuid.UUID | None = None) -> list[UserRecord]:
    """Every user not tombstoned, by username."""
    query = select(_users).where(_users.c.deleted_at.is_(None)).order_by(_users.c.username)
    if practice_id is not None:
        query = query.where(_users.c.practice_id == practice_id)
    return [record_of(row) for row in conn.execute(query).mappings()]


def create_user(conn: Connection, keyring: Keyring, settings: Settings, practice_id: uuid.UUID,
                username: str, password: str, role: str | Role, full_name: str = "",
                email: str | None = None, *, actor: str = "system", enrol_now: bool = True,
                now: datetime | None = None) -> tuple[UserRecord, Enrolment | None]:
    """Create a user; returns the enrolment (shown once) when the role requires 2FA.
    `enrol_now=False` leaves the second factor to the holder, who enrols at first login
    (an invited account: the administrator must never see the holder's secret)."""
    now = now or utcnow()
    username = validate_username(username)
    role = parse_role(role)
    if email is not None and not _EMAIL.match(email):
        raise ValidationError("email: not an email address")
    passwords.check_policy(password, settings.auth, username=username)
    if conn.execute(select(_practices.c.id).where(_practices.c.id == practice_id)).first() is None:
        raise NotFoundError(f"practice {practice_id} does not exist")
    if conn.execute(select(_users.c.id).where(_users.c.username == username)).first() is not None:
        raise ConflictError(f"user {username!r} already exists")
    user_id = new_id()
    try:
        conn.execute(insert(_users).values(
            id=user_id, practice_id=practice_id, username=username, full_name=full_name[:200],
            email=email, role=role, password_hash=passwords.hash_password(password, settings.auth),
            created_at=now, updated_at=now))
    except DBIntegrityError:  # a concurrent creation won the unique constraint
        raise ConflictError(f"user {username!r} already exists") from None
    enrolment = None
    if enrol_now and requires_2fa(role, settings):
        enrolment = totp.enrol(conn, keyring, user_id, username, settings.auth.totp_issuer, now=now)
    security.record(conn, "user_created", user_id=user_id, username=username, actor=actor,
                    description=f"user created with role {role.value}",
                    details={"role": role.value, "second_factor_enrolled": enrolment is not None}, now=now)
    return get_user_by_id(conn, user_id), enrolment


def _set(conn: Connection, user_id: uuid.UUID, now: datetime, **values) -> None:
    conn.execute(update(_users).where(_users.c.id == user_id).values(updated_at=now, **values))


def lock(conn: Connection, user: UserRecord, *, by: str, minutes: int | None = None,
         reason: str = "", now: datetime | None = None) -> UserRecord:
    """Lock for `minutes`, or indefinitely when None; open sessions end at once."""
    now = now or utcnow()
    if minutes is not None and minutes < 1:
        raise ValidationError("minutes: must be at least 1 (omit it to lock indefinitely)")
    until = INDEFINITE if minutes is None else now + timedelta(minutes=minutes)
    _set(conn, user.id, now, locked_until=until)
    ended = sessions.revoke_user_sessions(conn, user.id, "account_locked", now=now)
    security.record(conn, "user_locked", severity="medium", user_id=user.id,
                    username=user.username, actor=by, description="account locked by an administrator",
                    details={"until": None if minutes is None else until.isoformat(),
                             "reason": reason[:500], "sessions_revoked": ended}, now=now)
    return get_user_by_id(conn, user.id)


def unlock(conn: Connection, user: UserRecord, *, by: str, reason: str = "",
           now: datetime | None = None) -> UserRecord:
    """Clear a lock and the failed-login counter."""
    now = now or utcnow()
    _set(conn, user.id, now, locked_until=None, failed_logins=0)
    security.record(conn, "user_unlocked", user_id=user.id, username=user.username, actor=by,
                    description="account unlocked", details={"reason": reason[:500]}, now=now)
    return get_user_by_id(conn, user.id)


def reset_2fa(conn: Connection, keyring: Keyring, settings: Settings, user: UserRecord, *,
              by: str, now: datetime | None = None) -> UserRecord:
    """Wipe the TOTP secret (the old authenticator stops working at once), leave the
    account pending enrolment and end open sessions. No new secret is made here: the
    owner gets one at their next login, so the person resetting never holds it."""
    now = now or utcnow()
    _set(conn, user.id, now, totp_secret_enc=None, totp_enabled=True, totp_last_step=None)
    ended = sessions.revoke_user_sessions(conn, user.id, "totp_reset", now=now)
    security.record(conn, "totp_reset", severity="medium", user_id=user.id,
                    username=user.username, actor=by,
                    description="TOTP secret wiped; the owner enrols a new one at next login",
                    details={"sessions_revoked": ended, "pending_enrolment": True}, now=now)
    return get_user_by_id(conn, user.id)


def set_password(conn: Connection, settings: Settings, user: UserRecord, new_password: str, *,
                 by: str, now: datetime | None = None) -> UserRecord:
    """Replace the password (policy-checked) and end open sessions."""
    now = now or utcnow()
    passwords.check_policy(new_password, settings.auth, username=user.username)
    _set(conn, user.id, now, password_hash=passwords.hash_password(new_password, settings.auth),
         failed_logins=0)
    ended = sessions.revoke_user_sessions(conn, user.id, "password_changed", now=now)
    security.record(conn, "password_changed", severity="medium", user_id=user.id,
                    username=user.username, actor=by, description="password changed",
                    details={"sessions_revoked": ended}, now=now)
    return get_user_by_id(conn, user.id)
