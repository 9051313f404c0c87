from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, audit_actions, audit_count, code_for, events
from sqlalchemy import select, update

from strongroom.core.auth import login as auth
from strongroom.core.auth import passwords, users
from strongroom.core.config import Argon2Settings
from strongroom.core.db.engine import transaction
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.db.models import AuthSession, User
from strongroom.core.errors import AuthError, RateLimitedError

_users = User.__table__
_sessions = AuthSession.__table__


def do_login(ctx, username, password=PASSWORD, code=None, *, now=T0, addr="10.0.0.5", settings=None):
    return auth.login(ctx.engine, ctx.keyring, settings or ctx.settings, username, password, code,
                      client_host="desk-1", client_addr=addr, client_name="strongroom-cli",
                      client_version="0.1.0", user_agent="pytest", now=now)


def user_row(ctx, username):
    with transaction(ctx.engine, read_only=True) as conn:
        return conn.execute(select(_users).where(_users.c.username == username)).mappings().one()


def test_successful_login_returns_token_and_records_login(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx, "alice")
    assert len(token) >= 43
    assert session.expires_at == T0 + timedelta(hours=ctx.settings.auth.session_absolute_hours)
    assert session.idle_timeout_seconds == ctx.settings.auth.session_idle_minutes * 60
    assert (session.client_host, session.client_addr, session.client_name) == ("desk-1", "10.0.0.5", "strongroom-cli")
    row = user_row(ctx, "alice")
    assert row["last_login_at"] == T0 and row["failed_logins"] == 0
    ok = events(ctx.engine, "login_success")
    assert len(ok) == 1 and ok[0]["ip_address"] == "10.0.0.5"
    assert audit_actions(ctx.engine)[-1] == "LOGIN"


def test_token_is_stored_hashed(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx, "alice")
    with transaction(ctx.engine, read_only=True) as conn:
        stored = conn.execute(select(_sessions.c.token_hash)).scalars().all()
    import hashlib
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in stored


def test_unknown_user_and_wrong_password_give_same_message(ctx, make_user):
    make_user("alice")
    with pytest.raises(AuthError) as unknown:
        do_login(ctx, "nobody")
    with pytest.raises(AuthError) as wrong:
        do_login(ctx, "alice", "not the right passphrase")
    assert str(unknown.value) == str(wrong.value) == auth.BAD_CREDENTIALS
    failed = events(ctx.engine, "login_failed")
    assert [e["username"][:8] for e in failed] == ["unknown:", "alice"]
    assert [e["details"]["reason"] for e in failed] == ["unknown_user", "bad_password"]
    assert failed[0]["user_id"] is None


def test_failed_login_is_recorded_even_though_login_raises(ctx, make_user):
    make_user("alice")
    before = audit_count(ctx.engine)
    with pytest.raises(AuthError):
        do_login(ctx, "alice", "not the right passphrase")
    assert user_row(ctx, "alice")["failed_logins"] == 1
    assert len(events(ctx.engine, "login_failed")) == 1
    assert audit_count(ctx.engine) == before + 1
    assert audit_actions(ctx.engine)[-1] == "LOGIN_FAILED"


def test_wrong_password_changes_nothing_but_the_evidence(ctx, make_user):
    make_user("alice")
    with pytest.raises(AuthError):
        do_login(ctx, "alice", "not the right passphrase")
    row = user_row(ctx, "alice")
    assert row["last_login_at"] is None and row["locked_until"] is None
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(_sessions)).first() is None


def test_no_secret_is_ever_written_into_events_or_audit(ctx, make_user):
    from strongroom.core.db.models import AuditLog
    _, enrolment = make_user("boss", role="admin")
    with pytest.raises(AuthError):
        do_login(ctx, "boss", "the wrong passphrase here", "000000")
    token, _ = do_login(ctx, "boss", PASSWORD, code_for(enrolment, T0))
    with transaction(ctx.engine, read_only=True) as conn:
        audit_text = " ".join(str(dict(r)) for r in conn.execute(select(AuditLog.__table__)).mappings())
    event_text = " ".join(str(e) for e in events(ctx.engine))
    for secret in (PASSWORD, "the wrong passphrase here", code_for(enrolment, T0), token, enrolment.secret):
        assert secret not in audit_text and secret not in event_text


def test_lockout_after_max_failed_logins(ctx, make_user):
    make_user("alice")
    limit = ctx.settings.auth.max_failed_logins
    for i in range(limit):
        with pytest.raises(AuthError, match="invalid username or password"):
            do_login(ctx, "alice", "not the right passphrase", now=T0 + timedelta(seconds=i))
    row = user_row(ctx, "alice")
    assert row["locked_until"] == T0 + timedelta(seconds=limit - 1, minutes=ctx.settings.auth.lockout_minutes)
    locked = events(ctx.engine, "account_locked")
    assert len(locked) == 1 and locked[0]["severity"] == "high"
    assert "LOCK" in audit_actions(ctx.engine)


def test_locked_account_is_refused_even_with_the_right_password_until_the_lock_ends(ctx, make_user):
    make_user("alice")
    for i in range(ctx.settings.auth.max_failed_logins):
        with pytest.raises(AuthError):
            do_login(ctx, "alice", "not the right passphrase", now=T0)
    until = user_row(ctx, "alice")["locked_until"]
    for attempt in (PASSWORD, "not the right passphrase"):
        with pytest.raises(AuthError) as err:
            do_login(ctx, "alice", attempt, now=T0 + timedelta(minutes=1))
        assert str(err.value) == auth.BAD_CREDENTIALS          # as for an unknown username
    # After the lockout period the right password works again.
    token, _ = do_login(ctx, "alice", now=until + timedelta(seconds=1))
    assert token


def test_administrative_lock_holds_until_unlocked(ctx, make_user):
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        users.lock(conn, user, by="test", now=T0)
    with pytest.raises(AuthError, match="invalid username or password"):
        do_login(ctx, "alice", now=T0 + timedelta(days=400))
    assert events(ctx.engine, "login_failed")[-1]["details"]["reason"] == "locked"


def test_rate_limit_per_source_address(ctx, make_user):
    make_user("alice")
    attempts = ctx.settings.auth.login_rate_limit_attempts
    for i in range(attempts):
        with pytest.raises(AuthError):
            do_login(ctx, f"nobody{i}", now=T0, addr="203.0.113.9")
    with pytest.raises(RateLimitedError, match="address"):
        do_login(ctx, "alice", now=T0 + timedelta(seconds=1), addr="203.0.113.9")
    assert events(ctx.engine, "rate_limited")[0]["ip_address"] == "203.0.113.9"
    # Another address is unaffected; the same one recovers after the window.
    assert do_login(ctx, "alice", now=T0 + timedelta(seconds=2), addr="10.9.9.9")[0]
    window = timedelta(seconds=ctx.settings.auth.login_rate_limit_window_seconds)
    assert do_login(ctx, "alice", now=T0 + window + timedelta(seconds=1), addr="203.0.113.9")[0]


def test_rate_limit_per_username_across_addresses(ctx, make_user):
    attempts = ctx.settings.auth.login_rate_limit_attempts
    for i in range(attempts):
        with pytest.raises(AuthError):
            do_login(ctx, "ghost", now=T0, addr=f"198.51.100.{i}")
    with pytest.raises(RateLimitedError, match="username"):
        do_login(ctx, "ghost", now=T0, addr="198.51.100.200")


def test_totp_is_required_for_enrolled_user(ctx, make_user):
    _, enrolment = make_user("boss", role="admin")
    with pytest.raises(AuthError, match="TOTP code is required"):
        do_login(ctx, "boss")
    with pytest.raises(AuthError, match="invalid or already used TOTP code"):
        do_login(ctx, "boss", code=code_for(enrolment, T0, offset=5))
    assert user_row(ctx, "boss")["failed_logins"] == 2
    token, _ = do_login(ctx, "boss", code=code_for(enrolment, T0))
    assert token and user_row(ctx, "boss")["failed_logins"] == 0


def test_replayed_totp_is_refused(ctx, make_user):
    _, enrolment = make_user("boss", role="admin")
    code = code_for(enrolment, T0)
    do_login(ctx, "boss", code=code, now=T0)
    with pytest.raises(AuthError, match="already used"):
        do_login(ctx, "boss", code=code, now=T0 + timedelta(seconds=10))
    # An older code still inside the window is refused too: its step is not newer.
    with pytest.raises(AuthError, match="already used"):
        do_login(ctx, "boss", code=code_for(enrolment, T0, offset=-1), now=T0 + timedelta(seconds=10))
    assert [e["details"]["reason"] for e in events(ctx.engine, "login_failed")] == ["totp_invalid"] * 2
    assert do_login(ctx, "boss", code=code_for(enrolment, T0, offset=1), now=T0 + timedelta(seconds=30))[0]


def test_role_requiring_2fa_without_enrolment_gets_no_session_but_an_enrolment(ctx, make_user):
    user, _ = make_user("boss", role="admin")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_users).where(_users.c.id == user.id)
                     .values(totp_enabled=False, totp_secret_enc=None))
    with pytest.raises(EnrolmentRequired, match="has none yet: enrol an authenticator") as err:
        do_login(ctx, "boss")
    assert isinstance(err.value, AuthError) and err.value.pending.username == "boss"
    assert events(ctx.engine, "login_failed") == [] and user_row(ctx, "boss")["failed_logins"] == 0
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(_sessions)).first() is None


def test_disabled_account_is_refused(ctx, make_user):
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_users).where(_users.c.id == user.id).values(disabled=True))
    with pytest.raises(AuthError, match="disabled"):
        do_login(ctx, "alice")


def test_outdated_hash_is_upgraded_on_login(ctx, make_user):
    make_user("alice")
    stronger = ctx.settings.model_copy(update={"auth": ctx.settings.auth.model_copy(
        update={"argon2": Argon2Settings(time_cost=2, memory_kib=16, parallelism=1)})})
    old = user_row(ctx, "alice")["password_hash"]
    do_login(ctx, "alice", settings=stronger)
    new = user_row(ctx, "alice")["password_hash"]
    assert new != old and "m=16,t=2,p=1" in new
    assert passwords.verify_password(new, PASSWORD, stronger.auth)
    assert events(ctx.engine, "login_success")[0]["details"]["rehashed"] is True


def _verified_hash_params(monkeypatch) -> list[str]:
    """The parameter part (m=..,t=..,p=..) of every hash an Argon2 verification ran on."""
    seen: list[str] = []
    real = passwords.PasswordHasher.verify

    def spy(self, stored, password):
        seen.append(stored.split("$")[3])
        return real(self, stored, password)
    monkeypatch.setattr(passwords.PasswordHasher, "verify", spy)
    return seen


def test_a_locked_account_answers_exactly_like_an_unknown_one(ctx, make_user, monkeypatch):
    """Neither the words nor the work tell a locked account from one that does not
    exist: the same code and message, and one Argon2 verification with the configured
    parameters each (the real account's hash is not checked while it is locked)."""
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        users.lock(conn, user, by="test", now=T0)
    stored = user_row(ctx, "alice")["password_hash"].split("$")[3]
    seen = _verified_hash_params(monkeypatch)
    answers = []
    for name in ("alice", "nobody"):
        with pytest.raises(AuthError) as refused:
            do_login(ctx, name, now=T0 + timedelta(minutes=1))
        answers.append((type(refused.value), refused.value.code, str(refused.value)))
    assert answers[0] == answers[1] == (AuthError, "unauthenticated", auth.BAD_CREDENTIALS)
    assert seen == [stored, stored]
    assert [e["details"]["reason"] for e in events(ctx.engine, "login_failed")] == ["locked", "unknown_user"]


def test_no_refusal_names_the_account(ctx, make_user):
    """A refusal's message never carries the username typed (it would land in client logs)."""
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        conn.execute(update(_users).where(_users.c.id == user.id).values(disabled=True))
    with pytest.raises(AuthError) as refused:
        do_login(ctx, "alice")
    assert "alice" not in str(refused.value)


def test_a_name_no_account_has_is_recorded_as_a_keyed_hash_never_as_typed(ctx, make_user):
    """What is typed as a username may be an email or a client's name: a failed login for
    it is evidence by a keyed hash only, and the per-name limit still counts it."""
    from strongroom.core.db.models import AuditLog

    typed = "jane.q.doe@example.org"
    with pytest.raises(AuthError):
        do_login(ctx, typed, addr="198.51.100.1")
    with pytest.raises(AuthError):
        do_login(ctx, typed.upper(), addr="198.51.100.2")
    recorded = [e["username"] for e in events(ctx.engine, "login_failed")]
    assert len(recorded) == 2 and recorded[0] == recorded[1] and recorded[0].startswith("unknown:")
    with transaction(ctx.engine, read_only=True) as conn:
        audit_text = " ".join(str(dict(r)) for r in conn.execute(select(AuditLog.__table__)).mappings())
    assert "jane" not in audit_text.lower() and "jane" not in str(events(ctx.engine)).lower()
