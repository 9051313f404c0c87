"""strongroomd under systemd's rules: READY, STATUS, WATCHDOG, SIGTERM, SIGHUP; jobs,
crashes, missed schedules, notifications, metrics and leader election."""
import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, update

from strongroom.console.client import ClientError
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, JobRun, JobStatus
from strongroom.core.db.types import utcnow
from strongroom.core.demo import client_records
from strongroom.core.ids import new_id
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from tests.daemon.conftest import DaemonProcess, Receiver, make_data_dir, scrape_metrics


def _context(data_dir):
    return open_context(load_settings(data_dir / "strongroom.toml"))


def _run_and_wait(daemon, kind: str, timeout: float = 60.0) -> dict:
    run = daemon.call("job.run", {"kind": kind})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = daemon.call("job.get", {"run_id": run["id"]})
        if current["status"] not in ("queued", "running"):
            return current
        time.sleep(0.2)
    raise AssertionError(f"{kind} run did not finish in {timeout}s")


def test_ready_status_and_watchdog_are_sent(daemon):
    ready = daemon.notify.wait_for("READY=1")
    assert "STATUS=serving on" in ready and "MAINPID=" in ready
    daemon.notify.wait_for("WATCHDOG=1", timeout=5)
    daemon.notify.wait_for("STATUS=leader", timeout=10)
    assert daemon.call("status")["stopping"] is False     # True only once SIGTERM came (draining)


def test_sigterm_stops_cleanly_with_stopping_message(data_dir, tmp_path):
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0
    assert any("STOPPING=1" in m for m in proc.notify.drain())
    assert not (proc.runtime / "control.sock").exists()
    assert not (proc.runtime / "operator.token").exists()
    proc.stop()


def test_sigterm_tells_subscribers_the_daemon_is_stopping_before_it_goes(daemon):
    async def watch():
        client = daemon.client()
        try:
            events = client.subscribe("daemon.")
            await asyncio.sleep(0.2)           # the subscription reaches the publisher
            daemon.proc.send_signal(signal.SIGTERM)
            return await asyncio.wait_for(events.recv(), 10)
        finally:
            client.close()

    topic, data = asyncio.run(watch())
    assert topic == "daemon.stopping"
    assert data == {"grace_seconds": load_settings(daemon.data_dir / "strongroom.toml").daemon.shutdown_grace_seconds}
    assert daemon.proc.wait(30) == 0


def test_bad_config_exits_2_with_the_key_named(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    with open(data_dir / "strongroom.toml", "a") as config:
        config.write('\n[daemon]\nmax_frame_bytes = "huge"\n')
    out = subprocess.run([sys.executable, "-m", "strongroom.daemon.main", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "daemon.max_frame_bytes" in out.stderr and "Traceback" not in out.stderr


def test_status_says_stopping_while_a_job_drains_after_sigterm(tmp_path, db_url):
    """A daemon told to stop still answers while its running jobs reach a safe point, and
    says it is stopping (the console keeps its banner up meanwhile). The backup is held
    mid-run for certain: its one file's manifest is a FIFO that this test opens."""
    import os

    from sqlalchemy import select

    from strongroom.core.db.models import ClientFile
    from strongroom.core.files.repository import add_file
    from strongroom.core.files.store import open_files_target
    from strongroom.core.principal import Principal
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = _context(data_dir)
    try:
        with transaction(ctx.engine) as conn:
            created: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(1), created=created)
            add_file(conn, ctx.keyring, Principal("user:tester", frozenset({"*"})), open_files_target(ctx.settings),
                     ctx.settings.files, created[0], name="scan.pdf", content_type="application/pdf", size=5,
                     content=iter([b"%PDF-"]))
            key = conn.execute(select(ClientFile.storage_key)).scalar_one()
        manifest = open_files_target(ctx.settings).root / key
    finally:
        ctx.close()
    manifest.unlink()
    os.mkfifo(manifest)
    proc = DaemonProcess(data_dir, tmp_path)
    writer = None
    try:
        proc.wait_ready()
        assert proc.call("status")["stopping"] is False
        proc.call("job.run", {"kind": "backup"})
        deadline = time.monotonic() + 30
        while writer is None:           # the backup has the FIFO open: it is held there
            try:
                writer = os.open(manifest, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline, proc.log()
                time.sleep(0.05)
        proc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not (status := proc.call("status"))["stopping"]:     # once the loop has taken the signal
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.02)
        assert [j["kind"] for j in status["running_jobs"]] == ["backup"]     # still answering, draining
    finally:
        if writer is not None:
            os.close(writer)            # the backup reads nothing, counts the file missing, stops
    assert proc.proc.wait(60) == 0
    proc.stop()


@pytest.mark.parametrize("revision, words", [
    ("0019", "database schema is at 0019, this daemon needs 0021: run `strongroom db upgrade`"),
    (None, "database schema is at nothing, this daemon needs 0021"),
])
def test_a_database_at_another_schema_revision_is_refused_at_start(data_dir, tmp_path, revision, words):
    from sqlalchemy import text

    from tests.daemon.conftest import data_transaction
    with data_transaction(data_dir) as (_, conn):
        conn.execute(text("DELETE FROM alembic_version"))
        if revision is not None:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:r)"), {"r": revision})
    proc = DaemonProcess(data_dir, tmp_path)
    assert proc.proc.wait(30) == 2
    log = proc.log()
    proc.stop()
    assert f"strongroomd: error: {words}" in log


def test_sighup_applies_a_good_config_and_keeps_the_old_on_a_bad_one(daemon, data_dir):
    config = data_dir / "strongroom.toml"
    original = config.read_text()
    config.write_text(original + '\n[schedules]\nintegrity = "15 4 * * *"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "integrity" not in daemon.call("status")["next_runs"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon.call("status")["next_runs"]["integrity"].startswith(tuple("0123456789"))
    assert daemon.call("status")["reloads"] == 1
    config.write_text(original + '\n[schedules]\nintegrity = "whenever"\n')
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in daemon.log():
        assert time.monotonic() < deadline, "the bad config was neither refused nor applied"
        time.sleep(0.1)
    status = daemon.call("status")
    assert status["reloads"] == 1 and "integrity" in status["next_runs"]
    assert "reload refused" in daemon.log()
    assert daemon.proc.poll() is None


def test_manual_job_runs_publishes_progress_and_shows_in_metrics(daemon):
    async def watch():
        client = daemon.client()
        events = client.subscribe("job.", "integrity")
        await asyncio.sleep(0.1)
        run = await client.call("job.run", {"kind": "integrity"})
        seen, checks = [], {}
        while True:
            topic, data = await asyncio.wait_for(events.recv(), 20)
            if topic == "integrity":
                checks[data["check"]] = data
                continue
            seen.append(data)
            if data.get("status") in ("succeeded", "failed"):
                break
        # The run's end and its checks' events leave on one socket: the checks follow.
        deadline = time.monotonic() + 5
        while "unaudited changes" not in checks and time.monotonic() < deadline:
            topic, data = await asyncio.wait_for(events.recv(), 5)
            if topic == "integrity":
                checks[data["check"]] = data
        client.close()
        return run, seen, checks
    run, seen, checks = asyncio.run(watch())
    assert seen[-1]["run_id"] == run["id"] and seen[-1]["status"] == "succeeded"
    # Each check as its own event: name, status and verdict, never its evidence.
    assert checks["audit chain"]["status"] == "ok" and checks["audit chain"]["run_id"] == run["id"]
    assert checks["unaudited changes"]["status"] == "warn"       # no backup yet: nothing to compare
    assert all(set(c) == {"run_id", "check", "status", "expected", "actual"} for c in checks.values())
    final = daemon.call("job.get", {"run_id": run["id"]})
    assert final["status"] == "succeeded" and final["result"]["failed"] == []
    assert daemon.call("job.list", {"kind": "integrity"})[0]["id"] == run["id"]
    # Every progress event names the one unit its counts are in, and the run's record
    # keeps its last count (progress reaches the row only every half second).
    assert {e["unit"] for e in seen} == {"checks"}
    assert (final["progress_done"], final["progress_total"], final["progress_unit"]) == (9, 9, "checks")
    metrics = scrape_metrics(daemon)
    assert 'strongroom_job_runs_total{kind="integrity",status="succeeded"} 1.0' in metrics
    assert "strongroom_job_last_success_timestamp_seconds{kind=\"integrity\"}" in metrics
    assert "strongroom_up 1.0" in metrics and "strongroom_leader 1.0" in metrics
    assert "strongroom_compliance_score " in metrics and "strongroom_compliance_threshold 80.0" in metrics
    assert 'strongroom_backup_snapshots{proof="verified"} 0.0' in metrics
    # Each check's latest verdict (0 ok, 1 warn, 2 fail) and when, labelled by its name.
    assert 'strongroom_integrity_check_status{check="audit chain"} 0.0' in metrics
    assert 'strongroom_integrity_check_status{check="unaudited changes"} 1.0' in metrics
    assert 'strongroom_integrity_check_last_run_timestamp_seconds{check="audit chain"}' in metrics
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_a_second_run_of_the_same_kind_is_refused_while_one_runs(daemon, data_dir):
    ctx = _context(data_dir)
    with transaction(ctx.engine) as conn:
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(1500))
    ctx.close()
    first = daemon.call("job.run", {"kind": "key_rotation"})
    try:
        with pytest.raises(ClientError) as err:
            daemon.call("job.run", {"kind": "key_rotation"})
        assert err.value.code == "conflict"
    finally:
        daemon.call("job.cancel", {"run_id": first["id"]})     # the point is made: stop it at a safe point
        deadline = time.monotonic() + 120
        while daemon.call("job.get", {"run_id": first["id"]})["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)


def test_sigterm_during_a_job_cancels_it_at_a_safe_point(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = _context(data_dir)
    with transaction(ctx.engine) as conn:
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(3000))
    ctx.close()
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    run = proc.call("job.run", {"kind": "key_rotation"})
    deadline = time.monotonic() + 30
    while proc.call("job.get", {"run_id": run["id"]})["progress_done"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(60) == 0
    proc.stop()
    from strongroom.core.jobs import runs
    ctx = _context(data_dir)
    final = runs.get(ctx.engine, uuid.UUID(run["id"]))
    assert final.status in ("cancelled", "succeeded")
    # Whatever was done before the stop is whole: every client still decrypts.
    from strongroom.core.principal import Principal
    from strongroom.core.repository.clients import list_clients
    reader = Principal("test", frozenset({"table:clients:read", "phi:read"}))
    with transaction(ctx.engine) as conn:
        assert len(list_clients(conn, ctx.keyring, reader, limit=5000)) == 3000
    ctx.close()


def test_runs_left_running_by_a_crash_are_marked_interrupted_at_start(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = _context(data_dir)
    crashed = new_id()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(JobRun.__table__), [{"id": crashed, "job_kind": "integrity", "trigger": "schedule",
                                                 "status": JobStatus.RUNNING, "params": {}, "progress_done": 3,
                                                 "queued_at": utcnow(), "started_at": utcnow()}])
    ctx.close()
    proc = DaemonProcess(data_dir, tmp_path)
    try:
        proc.wait_ready()
        deadline = time.monotonic() + 15
        while proc.call("job.get", {"run_id": str(crashed)})["status"] != "interrupted":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        assert proc.stop() == 0


def test_missed_schedules_are_reported_caught_up_and_notified(tmp_path, db_url):
    receiver = Receiver()
    try:
        data_dir = make_data_dir(tmp_path, db_url, extra=(
            '\n[schedules]\nintegrity = "*/5 * * * *"\n'
            f'\n[notify]\nlevel = "warnings"\nwebhooks = [ {{ url = "{receiver.url}", style = "json" }} ]\n'))
        ctx = _context(data_dir)
        long_ago = utcnow() - timedelta(hours=2)
        with transaction(ctx.engine) as conn:
            conn.execute(insert(JobRun.__table__), [{"id": new_id(), "job_kind": "integrity", "trigger": "schedule",
                                                     "status": JobStatus.SUCCEEDED, "params": {}, "progress_done": 0,
                                                     "queued_at": long_ago, "started_at": long_ago, "finished_at": long_ago}])
        ctx.close()
        proc = DaemonProcess(data_dir, tmp_path)
        try:
            proc.wait_ready()
            body = receiver.wait(lambda b: "missed" in b["title"])
            assert body["severity"] == "warning" and body["kind"] == "integrity"
            assert body["fields"]["missed"] >= 23
            deadline = time.monotonic() + 15
            while not any(r["trigger"] == "catch_up" for r in proc.call("job.list", {"kind": "integrity"})):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            missed = re.search(r'strongroom_missed_runs_total\{kind="integrity"\} (\S+)', scrape_metrics(proc))
            assert missed and float(missed.group(1)) >= 23
        finally:
            assert proc.stop() == 0
    finally:
        receiver.close()


def test_failed_job_sends_a_failure_notification(tmp_path, db_url):
    receiver = Receiver()
    try:
        data_dir = make_data_dir(tmp_path, db_url, extra=(
            f'\n[notify]\nwebhooks = [ {{ url = "{receiver.url}", style = "json" }} ]\n'))
        ctx = _context(data_dir)
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(3))
            conn.execute(update(Client.__table__).values(data_checksum="0" * 64))  # damage
        ctx.close()
        proc = DaemonProcess(data_dir, tmp_path)
        try:
            proc.wait_ready()
            final = _run_and_wait(proc, "integrity")
            assert final["status"] == "failed" and "clients row checksums" in final["error"]
            body = receiver.wait(lambda b: b["severity"] == "failure")
            assert body["kind"] == "integrity" and body["fields"]["run_id"] == final["id"]
            assert "Ashford" not in json.dumps(body)
        finally:
            assert proc.stop() == 0
    finally:
        receiver.close()


def test_local_operator_token_can_be_switched_off(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra="\n[daemon]\nlocal_operator_token = false\n")
    proc = DaemonProcess(data_dir, tmp_path)
    try:
        proc.wait_ready()
        assert not (proc.runtime / "operator.token").exists()
        with pytest.raises(ClientError) as err:
            proc.call("status", token="local:0:anything")
        assert err.value.code == "unauthenticated"
    finally:
        assert proc.stop() == 0


def test_standby_takes_over_when_the_leader_dies(tmp_path, db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("two daemons share one database on PostgreSQL")
    data_dir = make_data_dir(tmp_path, db_url, extra="\n[daemon]\nleader_retry_seconds = 0.5\n")
    first = DaemonProcess(data_dir, tmp_path, name="a")
    first.wait_ready()
    second = DaemonProcess(data_dir, tmp_path, name="b")
    try:
        second.wait_ready()
        deadline = time.monotonic() + 10
        while (roles := {first.call("status")["role"], second.call("status")["role"]}) != {"leader", "standby"}:
            assert time.monotonic() < deadline, f"roles settled as {roles}"
            time.sleep(0.1)
        leader, standby = (first, second) if first.call("status")["role"] == "leader" else (second, first)
        with pytest.raises(ClientError) as err:
            standby.call("job.run", {"kind": "integrity"})
        assert err.value.code == "conflict" and "standby" in err.value.message
        leader.proc.kill()
        leader.proc.wait(10)
        started = time.monotonic()
        while standby.call("status")["role"] != "leader":
            assert time.monotonic() - started < 10, "standby did not take over"
            time.sleep(0.1)
        assert _run_and_wait(standby, "integrity")["status"] == "succeeded"
    finally:
        first.stop()
        second.stop()


def test_health_reports_the_audit_chain_verdict_of_the_last_integrity_run(daemon):
    assert _run_and_wait(daemon, "integrity")["status"] == "succeeded"
    deadline = time.monotonic() + 10
    while daemon.call("health").get("audit_chain_ok") is not True:
        assert time.monotonic() < deadline, daemon.call("health")
        time.sleep(0.2)


def test_health_reports_storage_per_table_and_target_backup_outcomes_and_the_compliance_score(daemon, data_dir):
    assert _run_and_wait(daemon, "backup")["status"] == "succeeded"
    # Refreshed at most once a minute (counting rows, scoring areas): the snapshot read
    # as the daemon started is the one shown, backup or not.
    health = daemon.call("health")
    tables = {t["table"]: t for t in health["storage"]["tables"]}
    assert {"clients", "therapy_sessions", "audit_logs", "backups"} <= set(tables)
    assert tables["audit_logs"]["rows"] > 0 and health["storage"]["database_bytes"] > 0
    assert all(set(t) == {"table", "rows", "bytes"} for t in tables.values())
    (target,) = health["storage"]["targets"]
    assert target["configuration"] == "default" and target["quota_bytes"] is None
    assert set(health["backups"]) == {"window_days", "succeeded", "failed"}
    compliance = health["compliance"]
    assert 0 <= compliance["score"] <= 100 and compliance["threshold"] == 80
    assert compliance["status"] == ("ok" if compliance["score"] >= 80 else "below threshold")
    assert "sync" in compliance["not_configured"]
