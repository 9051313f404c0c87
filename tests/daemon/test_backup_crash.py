"""kill -9 in the middle of a backup: no snapshot appears, the run is marked
interrupted, and the next backup succeeds reusing the chunks already written."""
import signal
import time

import pytest

from strongroom.core.backup.repository import open_repository
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.demo import client_records, session_records
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.repository.sessions import insert_sessions
from strongroom.core.storage import open_target
from tests.daemon.conftest import DaemonProcess, make_data_dir


@pytest.mark.soak     # 48k encrypted rows per engine, so the kill lands mid-run: `make soak`
def test_kill_9_mid_backup_leaves_no_snapshot_and_the_next_backup_reuses_chunks(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    with transaction(ctx.engine) as conn:
        practice = only_practice(conn)
        for start in range(0, 12000, 2000):
            created = []
            insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(2000, seed=start), created=created)
            insert_sessions(conn, ctx.keyring, SYSTEM, session_records(created, 3, seed=start, note_bytes=1500))
    repo_url = str(data_dir / "backups")
    proc = DaemonProcess(data_dir, tmp_path, name="a")
    proc.wait_ready()
    run = proc.call("job.run", {"kind": "backup"})
    deadline = time.monotonic() + 60
    # Kill once the unchanging tables (data keys, clients) are stored: well into the run.
    while (current := proc.call("job.get", {"run_id": run["id"]}))["progress_done"] < 20_000_000:
        assert current["status"] in ("queued", "running"), "backup finished before the kill"
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.02)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    proc.stop()

    repo = open_repository(open_target(repo_url), ctx.keyring)
    assert repo.list_snapshots() == []
    assert any(repo.target.list("chunks/")), "the killed backup wrote no chunk; the test proves nothing"

    again = DaemonProcess(data_dir, tmp_path, name="b")
    try:
        again.wait_ready()
        deadline = time.monotonic() + 15
        while again.call("job.get", {"run_id": run["id"]})["status"] != "interrupted":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        second = again.call("job.run", {"kind": "backup"})
        while (final := again.call("job.get", {"run_id": second["id"]}))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline + 120
            time.sleep(0.2)
        assert final["status"] == "succeeded", final
        assert final["result"]["added_bytes"] < final["result"]["stored_bytes"]  # some chunks were reused
        assert [str(i) for i in repo.list_snapshots()] == [final["result"]["snapshot_id"]]
    finally:
        assert again.stop() == 0
        ctx.close()
