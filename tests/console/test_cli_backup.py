"""`strongroom backup show|forget|requests|approve`: the manifest summary offline, and
four-eyes forgetting through a real daemon (the requester cannot approve)."""
import json
import uuid
from datetime import timedelta

import pytest

from strongroom.core.auth.rbac import grant
from strongroom.core.auth.users import create_user
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.backup import snapshots
from strongroom.core.jobs import backup
from strongroom.core.repository.practices import only_practice
from strongroom.core.storage import open_target
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import PASSWORD, DaemonProcess, make_data_dir

FOUR_EYES = "\n[backup]\nrequire_approval = true\n"


def _backed_up(tmp_path, db_url, extra=""):
    data_dir = make_data_dir(tmp_path, db_url, extra)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            practice = only_practice(conn)
            for name in ("filer", "approver"):
                user, _ = create_user(conn, ctx.keyring, ctx.settings, practice, name, PASSWORD, Role.MANAGER)
                grant(conn, user, "job:*:run", granted_by="test", duration=timedelta(days=1))
        from strongroom.core.repository.clients import insert_clients
        from strongroom.core.demo import client_records
        from strongroom.core.principal import SYSTEM
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(5))
        snaps = [backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"] for _ in range(3)]
    finally:
        ctx.close()
    return data_dir, snaps


def _snapshot_ids(data_dir):
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        repo = open_repository(open_target(snapshots.target_url(ctx)), ctx.keyring)
        return [str(i) for i in repo.list_snapshots()]
    finally:
        ctx.close()


def test_show_summarises_the_manifest_offline(tmp_path, db_url, capsys):
    data_dir, snaps = _backed_up(tmp_path, db_url)
    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "show", snaps[0], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["snapshot_id"] == snaps[0] and shown["kind"] == "full" and shown["parent_id"] is None
    assert shown["proof"] == "written" and shown["chain_length"] == 1
    clients = next(t for t in shown["tables"] if t["name"] == "clients")
    assert clients["rows"] == 5 and clients["plain_bytes"] > 0
    assert shown["totals"]["rows"] == sum(t["rows"] for t in shown["tables"])
    code, out, _ = run(capsys, "--data-dir", data_dir, "backup", "show", snaps[0])
    assert code == 0 and "full base" in out and "clients" in out and "proof     written" in out
    # Binary units, as every other view gives them (the console's tabs, `backup list`).
    assert f"{shown['totals']['plain_bytes'] / 2**20:.1f} MiB plain" in out and " MB" not in out
    code, _, err = run(capsys, "--data-dir", data_dir, "backup", "show", str(uuid.uuid4()))
    assert code == 3 and "is not in" in err
    code, _, err = run(capsys, "--data-dir", data_dir, "backup", "show", snaps[0], "--configuration", "nope")
    assert code == 3 and "no backup configuration by that name" in err


@pytest.fixture
def four_eyes_daemon(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir, snaps = _backed_up(tmp_path, db_url, FOUR_EYES)
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
    yield data_dir, snaps, proc
    assert proc.stop() == 0


def test_forget_in_four_eyes_mode_needs_two_named_people(four_eyes_daemon, capsys, tmp_path):
    data_dir, snaps, proc = four_eyes_daemon
    dd = str(data_dir)
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    code, _, err = run(capsys, "--data-dir", dd, "backup", "forget", snaps[0])
    assert code == 2 and "--yes" in err  # no terminal to confirm in
    # The local operator is nobody in particular: it may not be one of the four eyes.
    code, _, err = run(capsys, "--data-dir", dd, "backup", "forget", snaps[0], "--yes")
    assert code == 8 and "named, logged-in person" in err
    assert json.loads(run(capsys, "--data-dir", dd, "backup", "requests", "--json")[1]) == []

    assert run(capsys, "--data-dir", dd, "login", "-u", "filer", "--password-file", password_file)[0] == 0
    code, out, err = run(capsys, "--data-dir", dd, "backup", "forget", snaps[0], "--yes", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["pending_request"]["new"] is True
    assert _snapshot_ids(data_dir) == snaps  # nothing deleted yet

    code, out, _ = run(capsys, "--data-dir", dd, "backup", "requests", "--json")
    (request,) = json.loads(out)
    assert request["kind"] == "forget" and request["snapshot_ids"] == [snaps[0]]
    assert request["requested_by"] == "user:filer" and request["configuration"] == "default"

    code, _, err = run(capsys, "--data-dir", dd, "backup", "approve", request["id"])
    assert code == 8 and "different person" in err
    assert run(capsys, "--data-dir", dd, "logout")[0] == 0
    code, _, err = run(capsys, "--data-dir", dd, "backup", "approve", request["id"])
    assert code == 8 and "named, logged-in person" in err
    assert _snapshot_ids(data_dir) == snaps

    assert run(capsys, "--data-dir", dd, "login", "-u", "approver", "--password-file", password_file)[0] == 0
    code, out, err = run(capsys, "--data-dir", dd, "backup", "approve", request["id"], "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["forgotten"] == [snaps[0]]
    assert _snapshot_ids(data_dir) == snaps[1:]
    code, out, _ = run(capsys, "--data-dir", dd, "backup", "requests", "--all", "--json")
    assert [(r["status"], r["approved_by"]) for r in json.loads(out)] == [("executed", "user:approver")]
    assert run(capsys, "--data-dir", dd, "backup", "requests")[1].strip() == "no pending requests"


def test_forget_refuses_a_link_others_need(tmp_path, db_url, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir, snaps = _backed_up(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        backup.run(ctx, {}, lambda *a: None)  # an incremental on snaps[2]
    finally:
        ctx.close()
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
    try:
        code, _, err = run(capsys, "--data-dir", str(data_dir), "backup", "forget", snaps[2], "--yes")
        assert code == 4 and "restore through" in err
        code, out, err = run(capsys, "--data-dir", str(data_dir), "backup", "forget", snaps[0], "--yes", "--wait")
        assert code == 0, err
        assert snaps[0] not in _snapshot_ids(data_dir)
    finally:
        assert proc.stop() == 0
