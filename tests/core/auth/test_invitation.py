"""Inviting a person: the administrator makes the account and hands over an invitation;
only the holder ever knows the password (and, for a role that requires one, the second
factor). An invitation is good once, for three days, and for its own account only."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from auth_helpers import PASSWORD, T0, events
from sqlalchemy import select

from strongroom.core.auth import invitation, totp
from strongroom.core.auth import login as auth
from strongroom.core.auth import users
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuthSession
from strongroom.core.errors import AuthError, ConflictError, ValidationError

NEW_PASSWORD = "their own long passphrase 7"


def invite(ctx, practice_id, username="newbie", role="PRACTITIONER", now=T0):
    with transaction(ctx.engine) as conn:
        return invitation.invite(conn, ctx.keyring, ctx.settings, practice_id, username, role,
                                 "New Person", "new@example.org", actor="user:boss", now=now)


def accept(ctx, token, password=NEW_PASSWORD, now=T0 + timedelta(hours=1)):
    return invitation.accept(ctx.engine, ctx.keyring, ctx.settings, token, password, now=now,
                             client_host="desk-2", client_addr="10.0.0.7", client_name="strongroom-console")


def sessions(ctx) -> int:
    with transaction(ctx.engine, read_only=True) as conn:
        return len(conn.execute(select(AuthSession.__table__.c.id)).all())


def test_the_holder_sets_the_password_and_is_logged_in(ctx, practice_id):
    made = invite(ctx, practice_id)
    assert made.user.username == "newbie" and made.user.role.value == "PRACTITIONER"
    assert made.expires_at == T0 + timedelta(days=3) and made.token.startswith(f"{made.user.id}.")
    assert made.token not in repr(made)
    with pytest.raises(AuthError):       # nobody knows the password it was made with
        auth.login(ctx.engine, ctx.keyring, ctx.settings, "newbie", PASSWORD, now=T0)

    token, session = accept(ctx, made.token)
    assert token and session.user_id == made.user.id and sessions(ctx) == 1
    # The holder's password works from now on; the invitation does not, ever again.
    auth.login(ctx.engine, ctx.keyring, ctx.settings, "newbie", NEW_PASSWORD, now=T0 + timedelta(hours=2))
    with pytest.raises(AuthError, match="used or replaced"):
        accept(ctx, made.token, "another long passphrase 8")
    kinds = [e["event_type"] for e in events(ctx.engine)]
    assert {"user_created", "user_invited", "invitation_accepted", "password_changed"} <= set(kinds)
    # The token and the passwords are written down nowhere.
    written = json.dumps(events(ctx.engine), default=str)
    assert made.token not in written and made.token.split(".")[1] not in written
    assert NEW_PASSWORD not in written


def test_a_role_that_requires_2fa_enrols_it_after_the_password_shown_to_the_holder_only(ctx, practice_id):
    made = invite(ctx, practice_id, username="boss2", role="admin")
    with transaction(ctx.engine, read_only=True) as conn:
        record = users.get_user_by_id(conn, made.user.id)
    assert not record.totp_enabled                       # nothing enrolled by the administrator
    with pytest.raises(EnrolmentRequired) as offered:
        accept(ctx, made.token)
    pending = offered.value.pending
    when = T0 + timedelta(hours=1)
    token, _ = auth.confirm_enrolment(ctx.engine, ctx.keyring, ctx.settings, pending.token,
                                      totp.code_at(pending.secret, totp.time_step(when)), now=when)
    assert token and sessions(ctx) == 1


def test_a_policy_refusal_names_the_rule_and_changes_nothing(ctx, practice_id):
    made = invite(ctx, practice_id)
    with pytest.raises(ValidationError) as refused:
        accept(ctx, made.token, "short")
    assert "short" not in str(refused.value).replace("too short", "")
    token, _ = accept(ctx, made.token)                   # still good: nothing was stored
    assert token


@pytest.mark.parametrize("spoil", ["expired", "truncated", "other purpose", "garbage", "other user"])
def test_a_bad_invitation_is_refused_and_stores_nothing(ctx, practice_id, spoil):
    made = invite(ctx, practice_id)
    other = invite(ctx, practice_id, username="second")
    token, now = made.token, T0 + timedelta(hours=1)
    if spoil == "expired":
        now = T0 + timedelta(days=3, seconds=1)
    elif spoil == "truncated":
        token = token[:-6]
    elif spoil == "other purpose":                       # an enrolment token is not an invitation
        admin = invite(ctx, practice_id, username="boss3", role="admin")
        with pytest.raises(EnrolmentRequired) as offered:
            accept(ctx, admin.token)
        token = offered.value.pending.token
    elif spoil == "garbage":
        token = "not-a-token"
    elif spoil == "other user":                          # one account's sealed part under another's id
        token = f"{other.user.id}.{made.token.split('.', 1)[1]}"
    with pytest.raises(AuthError) as refused:
        accept(ctx, token, now=now)
    assert token not in str(refused.value)
    assert sessions(ctx) == 0
    with pytest.raises(AuthError):
        auth.login(ctx.engine, ctx.keyring, ctx.settings, "newbie", NEW_PASSWORD, now=now)


def test_a_taken_username_is_refused(ctx, practice_id, make_user):
    make_user("taken")
    with pytest.raises(ConflictError):
        invite(ctx, practice_id, username="taken")


def test_two_takers_of_one_invitation_at_once_get_one_account(ctx, practice_id):
    """Two first logins racing with the same invitation: one sets its password, the other
    is told the invitation was used, whatever the engine's interleaving."""
    import threading

    made = invite(ctx, practice_id)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def take(password: str) -> None:
        start.wait()
        try:
            accept(ctx, made.token, password)
            outcomes.append(password)
        except AuthError:
            outcomes.append("refused")
    threads = [threading.Thread(target=take, args=(p,)) for p in ("first passphrase 111", "second passphrase 222")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes).count("refused") == 1
    winner = next(o for o in outcomes if o != "refused")
    auth.login(ctx.engine, ctx.keyring, ctx.settings, "newbie", winner, now=T0 + timedelta(hours=2))
