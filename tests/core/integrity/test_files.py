"""The files check: every live file row has its objects (a missing chunk or manifest
fails, naming the file), content is read back as recorded (every file with `full`),
objects no live row names are orphans (a warning with counts), removed only with
`remove_orphans` and only once older than the grace period (never an upload in
progress); an erasure whose object deletes failed leaves orphans this check removes."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import IntegrityCheck
from strongroom.core.files import content
from strongroom.core.files.repository import begin_add, commit_add
from strongroom.core.files.store import open_files_target
from strongroom.core.integrity.files import check_files
from strongroom.core.jobs import integrity
from strongroom.core.retention import erasure
from strongroom.core.storage.base import StorageError
from tests.core.conftest import ALL, FILE_NAME, fetch_file, file_bytes, file_objects, seed_clients, store_file

NOW = timedelta(0)


def _quiet(*_):
    pass


@pytest.fixture
def clients(ctx):
    return seed_clients(ctx, n=3)


def _stored(ctx) -> list:
    return sorted(p for p in (ctx.settings.data_dir / "files").rglob("*") if p.is_file())


def _check(ctx, **kw):
    return check_files(ctx, _quiet, **{"full": True, "remove_orphans": False, **kw})


def _half_upload(ctx, client_id, data: bytes):
    """An add whose content is all stored but whose row is not written yet."""
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        upload = begin_add(conn, ctx.keyring, ALL, target, ctx.settings.files, client_id, name="late.pdf",
                           content_type="application/pdf", size=len(data))
    upload.write(data)
    upload.writer.drain()          # the writer's threads have stored every full chunk
    return upload


def test_a_clean_store_passes_with_every_file_read_back(ctx, clients):
    store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE + 7))
    store_file(ctx, clients[1], b"one small file")
    check = _check(ctx)
    assert check["status"] == "ok", check
    evidence = check["evidence"]
    assert (evidence["files_checked"], evidence["content_read"], evidence["objects_stored"]) == (2, 2, 6)
    assert evidence["orphan_objects"] == 0 and evidence["ids"] == []
    with ctx.engine.connect() as conn:
        assert conn.execute(select(IntegrityCheck.__table__.c.status).where(
            IntegrityCheck.__table__.c.check_type == "files")).scalar_one() == "ok"


@pytest.mark.parametrize("lost", [0, -1], ids=["chunk", "manifest"])
def test_a_missing_object_fails_naming_the_file_and_nothing_else(ctx, clients, lost):
    gone = store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE + 1))
    kept = store_file(ctx, clients[1], b"fine")
    file_objects(ctx, gone["id"])[lost].unlink()
    check = _check(ctx, full=False, sample=0)      # found by the listing, without reading content
    assert check["status"] == "fail"
    assert check["evidence"]["incomplete_files"] == 1 and check["evidence"]["ids"] == [str(gone["id"])]
    assert str(kept["id"]) not in json.dumps(check)


def test_tampered_content_fails_when_read_and_full_reads_every_file(ctx, clients):
    bad = store_file(ctx, clients[0], file_bytes(content.CHUNK_SIZE + 3))
    for n in range(3):
        store_file(ctx, clients[1], file_bytes(1000, seed=n))
    chunk = file_objects(ctx, bad["id"])[1]
    raw = bytearray(chunk.read_bytes())
    raw[-5] ^= 1
    chunk.write_bytes(bytes(raw))
    sampled = _check(ctx, full=False, sample=0)
    assert sampled["status"] == "ok" and sampled["evidence"]["content_read"] == 0
    full = _check(ctx, sample=1)
    assert full["status"] == "fail" and full["evidence"]["content_read"] == 4
    assert full["evidence"]["content_mismatched"] == 1 and full["evidence"]["ids"] == [str(bad["id"])]
    assert b"MARKER" not in json.dumps(full).encode()


def test_orphans_warn_and_go_only_with_remove_orphans_once_past_the_grace(ctx, clients):
    live = store_file(ctx, clients[0], file_bytes(content.CHUNK_SIZE + 9, seed=3))
    upload = _half_upload(ctx, clients[1], file_bytes(content.CHUNK_SIZE + 5, seed=4))
    upload.writer.finish()                     # a crash before the row: three orphan objects
    listed = _check(ctx, grace=NOW)           # old enough, but not asked to remove
    assert listed["status"] == "warn" and listed["evidence"]["orphan_objects"] == 3
    assert listed["evidence"]["orphans_removed"] == 0 and len(_stored(ctx)) == 6
    recent = _check(ctx, remove_orphans=True)
    assert recent["evidence"]["orphans_too_recent"] == 3 and len(_stored(ctx)) == 6
    removed = _check(ctx, remove_orphans=True, grace=NOW)
    assert removed["evidence"]["orphans_removed"] == 3 and len(_stored(ctx)) == 3
    assert _check(ctx)["status"] == "ok"
    assert len(fetch_file(ctx, live["id"])) == content.CHUNK_SIZE + 9


def test_an_upload_in_progress_is_not_removed_and_commits_whole(ctx, clients):
    data = file_bytes(2 * content.CHUNK_SIZE + 11, seed=5)
    upload = _half_upload(ctx, clients[0], data)
    check = _check(ctx, remove_orphans=True)
    assert check["evidence"]["orphan_objects"] == 2 and check["evidence"]["orphans_too_recent"] == 2
    with transaction(ctx.engine) as conn:
        added = commit_add(conn, ALL, upload)
    assert fetch_file(ctx, added["id"]) == data


def test_an_erasure_whose_deletes_fail_is_done_and_its_objects_removed_by_the_check(ctx, clients):
    gone = store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE, seed=6))
    kept = store_file(ctx, clients[1], b"another client's letter")
    target = open_files_target(ctx.settings)

    def failing_delete(key):
        raise StorageError("files store: delete refused (synthetic)")
    target.delete = failing_delete
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=clients[0], actor="user:alice", reason="ref 12")
    done = erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob", files=target)
    assert done["status"] == "executed" and done["erased"]["keys_destroyed"] >= 1
    assert done["file_objects"] == {"files": 1, "objects_deleted": 0, "objects_failed": 3,
                                    "failed_file_ids": [str(gone["id"])]}
    assert len(_stored(ctx)) == 5
    check = _check(ctx, remove_orphans=True, grace=NOW)
    assert check["status"] == "warn" and check["evidence"]["orphans_removed"] == 3
    assert len(_stored(ctx)) == 2 and fetch_file(ctx, kept["id"]) == b"another client's letter"


def test_the_job_runs_the_check_by_name_with_remove_orphans(ctx, clients):
    store_file(ctx, clients[0], b"abc")
    upload = _half_upload(ctx, clients[1], b"orphaned")
    upload.writer.finish()
    result = integrity.run(ctx, {"checks": "files", "remove_orphans": "true"}, _quiet)
    (check,) = result["checks"]
    assert check["name"] == "client file content" and check["status"] == "warn"
    assert check["evidence"]["orphan_objects"] == 2 and check["evidence"]["orphans_too_recent"] == 2
    assert result["warnings"] == ["client file content"] and FILE_NAME not in json.dumps(result, default=str)
