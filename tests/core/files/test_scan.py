"""Malware scanning with a real clamd (tests/core/files/conftest.py), on SQLite and
PostgreSQL: the client speaks clamd's protocol; a clean file is scanned as it is added
and served; EICAR is refused, its content deleted and a security event recorded by file
id; with clamd down a file stays pending and quarantined until the files_rescan job
clears it; clamd's size limit leaves a file pending; health and compliance say so."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
from sqlalchemy import select

from strongroom.core import compliance
from strongroom.core.config import FilesSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, ClientFile, SecurityEvent
from strongroom.core.errors import PermissionDenied, StrongroomError
from strongroom.core.files.repository import (MalwareFound, add_file, delete_objects, open_file, refuse_if_infected,
                                              remove_file, rescan_file, scan_health)
from strongroom.core.files.scan import Clamd, ScannerUnavailable, ScanRefused, parse_reply, scanner_for
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import file_scan, kinds
from strongroom.core.principal import Principal
from tests.core.conftest import seed_clients
from tests.core.files.conftest import EICAR, STREAM_MAX

CHUNK_SIZE = 1024 * 1024   # sizes here are set against STREAM_MAX, not the store's chunk size (4 MiB)

NAME = "referral Thaddeus-Pimble.pdf"
READER = Principal("user:reader", frozenset({"table:client_files:*", "phi:read"}))
INVESTIGATOR = Principal("user:investigator", frozenset({"table:client_files:*", "phi:read",
                                                         "files:quarantine:read"}))
DOWN = "/nonexistent/strongroom-test/clamd.sock"


def _pieces(data: bytes, size: int = 300_000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _scanning(ctx, socket_path: str) -> None:
    ctx.settings = ctx.settings.model_copy(update={"files": ctx.settings.files.model_copy(
        update={"scanner": "clamd", "clamd_socket": socket_path, "clamd_timeout_seconds": 10.0})})


def _add(ctx, client_id, data: bytes, principal=READER) -> dict:
    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, principal, open_files_target(ctx.settings), ctx.settings.files,
                        client_id, name=NAME, content_type="application/pdf", size=len(data),
                        content=_pieces(data), scanner=scanner_for(ctx.settings.files))


def _get(ctx, file_id, principal=READER) -> bytes:
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, principal, open_files_target(ctx.settings), file_id,
                             quarantine=ctx.settings.files.scanner != "off")
        return b"".join(download.chunks)


def _rescan(ctx) -> dict:
    return file_scan.run(ctx, kinds.check_params("files_rescan", {}), lambda *a: None)


def _status(ctx, file_id) -> tuple[str, object]:
    files = ClientFile.__table__
    with ctx.engine.connect() as conn:
        row = conn.execute(select(files.c.virus_scan_status, files.c.deleted_at).where(files.c.id == file_id)).one()
    return row.virus_scan_status, row.deleted_at


def _stored(ctx) -> list:
    return [p for p in (ctx.settings.data_dir / "files").rglob("*") if p.is_file()]


def _events(ctx) -> list:
    events = SecurityEvent.__table__
    with ctx.engine.connect() as conn:
        return conn.execute(select(events).where(events.c.event_type == "malware_found")).mappings().all()


def _data(n: int) -> bytes:
    return (b"clinical letter " * (n // 16 + 1))[:n - 1000] + os.urandom(1000)


@pytest.fixture
def clients(ctx):
    return seed_clients(ctx, n=2)


# --- the client, against clamd itself --------------------------------------------------

def test_client_speaks_ping_version_and_instream(clamd):
    client = clamd.client(timeout=10)
    assert client.ping() is True
    assert client.version().startswith("ClamAV ")
    assert client.scan([b"hello ", b"world"]).status == "clean"
    found = client.scan([EICAR])
    assert found.status == "infected" and found.signature.startswith("Strongroom-Test-EICAR")
    # EICAR in the middle of 2.5 MB, cut across our piece boundaries, found by the body signature.
    body = os.urandom(CHUNK_SIZE - 20) + EICAR + os.urandom(CHUNK_SIZE + 12345)
    assert client.scan(_pieces(body, 333_333)).status == "infected"


def test_size_limit_answer_is_read_even_when_clamd_hangs_up(clamd):
    with pytest.raises(ScanRefused, match="size limit exceeded"):
        clamd.client(timeout=10).scan(_pieces(b"\0" * (STREAM_MAX + 2 * CHUNK_SIZE), CHUNK_SIZE))


def test_unreachable_clamd_is_scanner_unavailable(tmp_path):
    with pytest.raises(ScannerUnavailable, match="does not answer"):
        Clamd(str(tmp_path / "none.sock"), timeout=1).ping()
    listener = socket.socket()          # accepts and never answers: the timeout ends the wait
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    started = time.monotonic()
    with pytest.raises(ScannerUnavailable):
        Clamd(listener.getsockname(), timeout=0.5).ping()
    assert time.monotonic() - started < 5
    listener.close()


def test_silent_hangup_mid_stream_is_unavailable_not_a_verdict():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def hang_up():
        conn, _ = listener.accept()
        conn.recv(100)
        conn.close()
    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(ScannerUnavailable):
        Clamd(listener.getsockname(), timeout=2).scan(_pieces(b"x" * 4_000_000, 65536))
    listener.close()


def test_replies_are_parsed_and_odd_ones_refused():
    assert parse_reply(b"stream: OK\0").status == "clean"
    assert parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND\0").signature == "Win.Test.EICAR_HDB-1"
    with pytest.raises(ScanRefused, match="size limit"):
        parse_reply(b"INSTREAM size limit exceeded. ERROR\0")
    with pytest.raises(ScanRefused, match="error"):
        parse_reply(b"stream: Can't allocate memory ERROR\0")
    with pytest.raises(ScanRefused, match="does not understand"):
        parse_reply(b"what\0")


def test_config_takes_one_clamd_address_naming_the_field():
    with pytest.raises(ValueError, match="clamd_tcp"):
        FilesSettings(clamd_socket="/run/x.sock", clamd_tcp="127.0.0.1:3310")
    with pytest.raises(ValueError, match="clamd_tcp"):
        FilesSettings(clamd_tcp="127.0.0.1:99999")
    assert scanner_for(FilesSettings()) is None
    assert scanner_for(FilesSettings(scanner="clamd")).address == "/run/clamav/clamd.ctl"
    assert scanner_for(FilesSettings(scanner="clamd", clamd_tcp="[::1]:3310")).address == ("::1", 3310)


# --- files: add, quarantine, refusal, rescan -------------------------------------------

def test_clean_file_is_scanned_on_add_and_served(ctx, clients, clamd):
    _scanning(ctx, clamd.socket)
    data = _data(2 * CHUNK_SIZE + 777)
    added = _add(ctx, clients[0], data)
    assert added["virus_scan_status"] == "clean" and "scan_note" not in added
    assert _status(ctx, added["id"]) == ("clean", None)
    assert _get(ctx, added["id"]) == data          # no quarantine permission needed


def test_eicar_is_refused_content_deleted_and_reported_by_id(ctx, clients, clamd):
    _scanning(ctx, clamd.socket)
    refused = _add(ctx, clients[0], b"%PDF-1.4\n" + EICAR + b"\n%%EOF\n" + _data(CHUNK_SIZE))
    assert refused["refused"] and refused["virus_scan_status"] == "infected"
    with pytest.raises(MalwareFound, match=str(refused["id"])) as err:
        refuse_if_infected(refused)
    assert NAME not in str(err.value)
    with ctx.engine.connect() as conn:   # no row kept, nothing stored
        assert conn.execute(select(ClientFile.__table__.c.id)).all() == []
    assert _stored(ctx) == []
    (event,) = _events(ctx)
    assert event["severity"] == "high" and event["details"]["file_id"] == str(refused["id"])
    assert event["details"]["signature"].startswith("Strongroom-Test-EICAR")
    assert event["details"]["client_id"] == str(clients[0])
    logs = AuditLog.__table__
    with ctx.engine.connect() as conn:
        entries = conn.execute(select(logs.c.action, logs.c.details, logs.c.record_id)
                               .where(logs.c.table_name == "client_files")).all()
    assert [e.action for e in entries] == ["SECURITY"] and str(entries[0].record_id) == str(refused["id"])
    assert "Thaddeus" not in repr(entries) + repr(event)


def test_clamd_down_leaves_file_pending_and_quarantined_until_rescan(ctx, clients, clamd):
    _scanning(ctx, DOWN)
    data = _data(CHUNK_SIZE + 5)
    added = _add(ctx, clients[0], data)
    assert added["virus_scan_status"] == "pending" and "does not answer" in added["scan_note"]
    with pytest.raises(PermissionDenied, match="quarantined.*files:quarantine:read"):
        _get(ctx, added["id"])
    assert _get(ctx, added["id"], INVESTIGATOR) == data       # the permission that says so
    logs = AuditLog.__table__
    with ctx.engine.connect() as conn:
        reads = conn.execute(select(logs.c.details).where(logs.c.action == "READ")).scalars().all()
    assert json.loads(reads[-1])["quarantined"] == "pending"     # the READ says it was quarantined
    with transaction(ctx.engine) as conn:
        health = scan_health(conn, ctx.settings.files)
    assert health["pending"] == 1 and health["answers"] is False
    with pytest.raises(ScannerUnavailable):                   # the job cannot scan either
        _rescan(ctx)
    assert _status(ctx, added["id"]) == ("pending", None)

    _scanning(ctx, clamd.socket)                               # clamd is back
    result = _rescan(ctx)
    assert result["pending"] == 1 and result["clean"] == 1
    assert _status(ctx, added["id"]) == ("clean", None)
    assert _get(ctx, added["id"]) == data
    with transaction(ctx.engine) as conn:
        health = scan_health(conn, ctx.settings.files)
    assert health["pending"] == 0 and health["clean"] == 1 and health["answers"] is True
    assert _rescan(ctx)["pending"] == 0                       # nothing left to do


def test_rescan_finds_a_pending_file_infected_and_removes_it(ctx, clients, clamd):
    _scanning(ctx, DOWN)
    added = _add(ctx, clients[1], EICAR + b" " * 100)
    assert added["virus_scan_status"] == "pending" and _stored(ctx)
    _scanning(ctx, clamd.socket)
    assert _rescan(ctx)["infected"] == 1
    status, deleted_at = _status(ctx, added["id"])
    assert status == "infected" and deleted_at is not None
    assert _stored(ctx) == []
    (event,) = _events(ctx)
    assert event["details"]["file_id"] == str(added["id"]) and event["details"]["found_on"] == "rescan"
    with pytest.raises(Exception):
        _get(ctx, added["id"], INVESTIGATOR)


def test_size_limit_leaves_file_pending_and_fails_the_rescan(ctx, clients, clamd):
    _scanning(ctx, clamd.socket)
    data = _data(STREAM_MAX + CHUNK_SIZE)
    added = _add(ctx, clients[0], data)
    assert added["virus_scan_status"] == "pending" and "size limit exceeded" in added["scan_note"]
    with pytest.raises(StrongroomError, match="1 file\\(s\\) refused by clamd"):
        _rescan(ctx)
    assert _status(ctx, added["id"]) == ("pending", None)
    assert _get(ctx, added["id"], INVESTIGATOR) == data


def test_scanning_off_serves_files_and_rescan_refuses_to_run(ctx, clients):
    added = _add(ctx, clients[0], _data(5000))
    assert added["virus_scan_status"] == "pending"
    assert _get(ctx, added["id"]) == _get(ctx, added["id"], INVESTIGATOR)
    with pytest.raises(StrongroomError, match="scanner is \"off\""):
        _rescan(ctx)


def test_compliance_says_whether_files_are_scanned(ctx, clients, clamd):
    def check():
        found = [c for c in compliance.report(ctx.settings, ctx.engine).checks if "malware" in c.name]
        return found[0] if found else None
    assert check() is None                       # no files and scanning off: nothing to evidence
    _add(ctx, clients[0], _data(5000))
    off = check()
    assert not off.passed and off.evidence["scanner"] == "off" and off.evidence["files_pending_scan"] == 1
    _scanning(ctx, clamd.socket)
    assert not check().passed                    # still one pending
    _rescan(ctx)
    on = check()
    assert on.passed and on.evidence["scanner_answers"] is True and on.evidence["files_clean"] == 1


def test_rescan_of_a_file_removed_meanwhile_changes_nothing(ctx, clients, clamd):
    _scanning(ctx, DOWN)
    added = _add(ctx, clients[0], _data(5000))
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        keys = remove_file(conn, ctx.keyring, READER, target, added["id"])
    delete_objects(target, keys)
    assert rescan_file(ctx.engine, ctx.keyring, READER, target, clamd.client(timeout=10), added["id"]) == "gone"
    assert _status(ctx, added["id"])[0] == "pending" and _events(ctx) == []
