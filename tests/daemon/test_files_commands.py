"""Client files over the real control socket: content in bounded pieces both ways
(binary frames, or base64 in the JSON for older clients), byte-identical; every
malformed framing refused with bad_request, changing nothing; bad names and limits refused before anything is stored, without
echoing the name; a tampered object refused naming the file; transfers bound to the
session that opened them."""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import zmq
from sqlalchemy import select

from strongroom.core.db.models import AuditLog
from strongroom.core.files.content import CHUNK_SIZE
from tests.daemon.conftest import assert_alive, data_transaction, download, error_of, upload

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
    for _ in range(CHUNK_SIZE // opened["transfer_bytes"] + 1):     # past one whole chunk, short of two
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


def test_base64_form_still_round_trips(files_daemon):
    """The JSON-only form (no `framed`) is kept for one release for older clients."""
    data = os.urandom(CHUNK_SIZE + 900_000)
    added = upload(files_daemon, files_daemon.clients[0], data, framed=False)
    assert download(files_daemon, added["id"], framed=False) == data
    assert download(files_daemon, added["id"]) == data        # either form reads any file


def raw_call(daemon, *frames: bytes, kind: int = zmq.DEALER) -> tuple[dict, list[bytes]]:
    """Send FRAMES as they are on a raw socket; the parsed reply and its further frames."""
    ctx = zmq.Context()
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 20_000)
    sock.connect(daemon.endpoint)
    try:
        sock.send_multipart(list(frames))
        frames = sock.recv_multipart()
        if frames[0] == b"" and kind == zmq.DEALER:      # a REQ-style envelope is echoed back
            frames = frames[1:]
        reply, *rest = frames
        return json.loads(reply), rest
    finally:
        sock.close()
        ctx.term()


def request(daemon, cmd: str, args: dict) -> bytes:
    return json.dumps({"v": 1, "id": "f1", "cmd": cmd, "token": daemon.local_token(), "args": args}).encode()


def test_malformed_frames_are_refused_and_change_nothing(files_daemon):
    client = files_daemon.clients[0]
    data = os.urandom(CHUNK_SIZE + 300_000)
    opened = files_daemon.call("file.add", {"client_id": client, "name": "a.pdf", "content_type": "application/pdf",
                                             "size": len(data), "framed": True})
    upload_id, step = opened["upload_id"], opened["transfer_bytes"]
    assert step == 4 * 1024 * 1024            # no base64 headroom: the whole frame limit (a store chunk)
    chunk = request(files_daemon, "file.chunk.add", {"upload_id": upload_id})

    def refused(*frames, words: str, kind: int = zmq.DEALER) -> None:
        reply, rest = raw_call(files_daemon, *frames, kind=kind)
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
        assert words in reply["error"]["message"] and rest == []

    refused(chunk, b"x" * 10, b"y" * 10, words="at most one binary frame")
    refused(request(files_daemon, "status", {}), b"x" * 10, words="status takes no binary frame")
    refused(request(files_daemon, "file.upload.commit", {"upload_id": upload_id}), b"x", words="takes no binary frame")
    refused(chunk, b"x" * (4 * 1024 * 1024 + 1), words="exceeds the limit of 4194304")
    refused(request(files_daemon, "file.chunk.add", {"upload_id": upload_id, "data": base64.b64encode(b"x").decode()}),
            b"x", words="both inline")
    refused(request(files_daemon, "file.chunk.add", {"upload_id": upload_id, "data": base64.b64encode(b"x").decode()}),
            words="binary frame after the JSON frame")
    refused(chunk, words="binary frame after the JSON frame")
    refused(b"", chunk, b"x", b"y", kind=zmq.DEALER, words="at most one binary frame")   # REQ-style envelope
    refused(request(files_daemon, "file.chunk.add", {"upload_id": upload_id, "offset": step}), data[step:2 * step],
            words=f"a piece at offset {step}, but 0 bytes are received")
    # nothing of the refused calls was taken: the upload goes on from byte 0
    assert stored_files(files_daemon) == [] and files_daemon.call("file.list", {"client_id": client}) == []
    for start in range(0, len(data), step):
        if start == step:                       # a REQ socket's envelope (empty delimiter) works too
            reply, rest = raw_call(files_daemon, chunk, data[start:start + step], kind=zmq.REQ)
            assert reply["ok"] and rest == []
        else:
            files_daemon.call("file.chunk.add", {"upload_id": upload_id, "offset": start},
                              content=data[start:start + step])
    added = files_daemon.call("file.upload.commit", {"upload_id": upload_id})
    assert added["size_bytes"] == len(data)

    # a base64 upload takes no frame
    old = files_daemon.call("file.add", {"client_id": client, "name": "b.pdf", "content_type": "application/pdf",
                                          "size": 10})
    assert old["transfer_bytes"] == (step - 4096) // 4 * 3     # base64: 3/4 of the frame, less the JSON
    err = error_of(files_daemon, "file.chunk.add", {"upload_id": old["upload_id"]}, content=b"x" * 10)
    assert err.code == "bad_request" and "opened without framed" in err.message
    files_daemon.call("file.chunk.add", {"upload_id": old["upload_id"], "data": base64.b64encode(b"y" * 10).decode()})
    assert files_daemon.call("file.upload.commit", {"upload_id": old["upload_id"]})["size_bytes"] == 10

    # a download refuses a frame sent to it, and hands out every piece from the first
    got = files_daemon.call("file.get", {"file_id": added["id"], "framed": True})
    refused(request(files_daemon, "file.chunk.get", {"download_id": got["download_id"]}), b"x", words="takes no binary")
    out = b""
    while True:
        reply, rest = raw_call(files_daemon, request(files_daemon, "file.chunk.get",
                                                     {"download_id": got["download_id"]}))
        assert reply["ok"] and len(rest) == 1 and len(rest[0]) == reply["result"]["size"]
        out += rest[0]
        if reply["result"]["final"]:
            break
    assert out == data
    assert_alive(files_daemon)
