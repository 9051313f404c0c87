"""`strongroom user ...` against a real data directory on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pyotp
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from strongroom.console.cli import cli, main
from strongroom.core.auth import login as auth
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.crypto.kek import generate_kek, write_kek_file
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.migrate import upgrade
from strongroom.core.db.models import Practice, RoleGrant, SecurityEvent, User, UserSecurityProfile
from strongroom.core.errors import AuthError, ConflictError, NotFoundError, ValidationError

PASSWORD = "correct horse battery staple"


@pytest.fixture
def data_dir(db_url, tmp_path, monkeypatch):
    """A data directory with config, KEK, a migrated database and one practice."""
    monkeypatch.delenv("STRONGROOM_KEK", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    directory = tmp_path / "sr"
    directory.mkdir(mode=0o700)
    write_kek_file(directory / "kek.key", generate_kek())
    (directory / "strongroom.toml").write_text(
        'data_dir = "."\n'
        f'[database]\nurl = "{db_url}"\n'
        '[keys]\nkek_file = "kek.key"\nkek_env = ""\nkek_credential = ""\n'
        '[auth.argon2]\ntime_cost = 1\nmemory_kib = 8\nparallelism = 1\n')
    engine = make_engine(db_url)
    upgrade(engine)
    with transaction(engine) as conn:
        conn.execute(insert(Practice.__table__), [{"id": uuid.uuid4(), "name": "Test Practice", "settings": {}}])
    engine.dispose()
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    return directory


def run(data_dir, *args: str) -> tuple[int, str, str]:
    """Through main(), as the installed command runs: (exit code, stdout, stderr)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["--data-dir", str(data_dir), *args])
        except SystemExit as exc:
            code = exc.code or 0
    return code, out.getvalue(), err.getvalue()


def add(data_dir, username: str, role: str, *extra: str):
    return run(data_dir, "user", "add", username, "--role", role,
               "--password-file", str(data_dir.parent / "pw"), *extra)


def open_ctx(data_dir):
    return open_context(load_settings(data_dir / "strongroom.toml"))


def rows(data_dir, table, **where):
    ctx = open_ctx(data_dir)
    try:
        with transaction(ctx.engine, read_only=True) as conn:
            query = select(table).where(*(table.c[k] == v for k, v in where.items()))
            return [dict(r) for r in conn.execute(query).mappings()]
    finally:
        ctx.close()


def test_add_practitioner_then_login_works(data_dir):
    code, out, _ = add(data_dir, "alice", "PRACTITIONER", "--full-name", "Alice Doe")
    assert code == 0 and "created user 'alice' (PRACTITIONER)" in out
    assert "otpauth://" not in out
    ctx = open_ctx(data_dir)
    try:
        token, _ = auth.login(ctx.engine, ctx.keyring, ctx.settings, "alice", PASSWORD)
        assert auth.authenticate(ctx.engine, token)[0].username == "alice"
    finally:
        ctx.close()


def test_add_admin_prints_otpauth_uri_and_qr_and_totp_login_works(data_dir):
    code, out, _ = add(data_dir, "boss", "admin", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["user"]["role"] == "admin" and data["user"]["totp_enabled"] is True
    totp = pyotp.parse_uri(data["totp"]["uri"])
    assert totp.issuer == "Strongroom"
    code, human, _ = add(data_dir, "boss2", "operator")
    assert "otpauth://totp/Strongroom:boss2" in human and "█" in human
    ctx = open_ctx(data_dir)
    try:
        with pytest.raises(AuthError, match="TOTP code is required"):
            auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD)
        token, _ = auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD, totp.now())
        assert token
    finally:
        ctx.close()


def test_add_prompts_for_hidden_password_with_confirmation(data_dir):
    runner = CliRunner()
    result = runner.invoke(cli, ["--data-dir", str(data_dir), "user", "add", "carol", "--role", "STAFF"],
                           input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    assert rows(data_dir, User.__table__, username="carol")[0]["role"] == "STAFF"


def test_add_errors_map_to_exit_codes(data_dir):
    assert add(data_dir, "alice", "STAFF")[0] == 0
    code, _, err = add(data_dir, "alice", "STAFF")
    assert code == ConflictError.exit_code and "already exists" in err
    code, _, err = add(data_dir, "Bad Name", "STAFF")
    assert code == ValidationError.exit_code and "username" in err
    (data_dir.parent / "weak").write_text("short\n")
    code, _, err = run(data_dir, "user", "add", "dave", "--role", "STAFF",
                       "--password-file", str(data_dir.parent / "weak"))
    assert code == ValidationError.exit_code and "password" in err and "short" not in err
    code, _, err = add(data_dir, "erin", "ROOT")
    assert code == 2  # click's own usage error for a bad --role choice


def test_add_with_several_practices_needs_practice_id(data_dir):
    ctx = open_ctx(data_dir)
    second = uuid.uuid4()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Practice.__table__), [{"id": second, "name": "Second", "settings": {}}])
    ctx.close()
    code, _, err = add(data_dir, "alice", "STAFF")
    assert code == ValidationError.exit_code and "--practice-id" in err
    assert add(data_dir, "alice", "STAFF", "--practice-id", str(second))[0] == 0
    assert rows(data_dir, User.__table__, username="alice")[0]["practice_id"] == second


def test_list_json_and_table(data_dir):
    add(data_dir, "zed", "STAFF")
    add(data_dir, "amy", "auditor")
    code, out, _ = run(data_dir, "user", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [u["username"] for u in listed] == ["amy", "zed"]
    assert all("password_hash" not in u for u in listed)
    code, out, _ = run(data_dir, "user", "list")
    assert "USERNAME" in out and "auditor" in out


def test_lock_and_unlock(data_dir):
    add(data_dir, "alice", "STAFF")
    code, out, _ = run(data_dir, "user", "lock", "alice", "--minutes", "30", "--reason", "away")
    assert code == 0 and "locked 'alice' until" in out
    assert rows(data_dir, User.__table__, username="alice")[0]["locked_until"] > datetime.now(timezone.utc)
    ctx = open_ctx(data_dir)
    try:
        with pytest.raises(AuthError, match="invalid username or password"):   # as for an unknown name
            auth.login(ctx.engine, ctx.keyring, ctx.settings, "alice", PASSWORD)
    finally:
        ctx.close()
    assert run(data_dir, "user", "unlock", "alice")[0] == 0
    assert rows(data_dir, User.__table__, username="alice")[0]["locked_until"] is None
    types = [e["event_type"] for e in rows(data_dir, SecurityEvent.__table__)]
    assert "user_locked" in types and "user_unlocked" in types
    code, _, err = run(data_dir, "user", "lock", "ghost")
    assert code == NotFoundError.exit_code and "no user by that name" in err and "ghost" not in err


def test_grant_and_revoke_grant(data_dir):
    add(data_dir, "sam", "STAFF")
    code, out, _ = run(data_dir, "user", "grant", "sam", "phi:read", "--for", "8h", "--reason", "cover", "--json")
    assert code == 0
    granted = json.loads(out)
    assert granted["permission"] == "phi:read"
    stored = rows(data_dir, RoleGrant.__table__)
    assert len(stored) == 1 and stored[0]["granted_by"].startswith("local:")
    code, out, _ = run(data_dir, "user", "revoke-grant", granted["id"])
    assert code == 0 and "revoked grant" in out
    assert rows(data_dir, RoleGrant.__table__)[0]["revoked_at"] is not None
    code, _, err = run(data_dir, "user", "grant", "sam", "launch:missiles", "--for", "1h")
    assert code == ValidationError.exit_code and "unknown permission" in err
    code, _, err = run(data_dir, "user", "grant", "sam", "phi:read", "--for", "forever")
    assert code == ValidationError.exit_code and "duration" in err


def test_reset_2fa_prints_no_secret_and_the_owner_enrols_at_next_login(data_dir):
    _, first, _ = add(data_dir, "boss", "admin", "--json")
    code, out, _ = run(data_dir, "user", "reset-2fa", "boss")
    assert code == 0 and "otpauth" not in out and "secret:" not in out
    assert "next login" in out
    code, out, _ = run(data_dir, "user", "list", "--json")
    assert [u["totp_pending"] for u in json.loads(out) if u["username"] == "boss"] == [True]
    ctx = open_ctx(data_dir)
    try:
        with pytest.raises(EnrolmentRequired):        # the old code opens nothing; the owner enrols
            auth.login(ctx.engine, ctx.keyring, ctx.settings, "boss", PASSWORD,
                       pyotp.TOTP(json.loads(first)["totp"]["secret"]).now())
    finally:
        ctx.close()


def test_passwd_changes_password(data_dir):
    add(data_dir, "alice", "STAFF")
    (data_dir.parent / "new").write_text("an entirely new passphrase\n")
    code, out, _ = run(data_dir, "user", "passwd", "alice", "--password-file", str(data_dir.parent / "new"))
    assert code == 0 and "password changed" in out
    ctx = open_ctx(data_dir)
    try:
        with pytest.raises(AuthError):
            auth.login(ctx.engine, ctx.keyring, ctx.settings, "alice", PASSWORD)
        assert auth.login(ctx.engine, ctx.keyring, ctx.settings, "alice", "an entirely new passphrase")[0]
    finally:
        ctx.close()


# --- security profiles, consent, devices -------------------------------------------------

def test_profile_set_show_and_clear_through_the_cli(data_dir):
    add(data_dir, "alice", "PRACTITIONER")
    code, out, err = run(data_dir, "user", "profile", "set", "alice", "--idle-minutes", "10",
                         "--rate-limit", "exports=3", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["effective"]["session_idle_minutes"] == 10 and shown["own"]["rate_limits"] == {"exports": 3}
    code, out, _ = run(data_dir, "user", "profile", "show", "alice")
    assert code == 0 and "10 min   (own setting; the policy's is 30 min)" in out and "exports 3/h" in out
    code, out, _ = run(data_dir, "user", "profile", "set", "alice", "--clear", "idle-minutes", "--json")
    assert code == 0 and json.loads(out)["own"]["session_idle_minutes"] is None


def test_a_looser_profile_or_a_malformed_limit_is_refused_without_echoing_it(data_dir):
    add(data_dir, "alice", "PRACTITIONER")
    code, _, err = run(data_dir, "user", "profile", "set", "alice", "--max-sessions", "999")
    assert code == 2 and "profile.max_sessions" in err and "999" not in err
    code, _, err = run(data_dir, "user", "profile", "set", "alice", "--rate-limit", "<evil>")
    assert code == 2 and "CLASS=N" in err and "<evil>" not in err
    assert rows(data_dir, UserSecurityProfile.__table__) == []


def test_consent_and_devices_through_the_cli(data_dir):
    add(data_dir, "alice", "PRACTITIONER")
    code, out, err = run(data_dir, "user", "consent", "alice", "2026-1", "--json")
    assert code == 0, err
    assert json.loads(out)["hipaa_consent"]["version"] == "2026-1"
    code, out, _ = run(data_dir, "user", "devices", "alice")
    assert code == 0 and "no logins recorded" in out
    code, _, err = run(data_dir, "user", "devices", "nobody")
    assert code == 3 and "nobody" not in err
