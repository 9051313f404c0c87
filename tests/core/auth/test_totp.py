from __future__ import annotations

from datetime import timedelta

import pyotp
from auth_helpers import T0, code_for
from sqlalchemy import select

from strongroom.core.auth import totp
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import User


def test_enrolment_gives_secret_uri_with_issuer_and_terminal_qr():
    enrolment = totp.enrolment_for(totp.new_secret(), "alice", "Clinic Strongroom")
    parsed = pyotp.parse_uri(enrolment.uri)
    assert parsed.secret == enrolment.secret
    assert parsed.issuer == "Clinic Strongroom"
    assert parsed.name == "alice"
    assert "█" in enrolment.qr_text and enrolment.qr_text.count("\n") > 10
    assert enrolment.secret not in repr(enrolment)


def test_code_in_window_matches_its_step():
    secret = totp.new_secret()
    step = totp.time_step(T0)
    assert totp.matching_step(secret, totp.code_at(secret, step), last_step=None, now=T0) == step
    assert totp.matching_step(secret, totp.code_at(secret, step - 1), last_step=None, now=T0) == step - 1
    assert totp.matching_step(secret, totp.code_at(secret, step + 1), last_step=None, now=T0) == step + 1


def test_code_outside_window_is_refused():
    secret = totp.new_secret()
    old = totp.code_at(secret, totp.time_step(T0) - 2)
    assert totp.matching_step(secret, old, last_step=None, now=T0) is None


def test_malformed_code_is_refused():
    secret = totp.new_secret()
    for bad in ("", "12345", "1234567", "abcdef", "12 34 5x"):
        assert totp.matching_step(secret, bad, last_step=None, now=T0) is None


def test_code_at_or_before_last_accepted_step_is_refused():
    secret = totp.new_secret()
    step = totp.time_step(T0)
    code = totp.code_at(secret, step)
    assert totp.matching_step(secret, code, last_step=step, now=T0) is None
    assert totp.matching_step(secret, code, last_step=step + 1, now=T0) is None
    assert totp.matching_step(secret, code, last_step=step - 1, now=T0) == step


def test_secret_is_stored_encrypted_bound_to_the_user_row(ctx, make_user):
    user, enrolment = make_user("opsadmin", role="admin")
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(User.__table__).where(User.__table__.c.id == user.id)).mappings().one()
        assert row["totp_enabled"] is True
        assert enrolment.secret.encode() not in bytes(row["totp_secret_enc"])
        assert totp.load_secret(conn, ctx.keyring, user.id, row["totp_secret_enc"]) == enrolment.secret


def test_accept_step_is_conditional_so_a_code_wins_only_once(ctx, make_user):
    user, enrolment = make_user("opsadmin", role="admin")
    step = totp.time_step(T0)
    with transaction(ctx.engine) as conn:
        assert totp.accept_step(conn, user.id, step) is True
        assert totp.accept_step(conn, user.id, step) is False
        assert totp.accept_step(conn, user.id, step - 1) is False
        assert totp.accept_step(conn, user.id, step + 1) is True
    assert code_for(enrolment, T0 + timedelta(seconds=30)) == totp.code_at(enrolment.secret, step + 1)
