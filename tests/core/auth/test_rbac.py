from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import T0, audit_actions, events

from strongroom.core.auth import rbac
from strongroom.core.auth.security import Actor
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError


def perms(role):
    return rbac.role_permissions(role)


def can(role, permission):
    return rbac.has_permission(perms(role), permission)


def test_every_role_has_permissions_and_only_known_ones():
    for role in Role:
        assert perms(role)
        for pattern in perms(role):
            assert rbac.validate_permission(pattern) == pattern


def test_wildcards_match_one_segment_each():
    assert rbac.matches("job:*:run", "job:backup:run")
    assert not rbac.matches("job:*:run", "job:backup:cancel")
    assert not rbac.matches("job:*", "job:backup:run")
    assert rbac.matches("*", "keys:manage")
    assert rbac.matches("table:*:*", "table:clients:delete")


@pytest.mark.parametrize("role, allowed, denied", [
    (Role.STAFF, ["table:clients:read", "table:therapy_sessions:write"], ["phi:read", "table:clients:write"]),
    (Role.PRACTITIONER, ["phi:read", "table:clients:write"], ["user:manage", "job:backup:run", "job:reconcile:run"]),
    (Role.MANAGER, ["audit:read", "job:export:run", "job:reconcile:run"], ["keys:manage", "table:clients:delete"]),
    (Role.ADMIN, ["user:manage", "table:clients:delete", "phi:read", "job:reconcile:run"],
     ["keys:manage", "job:restore:run"]),
    (Role.OP_ADMIN, ["keys:manage", "phi:read", "user:manage"], []),
    (Role.OPERATOR, ["job:backup:run", "job:restore:run", "sync:resolve"], ["phi:read", "user:manage", "table:clients:read"]),
    (Role.AUDITOR, ["audit:read", "security:read", "compliance:read"], ["phi:read", "job:backup:run", "table:clients:read"]),
])
def test_role_permissions(role, allowed, denied):
    assert all(can(role, p) for p in allowed)
    assert not any(can(role, p) for p in denied)


def test_unknown_permission_grant_is_a_validation_error(ctx, make_user):
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        for bad in ("table:clients:readd", "phi", "launch:missiles", "nothing:*"):
            with pytest.raises(ValidationError, match="unknown permission"):
                rbac.grant(conn, user, bad, granted_by="test", duration=timedelta(hours=1))
    assert events(ctx.engine, "grant_created") == []


def test_grant_adds_permission_until_expiry_and_is_audited(ctx, make_user):
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        rbac.require(conn, user, "table:clients:read", now=T0)
        with pytest.raises(PermissionDenied, match="lacks permission 'phi:read'"):
            rbac.require(conn, user, "phi:read", now=T0)
        granted = rbac.grant(conn, user, "phi:read", granted_by="local:0", reason="cover shift",
                             duration=rbac.parse_duration("8h"), now=T0)
    assert granted.expires_at == T0 + timedelta(hours=8)
    with transaction(ctx.engine, read_only=True) as conn:
        assert "phi:read" in rbac.effective_permissions(conn, user, now=T0 + timedelta(hours=1))
        rbac.require(conn, user, "phi:read", now=T0 + timedelta(hours=1))
    assert events(ctx.engine, "grant_created")[0]["details"]["permission"] == "phi:read"
    assert audit_actions(ctx.engine)[-1] == "GRANT"


def test_a_wildcard_grant_opens_every_job_kind_and_nothing_else(ctx, make_user):
    from strongroom.core.jobs import all_kinds

    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        with pytest.raises(PermissionDenied):
            rbac.require(conn, user, "job:integrity:run", now=T0)
    with transaction(ctx.engine) as conn:
        rbac.grant(conn, user, "job:*:run", granted_by="test", duration=timedelta(hours=1), now=T0)
    with transaction(ctx.engine) as conn:
        for kind in all_kinds():
            rbac.require(conn, user, f"job:{kind}:run", now=T0)
    for beyond in ("phi:read", "table:client_files:read", "keys:manage", "user:manage", "audit:read"):
        with pytest.raises(PermissionDenied):
            with transaction(ctx.engine) as conn:
                rbac.require(conn, user, beyond, now=T0)


@pytest.mark.parametrize("via_engine", [True, False])
def test_expired_grant_denies_with_clear_error_and_security_event(ctx, make_user, via_engine):
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        granted = rbac.grant(conn, user, "phi:read", granted_by="local:0",
                             expires_at=T0 + timedelta(hours=2), now=T0)
    later = T0 + timedelta(hours=3)
    actor = Actor("user:sam", session_id="s-1", ip_address="10.1.1.1")
    with pytest.raises(PermissionDenied) as err:
        if via_engine:
            rbac.require(ctx.engine, user, "phi:read", actor_ctx=actor, now=later)
        else:
            # The caller's transaction rolls back with the denial; the event must not.
            with transaction(ctx.engine, read_only=True) as conn:
                rbac.require(conn, user, "phi:read", actor_ctx=actor, now=later)
    assert "expired at 2030-01-15T11:00:00+00:00" in str(err.value)
    assert str(granted.id) in str(err.value)
    used = events(ctx.engine, "grant_expired_use")
    assert len(used) == 1 and used[0]["ip_address"] == "10.1.1.1"
    assert used[0]["details"]["grant_id"] == str(granted.id)
    assert audit_actions(ctx.engine)[-1] == "SECURITY"


def test_revoked_grant_stops_working_and_cannot_be_revoked_twice(ctx, make_user):
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        granted = rbac.grant(conn, user, "phi:read", granted_by="test", duration=timedelta(days=1), now=T0)
        rbac.revoke_grant(conn, granted.id, revoked_by="test", now=T0 + timedelta(hours=1))
        with pytest.raises(PermissionDenied, match="lacks permission"):
            rbac.require(conn, user, "phi:read", now=T0 + timedelta(hours=2))
        with pytest.raises(ConflictError, match="already revoked"):
            rbac.revoke_grant(conn, granted.id, revoked_by="test")
        with pytest.raises(NotFoundError):
            rbac.revoke_grant(conn, __import__("uuid").uuid4(), revoked_by="test")
    assert audit_actions(ctx.engine)[-1] == "REVOKE"
    assert events(ctx.engine, "grant_expired_use") == []


def test_grant_expiry_must_be_future_and_bounded(ctx, make_user):
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        with pytest.raises(ValidationError, match="future"):
            rbac.grant(conn, user, "phi:read", granted_by="t", expires_at=T0 - timedelta(1), now=T0)
        with pytest.raises(ValidationError, match="exactly one"):
            rbac.grant(conn, user, "phi:read", granted_by="t", now=T0)


@pytest.mark.parametrize("text, expected", [("30m", timedelta(minutes=30)), ("8h", timedelta(hours=8)),
                                            ("2d", timedelta(days=2)), ("1w", timedelta(weeks=1))])
def test_parse_duration(text, expected):
    assert rbac.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "8", "h", "8 hours", "-1h", "0m", "400d"])
def test_parse_duration_rejects_bad_input(text):
    with pytest.raises(ValidationError, match="duration"):
        rbac.parse_duration(text)


def test_principal_carries_effective_permissions(ctx, make_user):
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        rbac.grant(conn, user, "phi:read", granted_by="t", duration=timedelta(hours=1), now=T0)
        who = rbac.principal(conn, user, session_id="s-9", now=T0)
    assert who.actor == "user:sam" and who.can("phi:read") and not who.can("user:manage")
    assert who.user_id == user.id and who.session_id == "s-9"


def test_expired_grant_inside_a_write_transaction_still_denies_promptly(ctx, make_user):
    import time
    user, _ = make_user("sam", role="STAFF")
    with transaction(ctx.engine) as conn:
        rbac.grant(conn, user, "phi:read", granted_by="t", expires_at=T0 + timedelta(hours=1), now=T0)
    started = time.monotonic()
    with pytest.raises(PermissionDenied, match="expired at"):
        with transaction(ctx.engine) as conn:
            rbac.require(conn, user, "phi:read", now=T0 + timedelta(hours=2))
    assert time.monotonic() - started < 2  # no wait on our own write lock
    # PostgreSQL records it in its own transaction; SQLite (one writer) could only
    # write it on the caller's transaction, which the denial rolled back.
    expected = 1 if ctx.engine.dialect.name == "postgresql" else 0
    assert len(events(ctx.engine, "grant_expired_use")) == expected


def test_every_job_kind_can_be_granted_by_its_exact_name():
    from strongroom.core.auth.rbac import PERMISSIONS
    from strongroom.core.jobs import all_kinds

    assert {f"job:{kind}:run" for kind in all_kinds()} <= PERMISSIONS
