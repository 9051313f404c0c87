"""TOTP second factor (RFC 6238): enrolment, verification and replay protection.

A code is accepted for the current 30-second step and one step either side (clock skew).
Within that window a code seen once could be replayed by someone looking over a
shoulder, so the accepted step is stored in `users.totp_last_step` and any code whose
step is not strictly newer is refused. The step is written with a conditional UPDATE,
so two logins racing with the same code cannot both win, even from two processes.

The secret is stored only encrypted with the system data key, its associated data bound
to the user's row, so a secret copied onto another user's row does not decrypt.
"""
from __future__ import annotations

import hmac
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import pyotp
from sqlalchemy import Connection, or_, update

from strongroom.core.crypto.fields import key_id_of
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import User
from strongroom.core.db.types import utcnow

_users = User.__table__
VALID_WINDOW = 1
DIGITS = 6
INTERVAL = 30


@dataclass(frozen=True)
class Enrolment:
    """What a person needs to set up an authenticator app; shown once, never stored plain."""

    secret: str = field(repr=False)
    uri: str = field(repr=False)
    qr_text: str = field(repr=False)


def new_secret() -> str:
    """160 random bits, base32, as authenticator apps expect."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_text(uri: str) -> str:
    """The otpauth URI as a QR code drawn with terminal block characters."""
    import segno      # here: drawing a QR code is rare, and every process importing users paid for it

    buffer = io.StringIO()
    segno.make(uri, error="m").terminal(out=buffer, compact=True, border=2)
    return buffer.getvalue()


def enrolment_for(secret: str, username: str, issuer: str) -> Enrolment:
    uri = provisioning_uri(secret, username, issuer)
    return Enrolment(secret=secret, uri=uri, qr_text=qr_text(uri))


def enrol(conn: Connection, keyring: Keyring, user_id: uuid.UUID, username: str, issuer: str,
          *, now: datetime | None = None) -> Enrolment:
    """Give the user a new secret (replacing any old one) and clear the replay marker."""
    secret = new_secret()
    sealed = keyring.system_cipher(conn).encrypt_text(secret, "users", "totp_secret", user_id)
    conn.execute(update(_users).where(_users.c.id == user_id).values(
        totp_secret_enc=sealed, totp_enabled=True, totp_last_step=None,
        updated_at=now or utcnow()))
    return enrolment_for(secret, username, issuer)


def load_secret(conn: Connection, keyring: Keyring, user_id: uuid.UUID, sealed: bytes) -> str:
    """Open the seed with the key named in its ciphertext, so seeds sealed under a
    system key that has since been rotated (retired, still readable) keep working."""
    sealed = bytes(sealed)
    return keyring.cipher(conn, key_id_of(sealed)).decrypt_text(sealed, "users", "totp_secret", user_id)


def time_step(moment: datetime) -> int:
    """The RFC 6238 counter: whole 30-second intervals since the Unix epoch."""
    return int(moment.timestamp()) // INTERVAL


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def matching_step(secret: str, code: str, *, last_step: int | None,
                  now: datetime | None = None) -> int | None:
    """The newest step in the window whose code equals `code` and that is newer than
    `last_step`; None when the code is wrong, malformed, or already used."""
    code = code.replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(now or utcnow())
    for step in range(current + VALID_WINDOW, current - VALID_WINDOW - 1, -1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def accept_step(conn: Connection, user_id: uuid.UUID, step: int) -> bool:
    """Record `step` as used; False when an equal or newer step was recorded first."""
    result = conn.execute(update(_users).where(
        _users.c.id == user_id,
        or_(_users.c.totp_last_step.is_(None), _users.c.totp_last_step < step),
    ).values(totp_last_step=step))
    return result.rowcount == 1
