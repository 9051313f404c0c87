"""kill -9 in the middle of an export (issue 12): nothing readable is left on disk at
the moment of the kill (unfinished files have no name, and the kernel frees them with
the process; or, on a filesystem without unnamed files, they are ciphertext under a key
that died with it), and the restarted daemon reconciles: the `exports` row and its run
are `interrupted`, the temporary directory is gone, and the reconciliation is audited."""
from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from sqlalchemy import select

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import AuditLog, Export, Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import only_practice
from strongroom.core.repository.sessions import insert_sessions
from tests.daemon.conftest import PASSWORD, DaemonProcess, data_transaction, insert_demo_rows, make_data_dir

SSN = re.compile(rb"9\d\d-\d\d-\d{4}")
CLIENTS = 300


def _under_way(pid: int, exports: Path) -> Path | None:
    """The export's temporary directory once its sessions are being written: by then
    the clients file (every SSN) is complete, and the export is well under way. Its
    files have no name yet, so the daemon's open files tell: two unnamed files in the
    directory (clients, whole, and sessions, under way), or, where the filesystem has
    no unnamed files, a sessions spool with bytes."""
    for tmp in exports.glob(".*.tmp"):
        for path in tmp.glob("therapy_sessions*"):
            try:
                if path.stat().st_size > 0:
                    return tmp
            except FileNotFoundError:
                pass
        unnamed = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                unnamed += os.readlink(f"/proc/{pid}/fd/{fd}").startswith(f"{tmp}/#")
            except OSError:
                pass          # closed meanwhile
        if unnamed >= 2:
            return tmp
    return None


def _clear_ssns_under(root: Path, ssns: set[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and ssns & set(SSN.findall(path.read_bytes())):
            found.append(str(path.relative_to(root)))
    return found


def test_kill_9_mid_export_leaves_no_clear_phi_and_the_restart_reconciles(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra="\n[export]\nbatch_size = 50\n")
    with data_transaction(data_dir) as (ctx, conn):
        ids = insert_demo_rows(ctx, conn, clients=CLIENTS, sessions_per_client=0)
        insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(ids, 10, note_bytes=2000))
        create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "manager1", PASSWORD, Role.MANAGER,
                    actor="test")
    ssns = {r["ssn"].encode() for r in demo.client_records(CLIENTS)}
    exports = data_dir / "exports"

    proc = DaemonProcess(data_dir, tmp_path, name="a")
    proc.wait_ready()
    token = proc.call("auth.login", {"username": "manager1", "password": PASSWORD}, token=None)["token"]
    run = proc.call("export.run", {"tables": ["clients", "therapy_sessions"], "format": "csv",
                                    "masking": "full"}, token=token)
    deadline = time.monotonic() + 30
    while (tmp_dir := _under_way(proc.proc.pid, exports)) is None:
        assert proc.call("job.get", {"run_id": run["id"]})["status"] in ("queued", "running"), \
            "the export finished before the kill: the test proves nothing"
        assert time.monotonic() < deadline, proc.log()
        time.sleep(0.005)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    proc.stop()
    assert tmp_dir.is_dir(), "the export completed before the kill: the test proves nothing"
    assert not [p for p in exports.iterdir() if not p.name.startswith(".")], "an export was moved into place"
    assert _clear_ssns_under(exports, ssns) == []

    again = DaemonProcess(data_dir, tmp_path, name="b")
    try:
        again.wait_ready()
        deadline = time.monotonic() + 15
        while again.call("job.get", {"run_id": run["id"]})["status"] != "interrupted":
            assert time.monotonic() < deadline, again.log()
            time.sleep(0.1)
        assert not tmp_dir.exists()
        assert list(exports.iterdir()) == []
        with data_transaction(data_dir) as (ctx, conn):
            row = conn.execute(select(Export.__table__)).mappings().one()
            logs = AuditLog.__table__
            entry = conn.execute(select(logs).where(logs.c.record_id == str(row["id"]), logs.c.outcome == "interrupted")
                                 ).mappings().one()
        assert row["status"] == "interrupted" and "stopped" in row["error"]
        assert (entry["action"], entry["table_name"], entry["actor"]) == ("EXPORT", "exports", "system")
        assert not SSN.search(str(entry["details"]).encode())
    finally:
        assert again.stop() == 0
