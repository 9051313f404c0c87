"""A real clamd for the scanning tests: one per test session, started as a subprocess
with a temporary config (LocalSocket in a temp dir, Foreground) and a signature
database written here, so nothing is downloaded (freshclam never runs):

- an .hdb line (MD5:size:name) matching the EICAR test file exactly, and
- an .ndb body signature matching the EICAR string anywhere in a file (so a file with
  EICAR in the middle, across our 1 MiB chunk boundaries, is found too).

StreamMaxLength is STREAM_MAX so the size-limit answer can be tested. Skipped only when
clamd is not installed and neither CI nor STRONGROOM_TEST_REQUIRE_CLAMD (.ci/run sets it)
is set; then a missing clamd fails.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from strongroom.core.files.scan import Clamd, ScannerUnavailable
from tests.daemon.conftest import data_transaction, insert_demo_rows, make_data_dir

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
STREAM_MAX = 3 * 1024 * 1024
CLAMD = shutil.which("clamd") or ("/usr/sbin/clamd" if os.path.exists("/usr/sbin/clamd") else None)


@dataclass
class ClamdServer:
    socket: str
    process: subprocess.Popen
    log: Path

    def client(self, **kw) -> Clamd:
        return Clamd(self.socket, **kw)


def _signatures(db: Path) -> None:
    db.mkdir()
    (db / "strongroom-test.hdb").write_text(f"{hashlib.md5(EICAR).hexdigest()}:{len(EICAR)}:Strongroom-Test-EICAR\n")
    (db / "strongroom-test.ndb").write_text(f"Strongroom-Test-EICAR-Body:0:*:{EICAR.hex()}\n")


@pytest.fixture(scope="session")
def clamd(tmp_path_factory) -> ClamdServer:
    if CLAMD is None:
        if os.environ.get("CI") or os.environ.get("STRONGROOM_TEST_REQUIRE_CLAMD"):
            pytest.fail("CI (or STRONGROOM_TEST_REQUIRE_CLAMD) is set but clamd is not installed: "
                        ".ci/run installs clamav-daemon")
        pytest.skip("clamd is not installed (apt-get install clamav-daemon); CI runs these tests")
    root = tmp_path_factory.mktemp("clamd")
    _signatures(root / "db")
    sock, log = root / "clamd.sock", root / "clamd.log"
    conf = root / "clamd.conf"
    conf.write_text(f"LocalSocket {sock}\nDatabaseDirectory {root / 'db'}\nTemporaryDirectory {root}\n"
                    f"Foreground yes\nLogFile {log}\nStreamMaxLength {STREAM_MAX}\n")
    process = subprocess.Popen([CLAMD, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = ClamdServer(str(sock), process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if server.client(timeout=2).ping():
                break
        except ScannerUnavailable:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("clamd did not answer PING: " + (log.read_text()[-2000:] if log.exists() else "no log"))
        time.sleep(0.05)
    yield server
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def scanning_data_dir(tmp_path, db_url, socket_path: str) -> tuple[Path, str]:
    """A daemon's data directory scanning with the clamd at SOCKET_PATH, and its one demo client."""
    data_dir = make_data_dir(tmp_path, db_url, extra=f'\n[files]\nscanner = "clamd"\nclamd_socket = "{socket_path}"\n'
                                                     "clamd_timeout_seconds = 10\n")
    with data_transaction(data_dir) as (ctx, conn):
        clients = insert_demo_rows(ctx, conn, clients=1, sessions_per_client=0)
    return data_dir, str(clients[0])


@pytest.fixture
def fail_nth_put(monkeypatch):
    """`fail_nth_put(target, n)`: the target's n-th object write raises OSError("disk
    full"), whether it goes through `put` (a manifest) or a put batch (a file's chunks,
    LocalTarget.put_batch); returns the list of keys written in order (the failing one
    included). Thread-safe: the writer's workers put at once."""
    import threading

    def install(target, n: int) -> list[str]:
        calls: list[str] = []
        lock = threading.Lock()

        def counted(key, write):
            with lock:
                calls.append(key)
                due = len(calls) == n
            if due:
                raise OSError("disk full")
            return write()
        real_put = type(target).put
        monkeypatch.setattr(target, "put", lambda key, data, **options: counted(
            key, lambda: real_put(target, key, data, **options)))
        if getattr(target, "batches_puts", False):
            real_batch = type(target).put_batch

            def put_batch():
                batch = real_batch(target)
                real_batch_put = batch.put
                batch.put = lambda key, data, **options: counted(key, lambda: real_batch_put(key, data, **options))
                return batch
            monkeypatch.setattr(target, "put_batch", put_batch)
        return calls
    return install
