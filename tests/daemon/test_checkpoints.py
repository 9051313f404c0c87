"""The daemon keeps checkpoints of the audit head outside the database on its own, and
its integrity job and audit.verify catch a log cut after one."""
import json

from sqlalchemy import text

from tests.conftest import lift_audit_guards
from tests.daemon.conftest import DaemonProcess, data_transaction, make_data_dir, wait_run


def test_a_checkpoint_at_shutdown_catches_entries_cut_while_the_daemon_was_down(tmp_path, db_url):
    checkpoint_file = tmp_path / "elsewhere" / "checkpoint.json"
    data_dir = make_data_dir(tmp_path, db_url, f'\n[audit]\ncheckpoint_file = "{checkpoint_file}"\n')
    first = DaemonProcess(data_dir, tmp_path, name="first")
    first.wait_ready()
    first.call("job.list")
    assert first.stop() == 0
    cp = json.loads(checkpoint_file.read_text())
    with data_transaction(data_dir) as (_, conn):
        head = conn.execute(text("SELECT max(id) FROM audit_logs")).scalar()
    assert cp["head_id"] == head                       # it covers its own entry

    with data_transaction(data_dir) as (_, conn):      # the database's administrator cuts the end
        lift_audit_guards(conn)
        conn.execute(text("DELETE FROM audit_logs WHERE id > :k"), {"k": head - 3})

    second = DaemonProcess(data_dir, tmp_path, name="second")
    second.wait_ready()
    try:
        verdict = second.call("audit.verify")
        assert verdict["ok"] is False and verdict["rows_missing_after"] >= 3
        assert verdict["checkpoint"]["head_id"] == head
        run = wait_run(second, second.call("job.run", {"kind": "integrity"})["id"])
        assert run["status"] == "failed" and "audit chain" in run["error"]
    finally:
        assert second.stop() == 0
    assert json.loads(checkpoint_file.read_text())["head_id"] == head   # the evidence stays
    assert "no new checkpoint replaces that evidence" in second.log_path.read_text()
