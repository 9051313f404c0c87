"""Malware scanning through a real daemon and a real clamd: files.add scans the content
as its chunks arrive; an infected upload is refused (bad_request naming the file id,
never its name) with its security event committed; a practitioner (no
files:quarantine:read) cannot fetch a file left pending while clamd was unreachable;
health says how many files are pending and whether clamd answers; the files_rescan
job, run through job.run, clears them."""
from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from strongroom.console.client import ClientError
from strongroom.core.db.models import SecurityEvent
from tests.core.files.conftest import EICAR, scanning_data_dir
from tests.daemon.conftest import data_transaction, download, error_of, login, running_daemon, upload


def _health_files(daemon, want) -> dict:
    deadline = time.monotonic() + 60   # the first snapshot waits for the slow parts (usage, compliance)
    while True:
        files = daemon.call("health").get("files")
        if files is not None and want(files) or time.monotonic() > deadline:
            return files
        time.sleep(0.2)


def test_clean_upload_is_served_and_eicar_refused_with_event(tmp_path, db_url, clamd):
    data_dir, client = scanning_data_dir(tmp_path, db_url, clamd.socket)
    with running_daemon(data_dir, tmp_path) as daemon:
        data = os.urandom(1_500_000)
        added = upload(daemon, client, data)
        assert added["virus_scan_status"] == "clean"
        clinician = login(daemon, "clinician")
        assert download(daemon, added["id"]) == data
        assert daemon.call("files.get", {"file_id": added["id"]}, token=clinician)["size"] == len(data)

        with pytest.raises(ClientError) as refused:
            upload(daemon, client, b"%PDF-1.4 " + EICAR, name="letter Ozymandias.pdf")
        err = refused.value
        assert err.code == "bad_request" and "clamd found" in err.message and "Ozymandias" not in err.message
        assert [f["id"] for f in daemon.call("files.list", {"client_id": client})] == [added["id"]]
        with data_transaction(data_dir) as (_, conn):
            found = conn.execute(select(SecurityEvent.__table__.c.details).where(
                SecurityEvent.__table__.c.event_type == "malware_found")).scalars().all()
        assert len(found) == 1 and found[0]["file_id"] in err.message
        files = _health_files(daemon, lambda f: f["clean"] == 1)
        assert files is not None, daemon.log()[-3000:]
        assert files["scanner"] == "clamd" and files["answers"] is True and files["pending"] == 0


@pytest.mark.slow
def test_pending_file_is_quarantined_then_cleared_by_the_rescan_job(tmp_path, db_url, clamd):
    link = tmp_path / "clamd.sock"          # the daemon's clamd_socket: absent at first (clamd down)
    data_dir, client = scanning_data_dir(tmp_path, db_url, str(link))
    with running_daemon(data_dir, tmp_path) as daemon:
        data = os.urandom(300_000)
        added = upload(daemon, client, data)
        assert added["virus_scan_status"] == "pending" and "does not answer" in added["scan_note"]
        clinician = login(daemon, "clinician")
        with pytest.raises(ClientError) as err:
            daemon.call("files.get", {"file_id": added["id"]}, token=clinician)
        assert err.value.code == "forbidden" and "files:quarantine:read" in err.value.message
        assert error_of(daemon, "files.get.chunk", {"download_id": "x"}).code == "not_found"
        files = _health_files(daemon, lambda f: f["pending"] == 1)
        assert files["pending"] == 1 and files["answers"] is False

        link.symlink_to(clamd.socket)        # clamd is back
        run = daemon.call("job.run", {"kind": "files_rescan"})
        deadline = time.monotonic() + 60
        while (state := daemon.call("job.get", {"run_id": run["id"]}))["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert state["status"] == "succeeded" and state["result"]["clean"] == 1
        opened = daemon.call("files.get", {"file_id": added["id"]}, token=clinician)
        assert opened["size"] == len(data)
        assert _health_files(daemon, lambda f: f["pending"] == 0 and f["answers"])["pending"] == 0
