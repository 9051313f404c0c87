"""Client files over the real control socket: content in bounded chunks both ways,
byte-identical; bad names and limits refused before anything is stored, without
echoing the name; a tampered object refused naming the file; transfers bound to the
session that opened them."""
from __future__ import annotations

import base64
import os
import time
from pathlib import Path

from sqlalchemy import select

from strongroom.core.db.models import AuditLog
from strongroom.core.files.content import CHUNK_SIZE
from tests.daemon.conftest import data_transaction, download, error_of, upload

def stored_files(daemon) -> list[Path]:
    return [p for p in (daemon.data_dir / "files").rglob("*") if p.is_file()]


def test_add_list_get_remove_round_trip(files_daemon):
    data = os.urandom(2 * CHUNK_SIZE + 400_000)
    added = upload(files_daemon, files_daemon.clients[0], data, description="signed consent")
    assert added["size_bytes"] == len(data) and added["virus_scan_status"] == "pending"
    (listed,) = files_daemon.call("file.list", {"client_id": files_daemon.clients[0]})
    assert listed["name"] == "consent Quillon.pdf" and listed["description"] == "signed consent"
    assert files_daemon.call("file.list", {"client_id": files_daemon.clients[1]}) == []
    assert download(files_daemon, added["id"]) == data
    assert len(stored_files(files_daemon)) == 4           # three chunks and a manifest
    removed = files_daemon.call("file.remove", {"file_id": added["id"]})
    assert removed["objects_deleted"] == 4 and stored_files(files_daemon) == []
    assert error_of(files_daemon, "file.get", {"file_id": added["id"]}).code == "not_found"
    with data_transaction(files_daemon.data_dir) as (_, conn):
        entries = conn.execute(select(AuditLog.__table__.c.action, AuditLog.__table__.c.details)
                               .where(AuditLog.__table__.c.table_name == "client_files")).all()
    assert [e.action for e in entries] == ["CREATE", "READ", "READ", "DELETE"]
    assert "Quillon" not in repr(entries) and "signed consent" not in repr(entries)


def test_bad_input_is_refused_before_anything_is_stored(files_daemon):
    client = files_daemon.clients[0]
    for name in ("../../etc/Quillon", "Quillon\0.pdf", "a/Quillon.pdf", "Quillon\n.pdf"):
        err = error_of(files_daemon, "file.add", {"client_id": client, "name": name,
                                                   "content_type": "application/pdf", "size": 10})
        assert err.code == "bad_request" and "Quillon" not in err.message
    err = error_of(files_daemon, "file.add", {"client_id": client, "name": "big.pdf",
                                               "content_type": "application/pdf", "size": 12_000_001})
    assert err.code == "bad_request" and "limit is 12000000" in err.message
    err = error_of(files_daemon, "file.add", {"client_id": client, "name": "run.exe",
                                               "content_type": "application/x-msdownload", "size": 10})
    assert err.code == "bad_request" and "not allowed" in err.message
    assert error_of(files_daemon, "file.add", {"client_id": client, "name": "empty.pdf",
                                                "content_type": "application/pdf", "size": 0}).code == "bad_request"
    opened = files_daemon.call("file.add", {"client_id": client, "name": "a.pdf",
                                             "content_type": "application/pdf", "size": 10})
    err = error_of(files_daemon, "file.chunk.add", {"upload_id": opened["upload_id"], "data": "not base64!"})
    assert err.code == "bad_request"
    err = error_of(files_daemon, "file.chunk.add", {"upload_id": opened["upload_id"],
                                                     "data": base64.b64encode(b"x" * 11).decode()})
    assert err.code == "bad_request" and "declared" in err.message
    assert error_of(files_daemon, "file.upload.commit", {"upload_id": opened["upload_id"]}).code == "not_found"
    assert stored_files(files_daemon) == []
    assert files_daemon.call("file.list", {"client_id": client}) == []


def test_short_upload_and_abort_leave_nothing(files_daemon):
    client = files_daemon.clients[0]
    opened = files_daemon.call("file.add", {"client_id": client, "name": "a.pdf",
                                             "content_type": "application/pdf", "size": 2 * CHUNK_SIZE})
    for _ in range(CHUNK_SIZE // opened["transfer_bytes"] + 2):
        files_daemon.call("file.chunk.add", {"upload_id": opened["upload_id"],
                                              "data": base64.b64encode(os.urandom(opened["transfer_bytes"])).decode()})
    deadline = time.monotonic() + 60     # a loaded CI machine: 10 s was once too short
    while not stored_files(files_daemon) and time.monotonic() < deadline:
        time.sleep(0.05)                                    # a worker thread stores it
    assert stored_files(files_daemon)                       # one full chunk stored already
    assert files_daemon.call("file.upload.abort", {"upload_id": opened["upload_id"]}) == {"aborted": True}
    assert stored_files(files_daemon) == []
    opened = files_daemon.call("file.add", {"client_id": client, "name": "a.pdf",
                                             "content_type": "application/pdf", "size": 10})
    files_daemon.call("file.chunk.add", {"upload_id": opened["upload_id"], "data": base64.b64encode(b"x").decode()})
    err = error_of(files_daemon, "file.upload.commit", {"upload_id": opened["upload_id"]})
    assert err.code == "bad_request" and "received 1 of the declared 10" in err.message
    assert stored_files(files_daemon) == [] and files_daemon.call("file.list", {"client_id": client}) == []


def test_tampered_object_is_refused_naming_the_file(files_daemon):
    added = upload(files_daemon, files_daemon.clients[0], os.urandom(1_500_000))
    for path in stored_files(files_daemon):
        if path.stat().st_size > 1_000_000:                # the first (full) chunk
            raw = bytearray(path.read_bytes())
            raw[100] ^= 0x40
            path.write_bytes(bytes(raw))
    opened = files_daemon.call("file.get", {"file_id": added["id"]})
    err = error_of(files_daemon, "file.chunk.get", {"download_id": opened["download_id"]})
    assert added["id"] in err.message and "failed authentication" in err.message
    # the failed transfer is closed
    assert error_of(files_daemon, "file.chunk.get", {"download_id": opened["download_id"]}).code == "not_found"


def test_unknown_ids(files_daemon):
    unknown = "01a2061f-77c9-7000-a71a-77552702252a"
    assert error_of(files_daemon, "file.get", {"file_id": unknown}).code == "not_found"
    assert error_of(files_daemon, "file.remove", {"file_id": unknown}).code == "not_found"
    assert error_of(files_daemon, "file.add", {"client_id": unknown, "name": "a.pdf",
                                                "content_type": "application/pdf", "size": 1}).code == "not_found"
    assert error_of(files_daemon, "file.chunk.get", {"download_id": "nope"}).code == "not_found"
