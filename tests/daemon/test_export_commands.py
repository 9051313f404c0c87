"""The export commands over the real control socket: the catalogue for the console's
form, a run to success with its history and manifest, the ZIP password sealed in the
run's parameters, refusals answered at once with nothing queued, and the rows metric."""
from __future__ import annotations

import contextlib
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import pyzipper
from prometheus_client import generate_latest
from sqlalchemy import update

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import ExportConfiguration, JobStatus, Role
from strongroom.core.db.types import utcnow
from strongroom.core.jobs import export as export_job
from strongroom.core.jobs import runs
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.daemon.metrics import Metrics
from tests.conftest import per_engine_per_module
from tests.daemon.conftest import PASSWORD, DaemonProcess, error_of, make_data_dir, running_daemon, wait_run

ZIP_PASSWORD = "zip password 1234"


@contextlib.contextmanager
def _export_daemon(tmp_path, db_url):
    """A daemon over six demo clients, with a manager and a front-desk user besides the
    two test users."""
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            practice = only_practice(conn)
            insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(6))
            create_user(conn, ctx.keyring, ctx.settings, practice, "manager1", PASSWORD, Role.MANAGER, actor="test")
            create_user(conn, ctx.keyring, ctx.settings, practice, "frontdesk", PASSWORD, Role.STAFF, actor="test")
    finally:
        ctx.close()
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


@pytest.fixture
def export_daemon(tmp_path, db_url):
    with _export_daemon(tmp_path, db_url) as proc:
        yield proc


def login(daemon, username: str) -> str:
    return daemon.call("auth.login", {"username": username, "password": PASSWORD}, token=None)["token"]


@contextlib.contextmanager
def _refusing_daemon(tmp_path, db_url):
    """`export_daemon` with the front desk and the auditor logged in once (`.tokens`, by
    username), so that the tests sharing it log nobody in themselves."""
    with _export_daemon(tmp_path, db_url) as proc:
        proc.tokens = {who: login(proc, who) for who in ("frontdesk", "auditor1")}
        yield proc


shared_export_daemon = per_engine_per_module(
    "shared_export_daemon", _refusing_daemon,
    "`export_daemon` shared by the reads and refusals of one engine: none runs an export or saves "
    "a configuration, and the refusals check that nothing was queued.")


def test_catalogue_lists_tables_fields_formats_and_profiles(shared_export_daemon):
    answer = shared_export_daemon.call("export.table.list", token=shared_export_daemon.tokens["frontdesk"])
    tables = {t["table"]: t for t in answer["tables"]}
    assert set(tables) == {"clients", "therapy_sessions", "client_files", "staff", "services"}
    assert tables["staff"]["phi"] == [] and "working_hours" in tables["staff"]["fields"]
    assert "ssn" in tables["clients"]["phi"] and "ssn_enc" not in tables["clients"]["fields"]
    assert tables["therapy_sessions"]["date_field"] == "starts_at"
    assert answer["formats"] == ["csv", "ndjson", "json", "xml", "pdf"]
    assert answer["masking_profiles"] == ["masked", "full"] and answer["configurations"] == []
    # the console's form offers these from here rather than keeping a copy of its own
    assert answer["ranges"] == ["last_30_days", "last_90_days", "this_month", "last_quarter"]
    statuses = {s["filter"]: (s["table"], s["values"]) for s in answer["status_filters"]}
    assert statuses == {"client_status": ("clients", ["ACTIVE", "VIP", "INACTIVE"]),
                        "session_status": ("therapy_sessions", ["SCHEDULED", "CONFIRMED", "CANCELLED", "COMPLETED"]),
                        "payment_status": ("therapy_sessions", ["PENDING", "PAID", "FAILED", "REFUNDED"])}


def test_an_export_runs_to_success_and_shows_in_history_with_its_manifest(export_daemon):
    token = login(export_daemon, "manager1")
    run = export_daemon.call("export.run", {"tables": ["clients"], "fields": {"clients": ["id", "ssn"]},
                                             "format": "csv", "filters": {"since": "2000-01-01"}}, token=token)
    assert run["job_kind"] == "export" and run["requested_by"] == "user:manager1"
    done = wait_run(export_daemon, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["row_count"] == 6 and done["result"]["masking_profile"] == "masked"
    history = export_daemon.call("export.list", token=token)
    assert history["total"] == 1 and history["running"] == []
    (item,) = history["items"]
    assert (item["status"], item["row_count"], item["format"]) == ("succeeded", 6, "csv")
    shown = export_daemon.call("export.show", {"export_id": item["id"]}, token=token)
    assert shown["manifest_ok"] is True and shown["manifest"]["tables"]["clients"]["rows"] == 6
    assert shown["manifest"]["requested_by"] == "user:manager1"
    entry = export_daemon.call("audit.tail", {"limit": 5, "table_name": "exports"})[0]
    assert (entry["action"], entry["actor"]) == ("EXPORT", "user:manager1")


def test_history_pages_newest_first(export_daemon):
    ids = []
    for fmt in ("json", "xml", "pdf"):
        run = export_daemon.call("export.run", {"tables": "clients", "format": fmt})
        assert wait_run(export_daemon, run["id"])["status"] == "succeeded"
        ids.append(run["id"])
    page = export_daemon.call("export.list", {"limit": 2, "offset": 1})
    assert page["total"] == 3 and [i["format"] for i in page["items"]] == ["xml", "json"]
    assert export_daemon.call("export.list", {"status": "failed"})["total"] == 0


def test_the_zip_password_is_sealed_in_the_runs_parameters(export_daemon):
    run = export_daemon.call("export.run", {"tables": ["clients"], "format": "ndjson", "encrypt": True,
                                             "password": ZIP_PASSWORD, "masking": "full"})
    done = wait_run(export_daemon, run["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["files"] == ["clients.ndjson", "export.zip"] and done["result"]["encrypted"] is True
    assert done["params"]["password_sealed"] and "password" not in done["params"]
    assert ZIP_PASSWORD not in json.dumps(done) and ZIP_PASSWORD not in export_daemon.log()


@pytest.mark.parametrize("args, who, code, words", [
    ({"tables": ["clients"], "fields": {"clients": ["ssn_enc"]}, "format": "csv"}, "local", "bad_request",
     "1 field name(s) not in table clients"),
    ({"tables": ["clients"], "format": "csv", "filters": {"until": "soon"}}, "local", "bad_request", "filter until"),
    ({"tables": ["clients"], "format": "csv", "encrypt": True}, "local", "bad_request", "needs a password"),
    ({"tables": ["clients"], "format": "csv", "encrypt": True, "password": "short"}, "local", "bad_request", "at least 8"),
    ({"tables": ["clients"], "format": "csv", "unexpected": 1}, "local", "bad_request", "not a known parameter"),
    ({"configuration": "nightly"}, "local", "not_found", "none active by that name"),
    ({"tables": ["clients"], "format": "csv"}, "frontdesk", "forbidden", "job:export:run"),
    ({"tables": ["clients"], "format": "csv"}, "auditor1", "forbidden", "job:export:run"),
])
def test_refusals_are_immediate_and_queue_nothing(shared_export_daemon, args, who, code, words):
    d = shared_export_daemon
    token = "local" if who == "local" else d.tokens[who]
    err = error_of(d, "export.run", args, token=token)
    assert err.code == code and words in err.message
    assert d.call("job.list", {"kind": "export"}) == []
    assert d.call("export.list")["total"] == 0


def test_full_profile_without_phi_read_is_refused_before_queuing(export_daemon):
    # A grant of the job's permission alone does not unmask: phi:read is checked too.
    export_daemon.call("user.grant.add", {"username": "frontdesk", "permission": "job:export:run", "duration": "1h",
                                      "reason": "test"})
    token = login(export_daemon, "frontdesk")
    err = error_of(export_daemon, "export.run", {"tables": ["clients"], "format": "csv", "masking": "full"}, token)
    assert err.code == "forbidden" and "phi:read" in err.message
    run = export_daemon.call("export.run", {"tables": ["clients"], "format": "csv"}, token=token)
    assert wait_run(export_daemon, run["id"])["result"]["masking_profile"] == "masked"


def test_unknown_export_is_not_found(shared_export_daemon):
    err = error_of(shared_export_daemon, "export.show", {"export_id": "00000000-0000-0000-0000-000000000000"})
    assert err.code == "not_found"


def test_rows_exported_are_counted_by_format(ctx):
    metrics = Metrics(ctx.engine, {}, lambda: ctx.settings)
    run = runs.queue(ctx.engine, "export", trigger="manual")
    metrics.job_finished(runs.finish(ctx.engine, run.id, JobStatus.SUCCEEDED,
                                     result={"format": "csv", "row_count": 7}))
    failed = runs.queue(ctx.engine, "export", trigger="manual")
    metrics.job_finished(runs.finish(ctx.engine, failed.id, JobStatus.FAILED, error="x"))
    text = generate_latest(metrics.registry).decode()
    assert 'strongroom_export_rows_total{format="csv"} 7.0' in text


def test_a_saved_configuration_is_listed_and_runs_by_name(export_daemon):
    token = login(export_daemon, "manager1")
    saved = export_daemon.call("export.configuration.create", {"name": "weekly", "tables": ["clients"], "format": "xml",
                                                "fields": {"clients": ["id", "email"]}, "encrypt": True}, token=token)
    assert saved["fields"] == ["clients.id", "clients.email"] and saved["encryption_enabled"] is True
    assert export_daemon.call("export.table.list")["configurations"] == [
        {"name": "weekly", "format": "xml", "masking_profile": "masked", "encryption_enabled": True,
         "schedule": None}]
    err = error_of(export_daemon, "export.configuration.create", {"name": "weekly", "tables": "clients", "format": "csv"}, token)
    assert err.code == "conflict"
    err = error_of(export_daemon, "export.run", {"configuration": "weekly"}, token)   # its password, each run
    assert err.code == "bad_request" and "needs a password" in err.message
    run = export_daemon.call("export.run", {"configuration": "weekly", "password": ZIP_PASSWORD}, token=token)
    done = wait_run(export_daemon, run["id"])
    assert done["status"] == "succeeded" and done["result"]["format"] == "xml" and done["result"]["encrypted"]


def _scheduled_data_dir(tmp_path, db_url, *, missed_for: timedelta):
    """A data directory with an encrypted hourly configuration whose run was due
    `missed_for` ago (as if the daemon had been down that long)."""
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), demo.client_records(3))
        export_job.save_configuration(ctx, "hourly", {"tables": ["clients"], "format": "csv", "encrypt": True,
                                                      "schedule": "@hourly", "password_credential": "export-zip"},
                                      SYSTEM)
        table = ExportConfiguration.__table__
        with transaction(ctx.engine) as conn:
            conn.execute(update(table).values(next_export_at=utcnow() - missed_for))
    finally:
        ctx.close()
    return data_dir


def _export_runs(data_dir) -> list[dict]:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        return [r.as_dict() for r in runs.recent(ctx.engine, job_kind="export")]
    finally:
        ctx.close()


def _wait_for_scheduled_runs(data_dir, count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = [r for r in _export_runs(data_dir) if r["trigger"] == "schedule"]
        if len(items) >= count and all(r["status"] not in ("queued", "running") for r in items):
            return items
        time.sleep(0.2)
    raise AssertionError("no scheduled export run finished")


def test_a_scheduled_export_missed_while_down_runs_once_at_start_with_the_credential(tmp_path, db_url):
    data_dir = _scheduled_data_dir(tmp_path, db_url, missed_for=timedelta(days=2))
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "export-zip").write_text(ZIP_PASSWORD + "\n")
    proc = DaemonProcess(data_dir, tmp_path, env={"CREDENTIALS_DIRECTORY": str(credentials)})
    try:
        proc.wait_ready()
        [run] = _wait_for_scheduled_runs(data_dir, 1)
        assert run["status"] == "succeeded", run.get("error")
        assert run["params"]["configuration"] == "hourly" and run["params"]["scheduled"] is True
        [archive] = Path(run["result"]["location"]).glob("*.zip")
        with pyzipper.AESZipFile(archive) as z:
            z.setpassword(ZIP_PASSWORD.encode())
            assert z.read("clients.csv").count(b"\n") == 4
        [listed] = proc.call("export.configuration.list")["items"]
        assert datetime.fromisoformat(listed["next_export_at"]) > datetime.now(timezone.utc)
        time.sleep(1)    # 48 missed hours were one run, and nothing more follows
        assert len(_wait_for_scheduled_runs(data_dir, 1)) == 1
    finally:
        assert proc.stop() == 0, proc.log()
    # After a restart the next time comes from the database: nothing runs again.
    with running_daemon(data_dir, tmp_path, name="d2") as again:
        time.sleep(1)
        assert again.call("export.list")["total"] == 1 and len(_export_runs(data_dir)) == 1


def test_a_scheduled_export_without_its_credential_fails_audited_and_writes_nothing(tmp_path, db_url):
    data_dir = _scheduled_data_dir(tmp_path, db_url, missed_for=timedelta(minutes=1))
    with running_daemon(data_dir, tmp_path) as proc:
        [run] = _wait_for_scheduled_runs(data_dir, 1)
        assert run["status"] == "failed" and "credential export-zip" in run["error"]
        assert proc.call("export.list")["total"] == 0
        entries = proc.call("audit.tail", {"limit": 20, "action": "EXPORT"})
        assert any(e["outcome"] == "failed" and "credential export-zip" in json.dumps(e["details"])
                   for e in entries)
    exports_dir = data_dir / "exports"
    assert not exports_dir.exists() or list(exports_dir.iterdir()) == []


def test_configure_sets_and_clears_a_schedule_and_refuses_bad_input(export_daemon):
    token = login(export_daemon, "manager1")
    export_daemon.call("export.configuration.create", {"name": "weekly", "tables": ["clients"], "format": "csv",
                                        "schedule": "0 6 * * 1", "retention_days": 14}, token=token)
    [item] = export_daemon.call("export.configuration.list")["items"]
    assert (item["schedule"], item["retention_days"]) == ("0 6 * * 1", 14) and item["next_export_at"]
    for args, words in (({"schedule": "0 25 * * *"}, "schedule"), ({"retention_days": -1}, "retention_days"),
                        ({"retention_days": 99999}, "retention_days"),
                        ({"password_credential": "zip"}, "encrypted configuration only")):
        err = error_of(export_daemon, "export.configuration.set", {"name": "weekly", **args}, token)
        assert err.code == "bad_request" and words in err.message
        assert export_daemon.call("export.configuration.list")["items"] == [item]
    err = error_of(export_daemon, "export.configuration.create", {"name": "bad", "tables": ["clients"], "format": "csv",
                                                   "schedule": "every day"}, token)
    assert err.code == "bad_request" and "schedule" in err.message and "every day" not in err.message
    cleared = export_daemon.call("export.configuration.set", {"name": "weekly", "schedule": ""}, token=token)
    assert cleared["schedule"] is None and cleared["next_export_at"] is None
    assert error_of(export_daemon, "export.configuration.set", {"name": "nope", "schedule": "@daily"}, token).code == \
        "not_found"
