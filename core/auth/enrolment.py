"""Enrolling a second factor at login, for an account whose role requires TOTP but that
has none (the policy was tightened after the account was made, or a secret was cleared).

A login with the right password for such an account opens no session. It answers with a
`PendingEnrolment`: a new secret to show the person (with its otpauth:// URI and a QR
code) and a short-lived enrolment token. `strongroom.core.auth.login.confirm_enrolment`
takes the token and a code from the new authenticator; a right code stores the secret
and opens the session in one transaction.

Nothing is stored until the code is confirmed: the token itself carries the pending
secret, sealed with the system data key and bound to the user's row (associated data
users / totp_enrolment / user id), with its expiry and a fingerprint of the password
hash. So any daemon on the database can confirm it, a password reset voids it, and it is
good once: the secret is stored only while the account still has none. The secret never
reaches a log line, an exception message or a security event.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection, or_, update

from strongroom.core.auth import totp
from strongroom.core.crypto.fields import key_id_of
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import User
from strongroom.core.errors import AuthError, CryptoError, KeyUnavailableError

_users = User.__table__
LIFETIME = timedelta(minutes=10)
_AAD = ("users", "totp_enrolment")
INVALID = "invalid enrolment token; log in again to start the enrolment over"


@dataclass(frozen=True)
class PendingEnrolment:
    """A secret offered to a person at login, and the token that confirms it."""

    username: str
    expires_at: datetime
    token: str = field(repr=False)
    secret: str = field(repr=False)
    uri: str = field(repr=False)
    qr_text: str = field(repr=False)

    def as_dict(self) -> dict:
        return {"username": self.username, "expires_at": self.expires_at.isoformat(), "token": self.token,
                "secret": self.secret, "uri": self.uri, "qr_text": self.qr_text}


class EnrolmentRequired(AuthError):
    """The password was right, but the account must enrol a second factor before it may
    log in. A caller that does not know enrolment refuses the login, as it should."""

    def __init__(self, message: str, pending: PendingEnrolment) -> None:
        super().__init__(message)
        self.pending = pending


def seal_for_user(conn: Connection, keyring: Keyring, aad: tuple[str, str], user_id: uuid.UUID,
                  payload: dict) -> str:
    """`payload` sealed with the system data key, bound to the user's row and to `aad`
    (what the token is for), as `<user id>.<base64url>`: a token any daemon on the
    database can open, and only for that purpose."""
    sealed = keyring.system_cipher(conn).encrypt_text(json.dumps(payload), *aad, user_id)
    return f"{user_id}.{base64.urlsafe_b64encode(sealed).decode().rstrip('=')}"


def open_for_user(conn: Connection, keyring: Keyring, aad: tuple[str, str], token: str,
                  invalid: str) -> tuple[uuid.UUID, dict]:
    """The user and payload of a token `seal_for_user` made for `aad`; AuthError(invalid)
    when it is malformed, was sealed for another purpose or user, or not by us."""
    user_part, _, sealed_part = token.partition(".")
    try:
        user_id = uuid.UUID(user_part)
        sealed = base64.urlsafe_b64decode(sealed_part + "=" * (-len(sealed_part) % 4))
        payload = json.loads(keyring.cipher(conn, key_id_of(sealed)).decrypt_text(sealed, *aad, user_id))
    except (ValueError, TypeError, binascii.Error, CryptoError, KeyUnavailableError):
        raise AuthError(invalid) from None
    if not isinstance(payload, dict):
        raise AuthError(invalid)
    return user_id, payload


def password_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; a hash of the hash, so the token names neither."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def offer(conn: Connection, keyring: Keyring, user_id: uuid.UUID, username: str, password_hash: str,
          issuer: str, now: datetime) -> PendingEnrolment:
    """A new secret for `username` and the token that carries it, sealed, until confirmed."""
    secret = totp.new_secret()
    expires_at = now + LIFETIME
    token = seal_for_user(conn, keyring, _AAD, user_id, {
        "secret": secret, "expires": expires_at.timestamp(), "password": password_fingerprint(password_hash)})
    shown = totp.enrolment_for(secret, username, issuer)
    return PendingEnrolment(username=username, expires_at=expires_at, token=token, secret=secret,
                            uri=shown.uri, qr_text=shown.qr_text)


@dataclass(frozen=True)
class Opened:
    user_id: uuid.UUID
    secret: str = field(repr=False)
    password: str = field(repr=False)


def open_token(conn: Connection, keyring: Keyring, token: str, now: datetime) -> Opened:
    """The user, secret and password fingerprint a token carries; AuthError when it is
    malformed, was not sealed by us for that user, or has expired."""
    user_id, payload = open_for_user(conn, keyring, _AAD, token, INVALID)
    try:
        secret, password = str(payload["secret"]), str(payload["password"])
        expires_at = datetime.fromtimestamp(float(payload["expires"]), timezone.utc)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise AuthError(INVALID) from None
    if now >= expires_at:
        raise AuthError("the enrolment has expired; log in again to start over")
    return Opened(user_id, secret, password)


def store(conn: Connection, keyring: Keyring, user_id: uuid.UUID, secret: str, now: datetime) -> bool:
    """Store the confirmed secret, sealed, only while the account has none; False when
    another enrolment (or an administrator's reset) got there first."""
    sealed = keyring.system_cipher(conn).encrypt_text(secret, "users", "totp_secret", user_id)
    result = conn.execute(update(_users).where(
        _users.c.id == user_id, or_(_users.c.totp_enabled.is_(False), _users.c.totp_secret_enc.is_(None)),
    ).values(totp_secret_enc=sealed, totp_enabled=True, totp_last_step=None, updated_at=now))
    return result.rowcount == 1
