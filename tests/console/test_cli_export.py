"""`strongroom export` and `strongroom exports list|show|tables` against a real daemon:
an export followed to success, an encrypted one with the password from a file, bad
arguments refused before anything starts, and the history and manifest shown."""
import csv
import io
import contextlib
import json
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import pyzipper

from strongroom.core import demo
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from tests.conftest import per_engine_per_module
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import DaemonProcess, make_data_dir


@contextlib.contextmanager
def _running(tmp_path, db_url):
    """A daemon over five demo clients; yields its data directory (`.proc`: the daemon)."""
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), demo.client_records(5))
    finally:
        ctx.close()
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    try:
        yield proc
    finally:
        assert proc.stop() == 0


@pytest.fixture
def running(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with _running(tmp_path, db_url) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        yield proc.data_dir


_one_running = per_engine_per_module("_one_running", _running, "`running`'s daemon, one per engine.")


@pytest.fixture
def refusing(_one_running, monkeypatch):
    """`running` shared by the refusals of one engine (per module and worker): none of
    them starts an export or saves a configuration, and each checks there is none."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(_one_running.data_dir.parent / "xdg"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(_one_running.runtime))
    return _one_running.data_dir


def test_export_wait_writes_the_files_and_history_shows_them(running, capsys):
    code, out, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--fields", "id,ssn,status",
                         "--format", "csv", "--since", "2000-01-01", "--wait", "--json")
    assert code == 0, err
    final = json.loads(out)
    assert final["status"] == "succeeded" and final["result"]["row_count"] == 5
    rows = list(csv.DictReader(io.StringIO((Path(final["result"]["location"]) / "clients.csv").read_text())))
    assert list(rows[0]) == ["id", "ssn", "status"] and all(r["ssn"].startswith("***-**-") for r in rows)

    code, out, err = run(capsys, "--data-dir", running, "exports", "list", "--json")
    assert code == 0, err
    page = json.loads(out)
    assert page["total"] == 1 and page["items"][0]["row_count"] == 5
    export_id = page["items"][0]["id"]
    code, out, _ = run(capsys, "--data-dir", running, "exports", "list")
    assert export_id in out and "succeeded" in out and "1 of 1" in out
    code, out, err = run(capsys, "--data-dir", running, "exports", "show", export_id)
    assert code == 0, err
    assert "manifest matches" in out and "clients.csv" in out


def test_encrypted_export_reads_the_password_from_a_file(running, capsys, tmp_path):
    secret = tmp_path / "zip-password"
    secret.write_text("a long zip password\n")
    code, out, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--format", "json",
                         "--masking", "full", "--encrypt", "--password-file", secret, "--wait")
    assert code == 0, err
    assert "5 rows (clients 5), json, AES-256 ZIP, full" in out
    location = Path(next(line.strip() for line in out.splitlines() if "/exports/" in line))
    with pyzipper.AESZipFile(location / "export.zip") as zf:
        zf.setpassword(b"a long zip password")
        rows = json.loads(zf.read("clients.json"))
    assert len(rows) == 5 and not rows[0]["ssn"].startswith("***")


@pytest.mark.parametrize("args, words", [
    (["--table", "clients"], "choose a --format"),
    (["--format", "csv"], "at least one --table"),
    (["--table", "clients", "--table", "therapy_sessions", "--fields", "id", "--format", "csv"], "TABLE=field"),
    (["--table", "clients", "--fields", "clients=nope", "--format", "csv"], "1 field name(s) not in table clients"),
    (["--table", "clients", "--format", "csv", "--until", "tomorrow"], "filter until"),
    (["--table", "clients", "--format", "csv", "--encrypt"], "--password-file"),
    (["--table", "clients", "--format", "csv", "--client-status", "SECRET"], "filter client_status has 1 unknown"),
    (["--table", "clients", "--format", "csv", "--session-status", "COMPLETED"], "applies to table therapy_sessions"),
    (["--table", "clients", "--format", "csv", "--range", "this_month", "--since", "2025-01-01"], "cannot be combined"),
    (["--table", "clients", "--format", "json", "--bom"], "bom applies to the csv format only"),
    (["--table", "clients", "--format", "csv", "--with-files"], "needs the client_files table"),
    (["--table", "client_files", "--format", "csv", "--masking", "full", "--with-files"],
     "go only into an encrypted ZIP"),
])
def test_bad_arguments_are_refused_and_start_nothing(refusing, capsys, args, words):
    code, _, err = run(capsys, "--data-dir", refusing, "export", *args)
    assert code == 2 and words in err and "SECRET" not in err
    code, out, _ = run(capsys, "--data-dir", refusing, "exports", "list", "--json")
    assert json.loads(out)["total"] == 0


def test_a_range_and_a_status_are_resolved_when_submitted_and_recorded_with_a_bom(running, capsys):
    code, out, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--fields", "id,status",
                         "--format", "csv", "--range", "last_30_days", "--client-status", "active,vip",
                         "--bom", "--wait", "--json")
    assert code == 0, err
    final = json.loads(out)
    assert final["status"] == "succeeded" and final["params"]["as_of"]     # the moment it was submitted
    data = (Path(final["result"]["location"]) / "clients.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,status\r\n")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert {r["status"] for r in rows} <= {"ACTIVE", "VIP"}
    manifest = json.loads((Path(final["result"]["location"]) / "manifest.json").read_text())
    filters = manifest["filters"]
    assert filters["range"] == "last_30_days" and filters["client_status"] == ["ACTIVE", "VIP"]
    since, until = datetime.fromisoformat(filters["since"]), datetime.fromisoformat(filters["until"])
    assert until - since == timedelta(days=30, microseconds=-1) and since.time() == time.min
    assert since <= datetime.fromisoformat(final["params"]["as_of"]) <= until


def test_tables_lists_fields_with_phi_marked(running, capsys):
    code, out, err = run(capsys, "--data-dir", running, "exports", "tables")
    assert code == 0, err
    assert "clients (dates: created_at)" in out and "ssn*" in out and "therapy_sessions (dates: starts_at)" in out


def test_save_as_keeps_the_request_and_configuration_runs_it(running, capsys):
    code, out, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--fields", "id,status",
                         "--format", "xml", "--save-as", "clients-xml")
    assert code == 0, err
    assert "saved export configuration clients-xml" in out
    code, out, _ = run(capsys, "--data-dir", running, "exports", "list", "--json")
    assert json.loads(out)["total"] == 0                                   # saved, not run
    code, out, _ = run(capsys, "--data-dir", running, "exports", "tables")
    assert "saved: clients-xml" in out
    code, out, err = run(capsys, "--data-dir", running, "export", "-c", "clients-xml", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["format"] == "xml"


@pytest.mark.parametrize("days, words", [("-1", "retention_days must be between 1 and 3650"),
                                         ("4000", "retention_days must be between 1 and 3650"),
                                         ("99999999999999999999", "retention_days must be between 1 and 3650")])
def test_a_bad_retention_days_is_refused_and_nothing_saved(refusing, capsys, days, words):
    code, _, err = run(capsys, "--data-dir", refusing, "export", "--table", "clients", "--format", "csv",
                       "--save-as", "kept", "--retention-days", days)
    assert code == 2 and words in err and days not in err
    code, out, _ = run(capsys, "--data-dir", refusing, "exports", "tables", "--json")
    assert json.loads(out)["configurations"] == []


def test_retention_days_without_save_as_is_refused(running, capsys):
    code, _, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--format", "csv",
                       "--retention-days", "3")
    assert code == 2 and "--save-as" in err


def test_expire_deletes_exports_past_their_configurations_retention(running, capsys):
    code, _, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--format", "csv",
                       "--save-as", "weekly", "--retention-days", "7")
    assert code == 0, err
    code, out, err = run(capsys, "--data-dir", running, "export", "-c", "weekly", "--wait", "--json")
    assert code == 0, err
    old = json.loads(out)["result"]
    code, out, err = run(capsys, "--data-dir", running, "export", "-c", "weekly", "--wait", "--json")
    fresh = json.loads(out)["result"]
    ctx = open_context(load_settings(running / "strongroom.toml"))
    try:
        from sqlalchemy import update
        from strongroom.core.db.models import Export
        from strongroom.core.db.types import utcnow
        import uuid
        table = Export.__table__
        with transaction(ctx.engine) as conn:
            conn.execute(update(table).where(table.c.id == uuid.UUID(old["export_id"]))
                         .values(finished_at=utcnow() - timedelta(days=8)))
    finally:
        ctx.close()
    code, out, err = run(capsys, "--data-dir", running, "exports", "expire", "--dry-run")
    assert code == 0, err
    assert "past their retention: would delete 1" in out and old["export_id"] in out and "would_delete" in out
    assert Path(old["location"]).is_dir()
    code, out, err = run(capsys, "--data-dir", running, "exports", "expire", "--wait")
    assert code == 0, err
    assert "export_retention run" in out and "succeeded" in out
    assert not Path(old["location"]).exists() and Path(fresh["location"]).is_dir()
    code, out, _ = run(capsys, "--data-dir", running, "exports", "list", "--status", "expired", "--json")
    assert [e["id"] for e in json.loads(out)["items"]] == [old["export_id"]]


def test_a_scheduled_configuration_is_saved_listed_and_changed(running, capsys):
    code, out, err = run(capsys, "--data-dir", running, "export", "--table", "clients", "--format", "csv",
                         "--encrypt", "--save-as", "nightly", "--schedule", "30 1 * * *",
                         "--password-credential", "strongroom-export-zip", "--retention-days", "14")
    assert code == 0, err
    code, out, err = run(capsys, "--data-dir", running, "exports", "configurations")
    assert code == 0, err
    assert "nightly" in out and "30 1 * * * (next " in out and "credential strongroom-export-zip" in out
    assert "kept 14 days" in out
    code, out, err = run(capsys, "--data-dir", running, "exports", "configure", "nightly", "--schedule", "@weekly")
    assert code == 0, err
    assert "runs @weekly" in out
    code, out, err = run(capsys, "--data-dir", running, "exports", "configure", "nightly", "--schedule", "7 7 7")
    assert code == 2 and "schedule is not a crontab(5) expression" in err and "7 7 7" not in err
    code, out, _ = run(capsys, "--data-dir", running, "exports", "configurations", "--json")
    [item] = json.loads(out)["items"]
    assert item["schedule"] == "@weekly" and item["retention_days"] == 14
    # Its scheduled runs export as whoever saved it.
    assert item["created_by"].startswith("local:")
    code, out, _ = run(capsys, "--data-dir", running, "exports", "configurations")
    assert f"saved by {item['created_by']}" in out


@pytest.mark.parametrize("args, words", [
    (["--schedule", "@daily"], "needs password_credential"),
    (["--schedule", "61 * * * *"], "schedule is not a crontab(5) expression"),
])
def test_a_scheduled_encrypted_configuration_without_a_credential_is_refused(refusing, capsys, args, words):
    code, _, err = run(capsys, "--data-dir", refusing, "export", "--table", "clients", "--format", "csv",
                       "--encrypt", "--save-as", "nightly", *args)
    assert code == 2 and words in err
    code, out, _ = run(capsys, "--data-dir", refusing, "exports", "configurations", "--json")
    assert json.loads(out)["items"] == []
