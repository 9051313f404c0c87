"""kill -9 while a backup is storing client file content: no snapshot appears, and the
next backup (a new daemon) succeeds, reusing the file objects already stored, and
restores every file byte-identical.

The kill lands at a known point, not a guessed one: the last file's manifest object is
swapped for a FIFO, so the backup stores the other files' objects and then waits, for
ever, to read it. (Polling for "half the objects stored" raced a fast machine: the
backup finished between the poll and the kill.)"""
import os
import signal
import time

from sqlalchemy import select

from strongroom.core import audit
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import ClientFile
from strongroom.core.demo import client_records
from strongroom.core.files.content import CHUNK_SIZE
from strongroom.core.files.repository import add_file, open_file
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import restore
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.storage import open_target
from tests.daemon.conftest import DaemonProcess, make_data_dir

ALL = Principal("user:tester", frozenset({"*"}))
FILES, MIB_EACH = 6, 8
CHUNKS_EACH = -(-(MIB_EACH << 20) // CHUNK_SIZE)     # content objects per file; one manifest beside them


def _big_objects(root) -> int:
    return sum(1 for p in (root / "chunks").rglob("*") if p.is_file() and p.stat().st_size > 1_000_000) \
        if (root / "chunks").exists() else 0


def test_kill_9_while_storing_file_content_then_the_next_backup_completes(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, "\n[files]\nmax_bytes = 67108864\n")
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    contents, rows = {}, []
    try:
        with transaction(ctx.engine) as conn:
            created: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(FILES), created=created)
        for client_id in created:
            data = os.urandom(MIB_EACH << 20)
            with transaction(ctx.engine) as conn:
                row = add_file(conn, ctx.keyring, ALL, open_files_target(ctx.settings), ctx.settings.files,
                               client_id, name="scan.pdf", content_type="application/pdf", size=len(data),
                               content=(data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)))
            contents[row["id"]] = data
            rows.append((client_id, row["id"]))
        # The backup goes through files by (client, id): block it on the last one's manifest.
        with transaction(ctx.engine) as conn:
            storage_key = conn.execute(select(ClientFile.storage_key)
                                       .where(ClientFile.id == max(rows)[1])).scalar_one()
        manifest = open_files_target(ctx.settings).root / storage_key
        saved = manifest.with_name(manifest.name + ".saved")
        manifest.rename(saved)
        os.mkfifo(manifest)
        repo_root = data_dir / "backups"
        proc = DaemonProcess(data_dir, tmp_path, name="a")
        proc.wait_ready()
        run = proc.call("job.run", {"kind": "backup"})
        deadline = time.monotonic() + 60
        while _big_objects(repo_root) < (FILES - 1) * CHUNKS_EACH:
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.05)
        assert proc.call("job.get", {"run_id": run["id"]})["status"] == "running"
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(10)
        proc.stop()
        manifest.unlink()
        saved.rename(manifest)
        stored_before = _big_objects(repo_root)
        assert stored_before == (FILES - 1) * CHUNKS_EACH
        repo = open_repository(open_target(str(repo_root)), ctx.keyring)
        assert repo.list_snapshots() == []

        again = DaemonProcess(data_dir, tmp_path, name="b")
        try:
            again.wait_ready()
            second = again.call("job.run", {"kind": "backup"})
            deadline = time.monotonic() + 120
            while (final := again.call("job.get", {"run_id": second["id"]}))["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, again.log()
                time.sleep(0.2)
        finally:
            assert again.stop() == 0
        assert final["status"] == "succeeded", final
        files = final["result"]["files"]
        assert files["files"] == FILES and files["objects"] == FILES * (CHUNKS_EACH + 1)
        assert files["added_objects"] <= FILES * (CHUNKS_EACH + 1) - stored_before    # the stored ones reused
        snapshot_id = final["result"]["snapshot_id"]
        assert [str(i) for i in repo.list_snapshots()] == [snapshot_id]

        fresh = tmp_path / "fresh"
        fresh.mkdir()
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{fresh / 'strongroom.db'}"},
                    lambda *a: None)
        engine = make_engine(f"sqlite:///{fresh / 'strongroom.db'}")
        audit.seal_with(engine, ctx.keyring)
        try:
            for file_id, data in contents.items():
                with transaction(engine) as conn:
                    download = open_file(conn, ctx.keyring, ALL, open_target(str(fresh / "files")), file_id)
                    assert b"".join(download.chunks) == data
        finally:
            engine.dispose()
    finally:
        ctx.close()
