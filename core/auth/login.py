"""The one way in: `login` turns a password (and TOTP code) into a session token, and
`authenticate` turns a token back into a user on every request.

Order of checks, and why:
1. Rate limits, per source address and per username, count recent `login_failed`
   security events in the database, so they hold across daemon processes and restarts,
   and are checked before any Argon2 work (which is deliberately expensive).
2. An unknown username costs one dummy Argon2 verification and answers exactly like a
   wrong password: neither timing nor wording tells an attacker which usernames exist.
3. A locked account is refused before its password is checked, so a lockout cannot be
   used as an oracle for the password; it answers exactly like an unknown username (the
   same message, one dummy Argon2 verification), so a lockout does not tell an attacker
   that the account exists either. Refusals never name the account.
4. The second factor comes after the password; a replayed code is refused.
5. An account whose role requires a second factor but that has none, or whose second
   factor was reset (pending enrolment), gets no session: the right password earns an
   offer to enrol one (`enrolment`), and
   `confirm_enrolment` opens the session once a code from it is right.

A failed login raises, but its evidence (the security event, the failed-login counter,
the lockout) is committed in a transaction of its own before the error leaves.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select, update

from strongroom.core.auth import devices, enrolment, passwords, security, sessions, totp
from strongroom.core.auth.sessions import SessionRecord
from strongroom.core.auth.users import UserRecord, record_of, requires_2fa
from strongroom.core.config import Settings
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import SecurityEvent, User
from strongroom.core.db.types import utcnow
from strongroom.core.errors import AuthError, RateLimitedError

_users = User.__table__
_events = SecurityEvent.__table__

BAD_CREDENTIALS = "invalid username or password"


@dataclass(frozen=True)
class Client:
    """Where a login comes from. `addr` is the transport's (the ipc peer's uid, a TCP
    peer's address) and keys the per-address rate limit; `reported_addr` (an SSH client
    address) and the rest are the client's own word, recorded as such."""

    host: str | None = None
    addr: str | None = None
    name: str | None = None
    version: str | None = None
    user_agent: str | None = None
    reported_addr: str | None = None
    device_key: str | None = None     # the CURVE public key the transport authenticated

    def evidence(self) -> dict:
        """What the client reported, for a security event's details."""
        return {"reported_ssh_client": self.reported_addr} if self.reported_addr else {}


class _NeedsEnrolment(Exception):
    """Internal: the password was right, but the account must enrol a second factor first."""


class _Refused(Exception):
    """Internal: a login refusal whose bookkeeping is still to be written."""

    def __init__(self, message: str, reason: str, *, count_failure: bool) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.count_failure = count_failure


def _recent_failures(conn: Connection, column, value: str, since: datetime) -> int:
    return conn.execute(select(func.count()).select_from(_events).where(
        _events.c.event_type == "login_failed", column == value,
        _events.c.occurred_at > since)).scalar_one()


def unknown_name(conn: Connection, keyring: Keyring, typed: str) -> str:
    """How a login attempt for a name no account has is recorded: a keyed hash, never
    the text. What someone types as a username may be an email, a client's name or a
    password typed into the wrong field; the per-name rate limit still counts it, and
    security events, audit entries and published events never repeat it."""
    digest = keyring.blind_indexer(conn).index("login_username", typed) or b""
    return "unknown:" + digest.hex()[:16]


def _rate_limited(conn: Connection, settings: Settings, username: str, client: Client,
                  now: datetime) -> str | None:
    """Which limit this attempt exceeds ('address' or 'username'), or None."""
    auth = settings.auth
    since = now - timedelta(seconds=auth.login_rate_limit_window_seconds)
    if client.addr and _recent_failures(conn, _events.c.ip_address, client.addr, since) \
            >= auth.login_rate_limit_attempts:
        return "address"
    if _recent_failures(conn, _events.c.username, username[:64], since) >= auth.login_rate_limit_attempts:
        return "username"
    return None


def login(engine: Engine, keyring: Keyring, settings: Settings, username: str, password: str,
          totp_code: str | None = None, *, client_host: str | None = None,
          client_addr: str | None = None, client_name: str | None = None,
          client_version: str | None = None, user_agent: str | None = None,
          reported_addr: str | None = None, device_key: str | None = None,
          now: datetime | None = None) -> tuple[str, SessionRecord]:
    """Check credentials and open a session: returns (token, session). The token is
    shown here once and stored only hashed. Raises AuthError or RateLimitedError."""
    now = now or utcnow()
    client = Client(client_host, client_addr, client_name, client_version, user_agent, reported_addr, device_key)
    with transaction(engine, read_only=True) as conn:
        row = conn.execute(select(_users).where(_users.c.username == username)).mappings().first()
        known = row is not None and row["deleted_at"] is None
        recorded = username
        limited = _rate_limited(conn, settings, recorded, client, now) if known else None
    if not known:
        with transaction(engine) as conn:     # the blind-index key may be created on first use
            recorded = unknown_name(conn, keyring, username)
            limited = _rate_limited(conn, settings, recorded, client, now)
    if limited:
        _refuse_rate_limited(engine, settings, recorded, row["id"] if known else None, client, limited, now)
    if not known:
        passwords.dummy_verify(password, settings.auth)
        _record_failure(engine, settings, None, recorded, client, "unknown_user", False, now)
        raise AuthError(BAD_CREDENTIALS)
    user = record_of(row)
    try:
        step = _check(engine, keyring, settings, row, user, password, totp_code, now)
        return _succeed(engine, settings, row, user, password, step, client, now)
    except _Refused as refused:
        _record_failure(engine, settings, user, username, client, refused.reason,
                        refused.count_failure, now)
        raise AuthError(refused.message) from None
    except _NeedsEnrolment:
        with transaction(engine) as conn:
            pending = enrolment.offer(conn, keyring, user.id, user.username, row["password_hash"],
                                      settings.auth.totp_issuer, now)
            security.record(
                conn, "totp_enrolment_offered", severity="medium", user_id=user.id,
                username=user.username, ip_address=client.addr, user_agent=client.user_agent,
                description="password accepted; the account has no second factor and its role "
                            "requires one: enrolment offered",
                details={"expires_at": pending.expires_at.isoformat()}, now=now)
        raise enrolment.EnrolmentRequired(
            "this account requires two-factor authentication and has none yet: enrol an "
            "authenticator app to log in", pending) from None


def _refuse_rate_limited(engine: Engine, settings: Settings, username: str, user_id: uuid.UUID | None,
                         client: Client, limited: str, now: datetime) -> None:
    with transaction(engine) as conn:
        security.record(
            conn, "rate_limited", severity="medium", username=username, user_id=user_id,
            description=f"login refused: rate limit per {limited} exceeded",
            ip_address=client.addr, user_agent=client.user_agent,
            details={"limit": limited, **client.evidence()}, now=now)
    raise RateLimitedError(
        f"too many failed logins from this {limited}; try again in "
        f"{settings.auth.login_rate_limit_window_seconds} seconds")


def _check(engine: Engine, keyring: Keyring, settings: Settings, row, user: UserRecord,
           password: str, code: str | None, now: datetime) -> int | None:
    """Raise _Refused for anything short of valid credentials; writes nothing.
    Returns the TOTP time step the code matched (None for accounts without TOTP)."""
    if user.is_locked(now):
        passwords.dummy_verify(password, settings.auth)      # the work of an unknown username
        raise _Refused(BAD_CREDENTIALS, "locked", count_failure=False)
    if not passwords.verify_password(row["password_hash"], password, settings.auth):
        raise _Refused(BAD_CREDENTIALS, "bad_password", count_failure=True)
    if user.disabled:
        raise _Refused("this account is disabled; ask an administrator", "disabled", count_failure=False)
    if user.totp_enabled and row["totp_secret_enc"] is not None:
        if not code:
            raise _Refused("a TOTP code is required for this account", "totp_missing",
                           count_failure=True)
        with transaction(engine, read_only=True) as conn:
            secret = totp.load_secret(conn, keyring, user.id, row["totp_secret_enc"])
        step = totp.matching_step(secret, code, last_step=row["totp_last_step"], now=now)
        if step is None:
            raise _Refused("invalid or already used TOTP code", "totp_invalid", count_failure=True)
        return step
    if requires_2fa(user.role, settings) or user.totp_pending:
        raise _NeedsEnrolment()         # no second factor yet, or one reset since: enrol it
    return None


def _succeed(engine: Engine, settings: Settings, row, user: UserRecord, password: str,
             step: int | None, client: Client, now: datetime) -> tuple[str, SessionRecord]:
    with transaction(engine) as conn:
        return _open_session(conn, settings, row, user, password, step, client, now)


def _open_session(conn: Connection, settings: Settings, row, user: UserRecord, password: str | None,
                  step: int | None, client: Client, now: datetime) -> tuple[str, SessionRecord]:
    """The session of a login whose checks passed, in the caller's transaction."""
    values = {"failed_logins": 0, "last_login_at": now, "updated_at": now}
    if password is not None and passwords.needs_rehash(row["password_hash"], settings.auth):
        # Parameters were raised since this hash was made: upgrade it while we hold the
        # plaintext, the only moment we can.
        values["password_hash"] = passwords.hash_password(password, settings.auth)
    if step is not None and not totp.accept_step(conn, user.id, step):
        # Another login used this code (or a newer one) since we read the row.
        raise _Refused("invalid or already used TOTP code", "totp_replayed", count_failure=True)
    conn.execute(update(_users).where(_users.c.id == user.id).values(**values))
    token, session = sessions.create(
        conn, user.id, user.username, settings.auth, client_host=client.host,
        client_addr=client.addr, client_name=client.name, client_version=client.version,
        user_agent=client.user_agent, now=now)
    # Before the login entry, so the LOGIN stays the last word of a login in the audit log.
    device = devices.identify(curve_key=client.device_key, host=client.host, program=client.name, addr=client.addr)
    devices.seen(conn, user.id, user.username, device, now=now, ip_address=client.addr, user_agent=client.user_agent)
    security.record(
        conn, "login_success", user_id=user.id, username=user.username,
        description="login succeeded", ip_address=client.addr, user_agent=client.user_agent,
        session_id=str(session.id),
        details={"session_id": str(session.id), "second_factor": step is not None,
                 "rehashed": "password_hash" in values, "client_name": client.name, **client.evidence()},
        now=now)
    return token, session


def confirm_enrolment(engine: Engine, keyring: Keyring, settings: Settings, enrolment_token: str,
                      totp_code: str | None, *, client_host: str | None = None,
                      client_addr: str | None = None, client_name: str | None = None,
                      client_version: str | None = None, user_agent: str | None = None,
                      reported_addr: str | None = None, device_key: str | None = None,
                      now: datetime | None = None) -> tuple[str, SessionRecord]:
    """Finish an enrolment offered at login: a right code from the new authenticator
    stores its secret (sealed) and opens the session, in one transaction. A wrong code
    counts as a failed login (towards lockout); the same rate limits apply."""
    now = now or utcnow()
    client = Client(client_host, client_addr, client_name, client_version, user_agent, reported_addr, device_key)
    with transaction(engine, read_only=True) as conn:
        opened = enrolment.open_token(conn, keyring, enrolment_token, now)
        row = conn.execute(select(_users).where(_users.c.id == opened.user_id)).mappings().first()
        if row is None or row["deleted_at"] is not None:
            raise AuthError(enrolment.INVALID)
        limited = _rate_limited(conn, settings, row["username"], client, now)
    user = record_of(row)
    if limited:
        _refuse_rate_limited(engine, settings, user.username, user.id, client, limited, now)
    try:
        if user.is_locked(now) or user.disabled:
            # Only the holder of a right password has an enrolment token: no oracle here.
            raise _Refused("this account is locked or disabled", "locked", count_failure=False)
        if enrolment.password_fingerprint(row["password_hash"]) != opened.password:
            raise _Refused("the password changed since this enrolment began; log in again",
                           "enrolment_stale", count_failure=False)
        step = totp.matching_step(opened.secret, totp_code or "", last_step=None, now=now)
        if step is None:
            raise _Refused("invalid TOTP code: enter the code the new authenticator shows now",
                           "totp_invalid", count_failure=True)
        with transaction(engine) as conn:
            if not enrolment.store(conn, keyring, user.id, opened.secret, now):
                raise _Refused("this account already has an authenticator enrolled; log in with a "
                               "code from it", "totp_already_enrolled", count_failure=False)
            security.record(conn, "totp_enrolled", severity="medium", user_id=user.id,
                            username=user.username, ip_address=client.addr, user_agent=client.user_agent,
                            description="second factor enrolled by the account holder at login",
                            details={"self_service": True}, now=now)
            return _open_session(conn, settings, row, user, None, step, client, now)
    except _Refused as refused:
        _record_failure(engine, settings, user, user.username, client, refused.reason,
                        refused.count_failure, now)
        raise AuthError(refused.message) from None


def _record_failure(engine: Engine, settings: Settings, user: UserRecord | None, username: str,
                    client: Client, reason: str, count_failure: bool, now: datetime) -> None:
    """Commit the evidence of a refused login, in its own transaction: the login raises
    afterwards, and nothing written here may be rolled back with it."""
    with transaction(engine) as conn:
        failed = None
        if user is not None and count_failure:
            conn.execute(update(_users).where(_users.c.id == user.id).values(
                failed_logins=_users.c.failed_logins + 1, updated_at=now))
            failed = conn.execute(select(_users.c.failed_logins)
                                  .where(_users.c.id == user.id)).scalar_one()
        security.record(
            conn, "login_failed", severity="medium" if reason.startswith("totp") else "low",
            user_id=user.id if user else None, username=username,
            description=f"login refused: {reason}", ip_address=client.addr,
            user_agent=client.user_agent,
            details={"reason": reason, "failed_logins": failed, **client.evidence()}, now=now)
        if failed is not None and failed >= settings.auth.max_failed_logins:
            until = now + timedelta(minutes=settings.auth.lockout_minutes)
            # The counter restarts, so each lockout period allows a fresh run of attempts.
            conn.execute(update(_users).where(_users.c.id == user.id).values(
                locked_until=until, failed_logins=0, updated_at=now))
            security.record(
                conn, "account_locked", severity="high", user_id=user.id, username=username,
                description=f"account locked after {failed} failed logins",
                ip_address=client.addr, user_agent=client.user_agent,
                details={"until": until.isoformat(), "failed_logins": failed}, now=now)


def authenticate(engine: Engine, token: str, *, now: datetime | None = None
                 ) -> tuple[UserRecord, SessionRecord]:
    """The user and session a token belongs to; refreshes the idle timer.

    An expired or idle session is marked revoked (committed) and refused; so is a session
    whose account has since been locked or disabled.
    """
    now = now or utcnow()
    refusal = None
    with transaction(engine) as conn:
        session = sessions.find_by_token(conn, token) if token else None
        if session is None:
            refusal = "invalid session token"
        elif session.revoked_at is not None:
            refusal = f"session has ended ({session.revoked_reason}); log in again"
        else:
            refusal = _expire_if_due(conn, session, now)
            if refusal is None:
                row = conn.execute(select(_users).where(_users.c.id == session.user_id)).mappings().one()
                user = record_of(row)
                if user.is_locked(now) or user.disabled or row["deleted_at"] is not None:
                    sessions.mark_revoked(conn, session.id, "account_locked", now=now)
                    refusal = "session has ended: the account is locked or disabled"
                else:
                    sessions.touch(conn, session.id, now=now)
                    session = sessions.get(conn, session.id)
    if refusal:
        raise AuthError(refusal)
    return user, session


def _expire_if_due(conn: Connection, session: SessionRecord, now: datetime) -> str | None:
    if now >= session.expires_at:
        reason, message = "expired", "session expired (absolute lifetime reached); log in again"
    elif now >= session.idle_deadline():
        reason, message = "idle_timeout", "session expired after inactivity; log in again"
    else:
        return None
    sessions.mark_revoked(conn, session.id, reason, now=now)
    security.record(conn, "session_expired", user_id=session.user_id,
                    username=_username(conn, session.user_id), actor="system",
                    description=f"session ended: {reason}", table_name="auth_sessions",
                    record_id=session.id, session_id=str(session.id),
                    details={"reason": reason}, now=now)
    return message


def logout(engine: Engine, token: str, *, now: datetime | None = None) -> SessionRecord:
    """End the session a token belongs to. An unknown or ended session is an AuthError."""
    now = now or utcnow()
    with transaction(engine) as conn:
        session = sessions.find_by_token(conn, token) if token else None
        if session is None or not sessions.mark_revoked(conn, session.id, "logout", now=now):
            raise AuthError("not logged in: the session is unknown or has already ended")
        security.record(conn, "logout", user_id=session.user_id,
                        username=_username(conn, session.user_id), description="logged out",
                        table_name="auth_sessions", record_id=session.id,
                        session_id=str(session.id), details={}, now=now)
        return sessions.get(conn, session.id)


def _username(conn: Connection, user_id: uuid.UUID) -> str | None:
    return conn.execute(select(_users.c.username).where(_users.c.id == user_id)).scalar()
