"""Inviting a person: an account an administrator makes (from the console or the control
socket) whose password only its holder ever knows.

`invite` creates the account with a random password nobody is shown, and answers with an
invitation: a token to hand to the person (in person, or over the practice's secure
channel) and when it expires. At the login screen the person gives the token and a
password of their own choosing (`accept`): the password is checked against the policy
and stored, and the login goes on as any other, so a role that requires a second factor
enrols one next, shown only to the holder (core/auth/enrolment.py).

Nothing about an invitation is stored: the token carries its expiry and a fingerprint of
the account's password hash, sealed with the system data key and bound to the user's row
(associated data users / invitation / user id), so any daemon on the database can accept
it, and it is good once: accepting it changes the password hash, and with it the
fingerprint, as does an administrator's password reset. A token never reaches a log
line, an exception message or a security event.
"""
from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, Engine, select

from strongroom.core.auth import login as auth_login
from strongroom.core.auth import security, users
from strongroom.core.auth.enrolment import open_for_user, password_fingerprint, seal_for_user
from strongroom.core.config import Settings
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import User
from strongroom.core.db.types import utcnow
from strongroom.core.errors import AuthError

_users = User.__table__
LIFETIME = timedelta(days=3)
_AAD = ("users", "invitation")
INVALID = "invalid invitation: check it was copied whole, or ask for a new one"
USED = "this invitation was used or replaced: log in with your password, or ask for a new one"


@dataclass(frozen=True)
class Invitation:
    """What the administrator hands to the person: shown once, stored nowhere."""

    user: users.UserRecord
    expires_at: datetime
    token: str = field(repr=False)

    def as_dict(self) -> dict:
        return {"user": self.user.as_dict(), "expires_at": self.expires_at.isoformat(), "token": self.token}


def invite(conn: Connection, keyring: Keyring, settings: Settings, practice_id: uuid.UUID, username: str,
           role: str, full_name: str = "", email: str | None = None, *, actor: str,
           now: datetime | None = None) -> Invitation:
    """A new account whose holder sets the password, and enrols a second factor where
    the role requires one, at first login."""
    now = now or utcnow()
    unknown_password = secrets.token_urlsafe(32) + "aA1!"   # never shown; meets any policy
    user, _ = users.create_user(conn, keyring, settings, practice_id, username, unknown_password, role,
                                full_name, email, actor=actor, enrol_now=False, now=now)
    return reissue(conn, keyring, user, actor=actor, now=now, first=True)


def reissue(conn: Connection, keyring: Keyring, user: users.UserRecord, *, actor: str,
            now: datetime | None = None, first: bool = False) -> Invitation:
    """An invitation for `user` (a new one for an account not yet taken up voids nothing
    by itself: every invitation for the same password hash stays good until one is
    accepted or it expires)."""
    now = now or utcnow()
    password_hash = conn.execute(select(_users.c.password_hash).where(_users.c.id == user.id)).scalar_one()
    expires_at = now + LIFETIME
    token = seal_for_user(conn, keyring, _AAD, user.id, {
        "expires": expires_at.timestamp(), "password": password_fingerprint(password_hash)})
    security.record(conn, "user_invited", severity="low", user_id=user.id, username=user.username,
                    actor=actor, description="invitation issued: the holder sets the password at first login",
                    details={"expires_at": expires_at.isoformat(), "new_account": first}, now=now)
    return Invitation(user, expires_at, token)


def accept(engine: Engine, keyring: Keyring, settings: Settings, token: str, new_password: str,
           *, now: datetime | None = None, **client) -> tuple[str, object]:
    """Take up an invitation: store the holder's own password (policy-checked), then log
    in with it, returning what `login.login` returns; a role that requires a second
    factor raises EnrolmentRequired from there, as a first login does. AuthError for a
    token that is malformed, expired, used or replaced, or for a locked or disabled account;
    ValidationError (naming the rule, never the password) for a password the policy refuses."""
    now = now or utcnow()
    with transaction(engine) as conn:
        user_id, payload = open_for_user(conn, keyring, _AAD, token, INVALID)
        try:
            expires_at = datetime.fromtimestamp(float(payload["expires"]), timezone.utc)
            fingerprint = str(payload["password"])
        except (KeyError, TypeError, ValueError, OverflowError):
            raise AuthError(INVALID) from None
        # Locked until commit: of two takers of one invitation at once, the second finds it used.
        row = conn.execute(select(_users).where(_users.c.id == user_id).with_for_update()).mappings().first()
        if row is None or row["deleted_at"] is not None:
            raise AuthError(INVALID)
        if now >= expires_at:
            raise AuthError("this invitation has expired: ask for a new one")
        if password_fingerprint(row["password_hash"]) != fingerprint:
            raise AuthError(USED)
        user = users.get_user_by_id(conn, user_id)
        if user.disabled or user.is_locked(now):
            raise AuthError("this account is locked or disabled: ask an administrator")
        users.set_password(conn, settings, user, new_password, by=f"user:{user.username}", now=now)
        security.record(conn, "invitation_accepted", severity="medium", user_id=user.id,
                        username=user.username, actor=f"user:{user.username}",
                        description="invitation taken up: the holder set their own password", now=now)
    return auth_login.login(engine, keyring, settings, user.username, new_password, None, now=now, **client)
