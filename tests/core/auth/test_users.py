from __future__ import annotations

from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, audit_actions, events
from sqlalchemy import select

from strongroom.core.auth import passwords, users
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role, User
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError

_users = User.__table__


def test_create_user_stores_argon2_hash_and_records_event(ctx, make_user):
    user, enrolment = make_user("alice", role="PRACTITIONER")
    assert enrolment is None and user.role is Role.PRACTITIONER and not user.totp_enabled
    with transaction(ctx.engine) as conn:
        stored = conn.execute(select(_users.c.password_hash).where(_users.c.id == user.id)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    created = events(ctx.engine, "user_created")
    assert created[0]["username"] == "alice" and created[0]["details"]["role"] == "PRACTITIONER"
    assert "CREATE" in audit_actions(ctx.engine)


@pytest.mark.parametrize("role", ["ADMIN", "admin", "operator"])
def test_roles_requiring_2fa_are_enrolled_at_creation(make_user, role):
    user, enrolment = make_user("boss", role=role)
    assert user.totp_enabled is True
    assert enrolment is not None and enrolment.uri.startswith("otpauth://totp/")


def test_duplicate_username_is_a_conflict(make_user):
    make_user("alice")
    with pytest.raises(ConflictError, match="already exists"):
        make_user("alice")


@pytest.mark.parametrize("name", ["Alice", "al", "a" * 65, "al ice", "alice@x", ""])
def test_invalid_username_is_refused(make_user, name):
    with pytest.raises(ValidationError, match="username"):
        make_user(name)


def test_unknown_role_and_weak_password_are_refused(make_user):
    with pytest.raises(ValidationError, match="role: expected one of"):
        make_user("alice", role="ROOT")
    with pytest.raises(ValidationError, match="password"):
        make_user("alice", password="short")


def test_list_users_is_sorted_and_hides_secrets(ctx, make_user):
    make_user("zed")
    make_user("amy", role="STAFF")
    with transaction(ctx.engine) as conn:
        listed = users.list_users(conn)
    assert [u.username for u in listed] == ["amy", "zed"]
    assert "password_hash" not in listed[0].as_dict() and "totp_secret_enc" not in listed[0].as_dict()


def test_lock_for_minutes_and_indefinitely_then_unlock(ctx, make_user):
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        locked = users.lock(conn, user, by="test", minutes=30, reason="left laptop", now=T0)
    assert locked.locked_until == T0 + timedelta(minutes=30)
    assert locked.is_locked(T0 + timedelta(minutes=29)) and not locked.is_locked(T0 + timedelta(minutes=31))
    with transaction(ctx.engine) as conn:
        forever = users.lock(conn, user, by="test", now=T0)
    assert forever.locked_until == users.INDEFINITE
    with transaction(ctx.engine) as conn:
        unlocked = users.unlock(conn, user, by="test", now=T0)
    assert unlocked.locked_until is None and unlocked.failed_logins == 0
    assert [e["event_type"] for e in events(ctx.engine)][-3:] == ["user_locked", "user_locked", "user_unlocked"]
    assert audit_actions(ctx.engine)[-3:] == ["LOCK", "LOCK", "UNLOCK"]


def test_reset_2fa_leaves_the_account_pending_enrolment_and_hands_out_no_secret(ctx, make_user):
    """The old secret is wiped, not replaced: nobody but the account's owner ever sees the
    next one, which they enrol at their next login (core.auth.enrolment)."""
    user, first = make_user("boss", role="admin")
    with transaction(ctx.engine) as conn:
        conn.execute(_users.update().where(_users.c.id == user.id).values(totp_last_step=12345))
        after = users.reset_2fa(conn, ctx.keyring, ctx.settings, user, by="test", now=T0)
        row = conn.execute(select(_users).where(_users.c.id == user.id)).mappings().one()
    assert isinstance(after, users.UserRecord) and after.totp_pending and after.totp_enabled
    assert row["totp_secret_enc"] is None and row["totp_last_step"] is None and row["totp_enabled"] is True
    assert events(ctx.engine, "totp_reset")[0]["user_id"] == user.id
    assert first.secret not in str(events(ctx.engine))


def test_set_password_checks_policy_and_replaces_hash(ctx, make_user):
    user, _ = make_user("alice")
    with transaction(ctx.engine) as conn:
        with pytest.raises(ValidationError):
            users.set_password(conn, ctx.settings, user, "alice-alice-alice", by="test")
    with transaction(ctx.engine) as conn:
        users.set_password(conn, ctx.settings, user, "a brand new passphrase", by="test", now=T0)
        stored = conn.execute(select(_users.c.password_hash).where(_users.c.id == user.id)).scalar_one()
    assert passwords.verify_password(stored, "a brand new passphrase", ctx.settings.auth)
    assert len(events(ctx.engine, "password_changed")) == 1


def test_only_practice_id_requires_exactly_one(ctx, practice_id):
    with transaction(ctx.engine) as conn:
        assert users.only_practice_id(conn) == practice_id


def test_unknown_user_is_not_found(ctx):
    with transaction(ctx.engine) as conn:
        with pytest.raises(NotFoundError, match="no user by that name"):
            users.get_user(conn, "ghost")
