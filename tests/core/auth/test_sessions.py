from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, audit_actions, events
from sqlalchemy import select

from strongroom.core.auth import login as auth
from strongroom.core.auth import sessions, users
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuthSession
from strongroom.core.errors import AuthError, ConflictError, NotFoundError

_sessions = AuthSession.__table__


def do_login(ctx, username="alice", *, now=T0):
    return auth.login(ctx.engine, ctx.keyring, ctx.settings, username, PASSWORD,
                      client_addr="10.0.0.5", now=now)


def stored(ctx, session_id):
    with transaction(ctx.engine, read_only=True) as conn:
        return conn.execute(select(_sessions).where(_sessions.c.id == session_id)).mappings().one()


def test_authenticate_returns_user_and_refreshes_idle_timer(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx)
    later = T0 + timedelta(minutes=20)
    user, current = auth.authenticate(ctx.engine, token, now=later)
    assert user.username == "alice" and current.id == session.id
    assert stored(ctx, session.id)["last_seen_at"] == later
    # 20 + 20 minutes is past the first idle deadline, but the touch moved it.
    assert auth.authenticate(ctx.engine, token, now=later + timedelta(minutes=20))[1].id == session.id


def test_unknown_token_is_refused(ctx, make_user):
    make_user("alice")
    do_login(ctx)
    with pytest.raises(AuthError, match="invalid session token"):
        auth.authenticate(ctx.engine, "not-a-token", now=T0)
    with pytest.raises(AuthError):
        auth.authenticate(ctx.engine, "", now=T0)


def test_session_idle_timeout_revokes(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx)
    idle = timedelta(minutes=ctx.settings.auth.session_idle_minutes, seconds=1)
    with pytest.raises(AuthError, match="expired after inactivity"):
        auth.authenticate(ctx.engine, token, now=T0 + idle)
    row = stored(ctx, session.id)
    assert row["revoked_reason"] == "idle_timeout" and row["revoked_at"] == T0 + idle
    assert events(ctx.engine, "session_expired")[0]["details"] == {"reason": "idle_timeout"}
    with pytest.raises(AuthError, match="ended"):
        auth.authenticate(ctx.engine, token, now=T0 + idle)


def test_session_absolute_lifetime_revokes_even_when_active(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx)
    hours = ctx.settings.auth.session_absolute_hours
    moment = T0
    while moment + timedelta(minutes=25) < T0 + timedelta(hours=hours):
        moment += timedelta(minutes=25)
        auth.authenticate(ctx.engine, token, now=moment)
    with pytest.raises(AuthError, match="absolute lifetime"):
        auth.authenticate(ctx.engine, token, now=T0 + timedelta(hours=hours))
    assert stored(ctx, session.id)["revoked_reason"] == "expired"


def test_concurrent_session_limit_revokes_oldest(ctx, make_user):
    make_user("alice")
    limit = ctx.settings.auth.max_sessions_per_user
    opened = [do_login(ctx, now=T0 + timedelta(seconds=i)) for i in range(limit + 2)]
    active = sessions.list_sessions(ctx.engine, now=T0 + timedelta(seconds=limit + 2))
    assert {s.id for s in active} == {s.id for _, s in opened[2:]}
    for token, session in opened[:2]:
        assert stored(ctx, session.id)["revoked_reason"] == "session_limit"
        with pytest.raises(AuthError, match="session_limit"):
            auth.authenticate(ctx.engine, token, now=T0 + timedelta(seconds=limit + 3))
    assert len(events(ctx.engine, "session_limit")) == 2


def test_revoke_by_operator_ends_session_and_is_audited(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx)
    revoked = sessions.revoke(ctx.engine, session.id, by="local:0", reason="lost laptop", now=T0)
    assert revoked.revoked_reason == "lost laptop"
    with pytest.raises(AuthError):
        auth.authenticate(ctx.engine, token, now=T0)
    with pytest.raises(ConflictError, match="already revoked"):
        sessions.revoke(ctx.engine, session.id, by="local:0")
    with pytest.raises(NotFoundError):
        sessions.revoke(ctx.engine, __import__("uuid").uuid4(), by="local:0")
    assert events(ctx.engine, "session_revoked")[0]["details"] == {"reason": "lost laptop"}


def test_logout_ends_the_session_once(ctx, make_user):
    make_user("alice")
    token, session = do_login(ctx)
    assert auth.logout(ctx.engine, token, now=T0).revoked_reason == "logout"
    with pytest.raises(AuthError, match="not logged in"):
        auth.logout(ctx.engine, token, now=T0)
    assert audit_actions(ctx.engine)[-1] == "LOGOUT"


def test_list_sessions_active_only_and_all(ctx, make_user):
    make_user("alice")
    _, first = do_login(ctx)
    _, second = do_login(ctx, now=T0 + timedelta(minutes=1))
    sessions.revoke(ctx.engine, first.id, by="test", now=T0 + timedelta(minutes=2))
    now = T0 + timedelta(minutes=3)
    assert [s.id for s in sessions.list_sessions(ctx.engine, now=now)] == [second.id]
    assert [s.id for s in sessions.list_sessions(ctx.engine, active_only=False, now=now)] == [second.id, first.id]


def test_locking_a_user_ends_their_sessions(ctx, make_user):
    user, _ = make_user("alice")
    token, session = do_login(ctx)
    with transaction(ctx.engine) as conn:
        users.lock(conn, user, by="test", minutes=10, now=T0)
    assert stored(ctx, session.id)["revoked_reason"] == "account_locked"
    with pytest.raises(AuthError):
        auth.authenticate(ctx.engine, token, now=T0)
