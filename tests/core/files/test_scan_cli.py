"""`strongroom files add` and `strongroom files scan-status` with scanning on, against a
real daemon and a real clamd: a clean file says so, EICAR fails the command naming the
signature (not the file's name), and scan-status reports clamd answering and the counts."""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.console.cli_helpers import run_cli as run
from tests.core.files.conftest import EICAR, scanning_data_dir
from tests.daemon.conftest import running_daemon


@pytest.fixture
def scanning_daemon(tmp_path, db_url, clamd, monkeypatch):
    data_dir, client = scanning_data_dir(tmp_path, db_url, clamd.socket)
    with running_daemon(data_dir, tmp_path) as daemon:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(daemon.runtime))
        daemon.client_id = client
        yield daemon


def test_add_reports_the_scan_and_scan_status_counts(capsys, scanning_daemon, tmp_path):
    d = scanning_daemon
    clean = tmp_path / "consent Ignatius.pdf"
    clean.write_bytes(os.urandom(200_000))
    code, out, err = run(capsys, "--data-dir", d.data_dir, "files", "add", d.client_id, clean)
    assert code == 0 and "virus scan: clean" in out, err
    infected = tmp_path / "letter Ignatius.pdf"
    infected.write_bytes(EICAR)
    code, out, err = run(capsys, "--data-dir", d.data_dir, "files", "add", d.client_id, infected)
    assert code != 0 and "clamd found Strongroom-Test-EICAR" in err and "Ignatius" not in err
    deadline = time.monotonic() + 60
    while True:
        code, out, err = run(capsys, "--data-dir", d.data_dir, "files", "scan-status", "--json")
        if code == 0 and json.loads(out)["clean"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    status = json.loads(out)
    assert status["answers"] is True and status["pending"] == 0 and status["clean"] == 1
    code, out, err = run(capsys, "--data-dir", d.data_dir, "files", "scan-status")
    assert code == 0 and "answers (ClamAV" in out and "0 pending a scan, 1 clean" in out, err
