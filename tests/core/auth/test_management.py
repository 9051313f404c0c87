"""Account management guards (core.auth.management) on SQLite and PostgreSQL: self-lock,
the last administrator, grants beyond one's own, and that a refusal changes nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import T0, audit_count, events

from strongroom.core.auth import management, rbac, users
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.principal import Principal

LOCAL = Principal(actor="local:0", permissions=rbac.role_permissions(Role.OP_ADMIN))
NOW = T0 + timedelta(minutes=5)


def as_principal(ctx, user) -> Principal:
    with transaction(ctx.engine, read_only=True) as conn:
        return rbac.principal(conn, user, now=NOW)


def user(ctx, username):
    with transaction(ctx.engine, read_only=True) as conn:
        return users.get_user(conn, username)


def act(ctx, fn, *args, **kw):
    with transaction(ctx.engine) as conn:
        return fn(conn, *args, now=NOW, **kw)


@pytest.fixture
def team(make_user):
    """One practice ADMIN, one practitioner, one auditor."""
    boss, _ = make_user("boss", role="ADMIN")
    pat, _ = make_user("pat", role="PRACTITIONER")
    aud, _ = make_user("aud", role="auditor")
    return boss, pat, aud


def test_admin_roles_are_the_roles_holding_user_manage():
    assert management.admin_roles() == {Role.ADMIN, Role.OP_ADMIN}


def test_lock_and_unlock_a_user_records_events_and_ends_sessions(ctx, team):
    boss, pat, _ = team
    by = as_principal(ctx, boss)
    locked = act(ctx, management.lock_user, by, "pat", reason="left the practice")
    assert locked.is_locked(NOW) and locked.locked_until == users.INDEFINITE
    event = events(ctx.engine, "user_locked")[-1]
    assert event["username"] == "pat" and event["details"]["reason"] == "left the practice"
    unlocked = act(ctx, management.unlock_user, by, "pat", reason="back")
    assert not unlocked.is_locked(NOW) and unlocked.failed_logins == 0
    assert events(ctx.engine, "user_unlocked")[-1]["username"] == "pat"


def test_lock_for_minutes_sets_an_expiry(ctx, team):
    locked = act(ctx, management.lock_user, LOCAL, "pat", minutes=30)
    assert locked.locked_until == NOW + timedelta(minutes=30)


def test_nobody_locks_themselves_and_nothing_changes(ctx, team, make_user):
    boss, _, _ = team
    make_user("second", role="ADMIN")   # so the last-admin rule is not what refuses
    before = audit_count(ctx.engine)
    with pytest.raises(PermissionDenied, match="cannot lock your own account"):
        act(ctx, management.lock_user, as_principal(ctx, boss), "boss")
    assert not user(ctx, "boss").is_locked(NOW)
    assert audit_count(ctx.engine) == before


def test_the_last_active_admin_cannot_be_locked(ctx, team):
    # The local operator is not a user account: only the last-admin rule applies.
    with pytest.raises(ConflictError, match="last active account able to manage users"):
        act(ctx, management.lock_user, LOCAL, "boss")
    assert not user(ctx, "boss").is_locked(NOW)


def test_an_admin_may_be_locked_while_another_is_active_but_not_then_the_other(ctx, team, make_user):
    make_user("second", role="admin")
    act(ctx, management.lock_user, LOCAL, "boss")
    with pytest.raises(ConflictError, match="'second'.*last active"):
        act(ctx, management.lock_user, LOCAL, "second")


def test_unlock_of_an_account_that_is_not_locked_is_a_conflict(ctx, team):
    with pytest.raises(ConflictError, match="not locked"):
        act(ctx, management.unlock_user, LOCAL, "pat")


def test_unknown_user_is_not_found(ctx, team):
    with pytest.raises(NotFoundError, match="no user by that name"):
        act(ctx, management.lock_user, LOCAL, "nobody")


def test_change_role_records_event_and_ends_sessions(ctx, team):
    boss, _, _ = team
    changed = act(ctx, management.change_role, ctx.settings, as_principal(ctx, boss), "pat", "MANAGER",
                  reason="promoted")
    assert changed.role is Role.MANAGER
    event = events(ctx.engine, "role_changed")[-1]
    assert event["details"]["from"] == "PRACTITIONER" and event["details"]["to"] == "MANAGER"


def test_nobody_removes_their_own_admin_role(ctx, team, make_user):
    boss, _, _ = team
    make_user("second", role="ADMIN")
    with pytest.raises(PermissionDenied, match="own administrator role"):
        act(ctx, management.change_role, ctx.settings, as_principal(ctx, boss), "boss", "STAFF")
    assert user(ctx, "boss").role is Role.ADMIN


def test_the_last_admin_keeps_their_role(ctx, team):
    with pytest.raises(ConflictError, match="last active account"):
        act(ctx, management.change_role, ctx.settings, LOCAL, "boss", "STAFF")
    assert user(ctx, "boss").role is Role.ADMIN


def test_a_practice_admin_cannot_hand_out_an_operator_role(ctx, team):
    boss, _, _ = team
    with pytest.raises(PermissionDenied, match="role admin holds permissions"):
        act(ctx, management.change_role, ctx.settings, as_principal(ctx, boss), "pat", "admin")
    assert user(ctx, "pat").role is Role.PRACTITIONER


def test_moving_into_a_2fa_role_without_enrolment_is_refused(ctx, team):
    with pytest.raises(ConflictError, match="requires two-factor"):
        act(ctx, management.change_role, ctx.settings, LOCAL, "pat", "operator")
    assert user(ctx, "pat").role is Role.PRACTITIONER


def test_change_to_the_same_role_or_an_unknown_role_is_refused(ctx, team):
    with pytest.raises(ConflictError, match="already has role"):
        act(ctx, management.change_role, ctx.settings, LOCAL, "pat", "PRACTITIONER")
    with pytest.raises(ValidationError, match="expected one of"):
        act(ctx, management.change_role, ctx.settings, LOCAL, "pat", "wizard")


def test_reset_2fa_wipes_the_secret_and_returns_none_to_the_person_resetting(ctx, team):
    boss, _, _ = team
    record = act(ctx, management.reset_second_factor, ctx.keyring, ctx.settings, LOCAL, "boss")
    assert isinstance(record, users.UserRecord) and record.totp_pending
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(users._users.select().where(users._users.c.id == boss.id)).mappings().one()
    assert row["totp_secret_enc"] is None and row["totp_enabled"]
    event = events(ctx.engine, "totp_reset")[-1]
    assert event["username"] == "boss" and event["details"]["pending_enrolment"] is True


def test_grant_with_expiry_then_revoke(ctx, team):
    boss, _, _ = team
    by = as_principal(ctx, boss)
    granted = act(ctx, management.grant_permission, by, "pat", "audit:read", duration=timedelta(hours=8),
                  reason="case review")
    assert granted.expires_at == NOW + timedelta(hours=8) and granted.granted_by == "user:boss"
    with transaction(ctx.engine, read_only=True) as conn:
        assert [g.id for g in management.grants_of(conn, "pat", now=NOW)] == [granted.id]
    revoked = act(ctx, management.revoke_permission_grant, by, granted.id, reason="done")
    assert revoked.revoked_at == NOW
    with transaction(ctx.engine, read_only=True) as conn:
        assert management.grants_of(conn, "pat", now=NOW) == []
        assert len(management.grants_of(conn, "pat", include_ended=True, now=NOW)) == 1
    assert [e["event_type"] for e in events(ctx.engine)][-2:] == ["grant_created", "grant_revoked"]


def test_grant_beyond_what_the_granter_holds_or_to_oneself_is_refused(ctx, team):
    boss, _, _ = team
    by = as_principal(ctx, boss)
    with pytest.raises(PermissionDenied, match="keys:manage"):
        act(ctx, management.grant_permission, by, "pat", "keys:manage", duration=timedelta(hours=1))
    with pytest.raises(PermissionDenied, match="job:restore:run"):
        act(ctx, management.grant_permission, by, "pat", "job:*:run", duration=timedelta(hours=1))
    with pytest.raises(PermissionDenied, match="to yourself"):
        act(ctx, management.grant_permission, by, "boss", "audit:read", duration=timedelta(hours=1))
    with pytest.raises(ValidationError, match="unknown permission"):
        act(ctx, management.grant_permission, by, "pat", "root:everything", duration=timedelta(hours=1))
    with transaction(ctx.engine, read_only=True) as conn:
        assert rbac.list_grants(conn, active_only=False) == []


def test_revoking_an_unknown_or_ended_grant_is_refused(ctx, team):
    import uuid
    with pytest.raises(NotFoundError):
        act(ctx, management.revoke_permission_grant, LOCAL, uuid.uuid4())
    granted = act(ctx, management.grant_permission, LOCAL, "pat", "audit:read", duration=timedelta(minutes=1))
    with transaction(ctx.engine) as conn:
        with pytest.raises(ConflictError, match="already expired"):
            management.revoke_permission_grant(conn, LOCAL, granted.id, now=NOW + timedelta(minutes=2))
    act(ctx, management.revoke_permission_grant, LOCAL, granted.id)
    with pytest.raises(ConflictError, match="already revoked"):
        act(ctx, management.revoke_permission_grant, LOCAL, granted.id)


def test_nobody_changes_the_role_or_grants_of_an_account_holding_a_permission_they_lack(ctx, team):
    """A practitioner holding keys:manage by a grant (which the clinical ADMIN role lacks):
    the ADMIN may neither move them to another role, grant them more, nor revoke their
    grants; each refusal names the permission and changes nothing."""
    boss, pat, _ = team
    strong = act(ctx, management.grant_permission, LOCAL, "pat", "keys:manage", duration=timedelta(hours=8))
    by = as_principal(ctx, boss)
    before = (user(ctx, "pat"), events(ctx.engine))
    for attempt in (lambda: act(ctx, management.change_role, ctx.settings, by, "pat", "STAFF"),
                    lambda: act(ctx, management.grant_permission, by, "pat", "audit:read",
                                duration=timedelta(hours=1)),
                    lambda: act(ctx, management.revoke_permission_grant, by, strong.id)):
        with pytest.raises(PermissionDenied, match="keys:manage") as refused:
            attempt()
        assert "pat" not in str(refused.value)
    assert (user(ctx, "pat"), events(ctx.engine)) == before
    with transaction(ctx.engine, read_only=True) as conn:
        assert [g.id for g in management.grants_of(conn, "pat", now=NOW)] == [strong.id]
