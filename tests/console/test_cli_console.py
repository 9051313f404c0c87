"""`strongroom console --demo-admin`: a real login with the credentials `init --demo`
printed, reusing a live session so a second start does not replay a TOTP code."""
from __future__ import annotations

import pytest
from strongroom.console.cli import CliState
from strongroom.console.cli.transport import RemoteError
from strongroom.console.cli.console_cmd import DEMO_CREDENTIALS, demo_admin_token
from strongroom.core.auth.users import create_user
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.errors import ConfigError
from strongroom.core.repository.practices import only_practice

from tests.daemon.conftest import PASSWORD, DaemonProcess, make_data_dir


def _add_demo_admin(data_dir) -> None:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "demo-admin",
                                       PASSWORD, Role.OP_ADMIN, actor="test")
    finally:
        ctx.close()
    (data_dir / DEMO_CREDENTIALS).write_text(
        f"username=demo-admin\npassword={PASSWORD}\ntotp_secret={enrolment.secret}\n")


def test_without_a_demo_credentials_file_it_refuses_naming_the_file(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    with pytest.raises(ConfigError, match=DEMO_CREDENTIALS):
        demo_admin_token(CliState(None, str(data_dir)), str(tmp_path / "run" / "control.sock"))


def test_logs_in_as_the_demo_admin_and_reuses_the_live_session(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    data_dir = make_data_dir(tmp_path, db_url)
    _add_demo_admin(data_dir)
    daemon = DaemonProcess(data_dir, tmp_path)
    try:
        daemon.wait_ready()
        state = CliState(None, str(data_dir))
        socket = str(daemon.runtime / "control.sock")
        token = demo_admin_token(state, socket)
        assert daemon.call("whoami", token=token)["actor"] == "user:demo-admin"
        # Within the same 30 s TOTP step a second login would be a replay: reuse instead.
        assert demo_admin_token(state, socket) == token
        # A session that has ended is not reused: it logs in afresh, which the daemon
        # refuses as a replayed code within the same 30 s step and accepts after it.
        daemon.call("auth.logout", token=token)
        try:
            assert demo_admin_token(state, socket) != token
        except RemoteError as err:
            assert "already used" in str(err)
    finally:
        assert daemon.stop() == 0, daemon.log()
