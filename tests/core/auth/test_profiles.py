"""Per-user security profiles: the policy is the default and the bound, a user's own
setting may only be stricter, and what is in force follows the stricter of the two."""
from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, audit_actions, events
from sqlalchemy import select

from strongroom.core.auth import devices, profiles
from strongroom.core.auth import login as auth
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import ClientFile, UserDevice, UserSecurityProfile
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError


def _set(ctx, username, **changes):
    with transaction(ctx.engine) as conn:
        return profiles.update_profile(conn, ctx.settings.auth, username, changes, actor="test")


def _show(ctx, username):
    with transaction(ctx.engine, read_only=True) as conn:
        return profiles.show(conn, ctx.settings.auth, username)


def _login(ctx, username, *, host="desk-1", program="strongroom-cli", key=None, now=T0):
    return auth.login(ctx.engine, ctx.keyring, ctx.settings, username, PASSWORD, None, client_host=host,
                      client_addr="ipc:uid=1000", client_name=program, device_key=key, now=now)


def test_without_a_profile_the_policy_is_in_force(ctx, make_user):
    make_user("alice")
    shown = _show(ctx, "alice")
    policy = ctx.settings.auth
    assert shown["effective"] == {"session_idle_minutes": policy.session_idle_minutes,
                                  "max_sessions": policy.max_sessions_per_user,
                                  "rate_limits": dict(policy.rate_limits), "storage_quota_mb": None}
    assert all(value is None for value in shown["own"].values())
    assert shown["storage_used_bytes"] == 0 and shown["two_factor"] is False


def test_a_stricter_setting_is_kept_and_applies_and_is_audited(ctx, make_user):
    make_user("alice")
    shown = _set(ctx, "alice", session_idle_minutes=5, max_sessions=1, rate_limits={"exports": 3})
    assert shown["effective"]["session_idle_minutes"] == 5
    assert shown["effective"]["max_sessions"] == 1
    assert shown["effective"]["rate_limits"]["exports"] == 3
    assert audit_actions(ctx.engine)[-1] == "SECURITY"
    _token, first = _login(ctx, "alice")
    assert first.idle_timeout_seconds == 5 * 60
    _login(ctx, "alice", now=T0 + timedelta(seconds=1))
    assert len(events(ctx.engine, "session_limit")) == 1          # one session at a time


@pytest.mark.parametrize("changes, field", [
    ({"session_idle_minutes": 10_000}, "profile.session_idle_minutes"),
    ({"max_sessions": 0}, "profile.max_sessions"),
    ({"max_sessions": True}, "profile.max_sessions"),
    ({"rate_limits": {"exports": 31}}, "profile.rate_limits.exports"),
    ({"rate_limits": {"Bad Class": 1}}, "profile.rate_limits"),
    ({"rate_limits": [1]}, "profile.rate_limits"),
    ({"password": "x"}, "profile: unknown setting"),
])
def test_a_looser_or_malformed_setting_is_refused_naming_the_field_and_nothing_changes(ctx, make_user,
                                                                                    changes, field):
    make_user("alice")
    with pytest.raises(ValidationError) as refused:
        _set(ctx, "alice", **changes)
    assert field in str(refused.value)
    assert "10000" not in str(refused.value) and "Bad Class" not in str(refused.value)
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(UserSecurityProfile.__table__)).first() is None


def test_clearing_a_setting_returns_it_to_the_policy(ctx, make_user):
    make_user("alice")
    _set(ctx, "alice", session_idle_minutes=5)
    shown = _set(ctx, "alice", session_idle_minutes=None)
    assert shown["own"]["session_idle_minutes"] is None
    assert shown["effective"]["session_idle_minutes"] == ctx.settings.auth.session_idle_minutes


def test_a_tighter_policy_tightens_every_profile(ctx, make_user):
    make_user("alice")
    _set(ctx, "alice", session_idle_minutes=20)
    tighter = ctx.settings.auth.model_copy(update={"session_idle_minutes": 10})
    with transaction(ctx.engine, read_only=True) as conn:
        assert profiles.effective_for(conn, tighter, _user_id(ctx, "alice"))["session_idle_minutes"] == 10


def _user_id(ctx, username):
    from strongroom.core.auth.users import get_user
    with transaction(ctx.engine, read_only=True) as conn:
        return get_user(conn, username).id


def test_an_unknown_user_is_not_found(ctx):
    with pytest.raises(NotFoundError):
        _set(ctx, "nobody", max_sessions=1)


def test_consent_is_recorded_and_users_behind_the_current_version_are_listed(ctx, make_user):
    make_user("alice")
    make_user("bob")
    policy = ctx.settings.auth.model_copy(update={"hipaa_consent_version": "2026-1"})
    with transaction(ctx.engine) as conn:
        shown = profiles.record_consent(conn, policy, "alice", "2026-1", actor="user:alice")
        assert shown["hipaa_consent"]["current"] and shown["hipaa_consent"]["version"] == "2026-1"
        assert profiles.without_current_consent(conn, policy) == ["bob"]
        with pytest.raises(ValidationError):
            profiles.record_consent(conn, policy, "bob", "v 1; drop", actor="test")


def test_storage_quota_refuses_content_past_it(ctx, make_user):
    make_user("alice")
    _set(ctx, "alice", storage_quota_mb=1)
    uid = _user_id(ctx, "alice")
    with transaction(ctx.engine, read_only=True) as conn:
        profiles.check_quota(conn, ctx.settings.auth, uid, 1024 * 1024)      # exactly the quota
        with pytest.raises(ConflictError, match="storage quota exceeded"):
            profiles.check_quota(conn, ctx.settings.auth, uid, 1024 * 1024 + 1)
        assert conn.execute(select(ClientFile.__table__)).first() is None


def test_the_first_device_is_low_and_a_new_one_after_it_medium(ctx, make_user):
    make_user("alice")
    _login(ctx, "alice")
    _login(ctx, "alice", now=T0 + timedelta(minutes=1))                      # the same desk: nothing new
    first = events(ctx.engine, "new_device")
    assert [e["severity"] for e in first] == ["low"]
    _login(ctx, "alice", host="laptop-7", now=T0 + timedelta(minutes=2))
    _login(ctx, "alice", key="rq:Zc0hW9x]mD@u", now=T0 + timedelta(minutes=3))   # a CURVE key
    assert [e["severity"] for e in events(ctx.engine, "new_device")] == ["low", "medium", "medium"]
    with transaction(ctx.engine, read_only=True) as conn:
        listed = devices.list_devices(conn, _user_id(ctx, "alice"))
        stored = conn.execute(select(UserDevice.__table__)).mappings().all()
    assert len(listed) == 3 and sorted(d["logins"] for d in listed) == [1, 1, 2]
    assert not any("rq:Zc0hW9x" in str(dict(row)) for row in stored)     # a hash, never the key itself
