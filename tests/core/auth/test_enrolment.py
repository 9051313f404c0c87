"""Enrolling a second factor at login: an account whose role requires TOTP but that has
none gets an offer instead of a session, and a right code from the new authenticator
stores the secret and logs in, once. Nothing about the secret is written down plainly."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, audit_count, events
from sqlalchemy import select, update

from strongroom.core.auth import login as auth
from strongroom.core.auth import totp, users
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, AuthSession, User
from strongroom.core.errors import AuthError, RateLimitedError

_users = User.__table__


@pytest.fixture
def unenrolled(ctx, make_user):
    """An admin (a role that requires 2FA) whose second factor was cleared."""
    user, _ = make_user("boss", role="admin")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_users).where(_users.c.id == user.id).values(totp_enabled=False, totp_secret_enc=None))
    return user


def offer(ctx, now=T0):
    with pytest.raises(EnrolmentRequired) as err:
        auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD, None, client_addr="10.0.0.5", now=now)
    return err.value.pending


def confirm(ctx, token, code, now=T0):
    return auth.confirm_enrolment(ctx.engine, ctx.keyring, ctx.settings, token, code, client_host="desk-1",
                                  client_addr="10.0.0.5", client_name="strongroom-console", now=now)


def code(pending, moment=T0, offset=0) -> str:
    return totp.code_at(pending.secret, totp.time_step(moment) + offset)


def sessions(ctx) -> int:
    with transaction(ctx.engine, read_only=True) as conn:
        return len(conn.execute(select(AuthSession.__table__.c.id)).all())


def written_down(ctx) -> str:
    """Every security event and audit entry, as text."""
    with transaction(ctx.engine, read_only=True) as conn:
        rows = [dict(r) for r in conn.execute(select(AuditLog.__table__)).mappings()]
    return json.dumps([events(ctx.engine), rows], default=str)


def test_the_offer_carries_a_secret_its_uri_and_a_token_and_stores_nothing(ctx, unenrolled):
    pending = offer(ctx)
    assert pending.username == "boss" and pending.expires_at == T0 + timedelta(minutes=10)
    assert pending.uri.startswith("otpauth://totp/") and f"secret={pending.secret}" in pending.uri
    assert pending.qr_text.strip() and pending.token.startswith(f"{unenrolled.id}.")
    assert pending.secret not in pending.token and pending.secret not in repr(pending)
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_users).where(_users.c.id == unenrolled.id)).mappings().one()
    assert row["totp_secret_enc"] is None and not row["totp_enabled"] and row["failed_logins"] == 0
    assert sessions(ctx) == 0
    (offered,) = events(ctx.engine, "totp_enrolment_offered")
    assert offered["ip_address"] == "10.0.0.5" and offered["details"]["expires_at"] == pending.expires_at.isoformat()
    assert pending.secret not in written_down(ctx)


def test_a_right_code_stores_the_secret_sealed_and_logs_in_once(ctx, unenrolled):
    pending = offer(ctx)
    token, session = confirm(ctx, pending.token, code(pending), now=T0 + timedelta(seconds=40))
    assert token and session.client_name == "strongroom-console" and sessions(ctx) == 1
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(select(_users).where(_users.c.id == unenrolled.id)).mappings().one()
        assert row["totp_enabled"] and totp.load_secret(conn, ctx.keyring, unenrolled.id,
                                                        row["totp_secret_enc"]) == pending.secret
    assert pending.secret.encode() not in bytes(row["totp_secret_enc"])
    assert row["totp_last_step"] == totp.time_step(T0)          # the confirming code is used up
    assert events(ctx.engine, "totp_enrolled")[0]["details"] == {"self_service": True}
    assert events(ctx.engine, "login_success")[-1]["details"]["second_factor"] is True
    assert pending.secret not in written_down(ctx)

    # Good once: the account has a secret now.
    with pytest.raises(AuthError, match="already has an authenticator enrolled"):
        confirm(ctx, pending.token, code(pending, offset=1), now=T0 + timedelta(seconds=40))
    # From now on a login takes a code from the new authenticator, and a used code is refused.
    with pytest.raises(AuthError, match="already used"):
        auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD, code(pending), now=T0 + timedelta(seconds=50))
    assert auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD, code(pending, offset=2),
                      now=T0 + timedelta(seconds=60))[0]


def test_a_wrong_code_is_refused_counted_and_stores_nothing(ctx, unenrolled):
    pending = offer(ctx)
    before = audit_count(ctx.engine)
    wrong = "000000" if code(pending) != "000000" else "111111"
    attempts = [None, "12345"] + [wrong] * (ctx.settings.auth.max_failed_logins - 2)
    for attempt in attempts:
        assert not events(ctx.engine, "account_locked")
        with pytest.raises(AuthError, match="invalid TOTP code"):
            confirm(ctx, pending.token, attempt)
    failed = events(ctx.engine, "login_failed")
    assert [e["details"]["reason"] for e in failed] == ["totp_invalid"] * len(attempts)
    assert events(ctx.engine, "account_locked")                 # wrong codes count towards lockout
    assert audit_count(ctx.engine) > before and sessions(ctx) == 0
    with pytest.raises(AuthError, match="locked"):
        confirm(ctx, pending.token, code(pending))
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(_users.c.totp_secret_enc).where(_users.c.id == unenrolled.id)).scalar() is None


def test_expired_forged_and_stale_tokens_are_refused(ctx, unenrolled, make_user):
    pending = offer(ctx)
    with pytest.raises(AuthError, match="expired"):
        confirm(ctx, pending.token, code(pending, T0 + timedelta(minutes=10)), now=T0 + timedelta(minutes=10))
    other, _ = make_user("other")
    _, _, sealed = pending.token.partition(".")
    for forged in (f"{other.id}.{sealed}", f"{unenrolled.id}.{sealed[:-4]}AAAA", "not-a-token", "", "x.y.z"):
        with pytest.raises(AuthError, match="invalid enrolment token"):
            confirm(ctx, forged, code(pending))
    with transaction(ctx.engine) as conn:                      # an administrator set a new password
        users.set_password(conn, ctx.settings, users.get_user(conn, "boss"), "a brand new passphrase 77",
                           by="admin:test")
    with pytest.raises(AuthError, match="password changed since this enrolment began"):
        confirm(ctx, pending.token, code(pending))
    assert sessions(ctx) == 0


def test_confirming_obeys_the_login_rate_limit(ctx, unenrolled):
    pending = offer(ctx)
    limit = ctx.settings.auth.login_rate_limit_attempts
    for n in range(limit):
        with pytest.raises(AuthError):
            auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", "wrong password", None,
                       client_addr=f"10.1.0.{n}", now=T0)
    with pytest.raises(RateLimitedError):
        confirm(ctx, pending.token, code(pending))


@pytest.mark.parametrize("role", ["admin", "STAFF"])
def test_after_a_2fa_reset_the_owner_enrols_a_new_secret_at_their_next_login(ctx, make_user, role):
    """A reset leaves the account pending enrolment, whatever its role: the old code no
    longer opens it, the right password earns the owner (and only the owner) a new
    secret, and a code from that opens the session."""
    user, first = make_user("resetme", role=role)
    with transaction(ctx.engine) as conn:
        if first is None:       # a role without mandatory 2FA that had enrolled anyway
            totp.enrol(conn, ctx.keyring, user.id, "resetme", "Strongroom", now=T0)
        users.reset_2fa(conn, ctx.keyring, ctx.settings, users.get_user(conn, "resetme"), by="user:boss", now=T0)
    with pytest.raises(EnrolmentRequired) as offered:
        auth.login(ctx.engine, ctx.keyring, ctx.settings, "resetme", PASSWORD, "123456", now=T0)
    pending = offered.value.pending
    assert pending.username == "resetme" and sessions(ctx) == 0
    token, session = confirm(ctx, pending.token, code(pending))
    assert token and session.user_id == user.id
    with transaction(ctx.engine, read_only=True) as conn:
        assert users.get_user(conn, "resetme").totp_pending is False
