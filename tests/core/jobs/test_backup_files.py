"""Client file content in backups (issue 19 item 3), on SQLite and PostgreSQL: restored
byte-identical into a fresh target and proven by hash, incrementals carry only new
files, the same object is stored once across full backups, a tampered object is found
by verify and refused by restore naming the file, and a failed restore leaves the
target's files store as it was."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from strongroom.core.backup import snapshots
from strongroom.core.backup.layout import chunk_key
from strongroom.core.backup.repository import open_repository
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.errors import ConflictError, IntegrityError, KeyUnavailableError, NotFoundError, ValidationError
from strongroom.core.files import content
from strongroom.core.files.repository import add_file, open_file, remove_file, delete_objects
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import backup, restore, restore_drill, verify
from strongroom.core.principal import Principal
from strongroom.core.storage import open_target
from strongroom.core.storage.base import StorageError
from tests.core.conftest import seed_clients, with_backup_target

ALL = Principal("user:tester", frozenset({"*"}))
quiet = lambda *a: None  # noqa: E731


def _add(ctx, client_id, data: bytes) -> uuid.UUID:
    target = open_files_target(ctx.settings)
    pieces = (data[i:i + 400_000] for i in range(0, len(data), 400_000))
    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, client_id, name="consent.pdf",
                        content_type="application/pdf", size=len(data), content=pieces)["id"]


def _get(engine, keyring, store, file_id) -> bytes:
    with transaction(engine) as conn:
        download = open_file(conn, keyring, ALL, store, file_id)
        return b"".join(download.chunks)


def _data(n: int) -> bytes:
    return os.urandom(n // 2) + b"consent text " * (n // 26) + b"x" * (n - n // 2 - 13 * (n // 26))


def _objects(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def setup(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    clients = seed_clients(ctx, n=4)
    repo_root = tmp_path / "repo"
    return ctx, clients, repo_root


def _repo(ctx):
    return open_repository(open_target(ctx.settings.backup.target), ctx.keyring)


def test_backup_with_files_restores_into_a_fresh_target_byte_identical(setup, tmp_path):
    ctx, clients, _ = setup
    big = _data(2 * content.CHUNK_SIZE + 777)
    small = b"signed consent"
    ids = [_add(ctx, clients[0], big), _add(ctx, clients[1], small)]
    result = backup.run(ctx, {}, quiet)
    assert result["files"]["files"] == 2 and result["files"]["objects"] == 4 + 2
    assert result["files"]["plain_bytes"] == len(big) + len(small) and result["files"]["added_objects"] == 6
    repo = _repo(ctx)
    snapshot_id = uuid.UUID(result["snapshot_id"])
    shown = snapshots.describe_snapshot(ctx, repo, snapshot_id)
    assert shown["files"]["files"] == 2 and shown["files"]["stored_bytes"] > len(big) // 2  # the random half does not compress

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = restore.run(ctx, {"snapshot_id": str(snapshot_id), "dest": f"sqlite:///{fresh / 'strongroom.db'}"}, quiet)
    assert done["files"] == {"files": 2, "objects": 6, "bytes": done["files"]["bytes"], "not_restored": 0}
    store = open_target(str(fresh / "files"))
    live_store = ctx.settings.data_dir / "files"
    assert _objects(fresh / "files") == _objects(live_store)
    engine = make_engine(f"sqlite:///{fresh / 'strongroom.db'}")
    try:
        assert _get(engine, ctx.keyring, store, ids[0]) == big
        assert _get(engine, ctx.keyring, store, ids[1]) == small
    finally:
        engine.dispose()


def test_a_restore_with_files_counts_one_unit_the_records_restored(setup, tmp_path):
    """One unit per run: a restore with client files counts records (each file's content,
    then each row) against one total from its first event to its last, so its bar never
    restarts at 0 of another unit (it counted 2 of 2 files, then rows of the tables)."""
    ctx, clients, _ = setup
    _add(ctx, clients[0], b"signed consent")
    _add(ctx, clients[1], b"intake form")
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    seen: list[tuple[int, int | None, str]] = []
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{fresh / 'strongroom.db'}"},
                lambda done, total, message: seen.append((done, total, message)))
    files = [s for s in seen if s[2] == "restoring client files"]
    rows = [s for s in seen if s[2].startswith("restored ")]
    assert [done for done, _, _ in files] == [1, 2] and rows
    (total,) = {total for _, total, _ in files + rows}
    assert rows[0][0] > 2 and rows[-1][0] == total              # the rows carry on from the files
    assert [done for done, _, _ in files + rows] == sorted(done for done, _, _ in files + rows)


def test_incremental_carries_only_the_new_file(setup):
    ctx, clients, repo_root = setup
    first_id = _add(ctx, clients[0], _data(3 * content.CHUNK_SIZE))
    first = backup.run(ctx, {}, quiet)
    chunks_before = _objects(repo_root / "chunks")
    second_id = _add(ctx, clients[1], b"a referral letter, one chunk")
    second = backup.run(ctx, {}, quiet)
    assert first["kind"] == "full" and second["kind"] == "incremental"
    assert second["files"]["files"] == 2
    assert second["files"]["added_objects"] == 2          # the new file's chunk and manifest, nothing else
    new_chunks = _objects(repo_root / "chunks") - chunks_before
    manifest = _repo(ctx).read_manifest(uuid.UUID(second["snapshot_id"]))
    by_id = {e.file_id: e for e in manifest.files.files}
    assert {chunk_key(o.chunk.address)[len("chunks/"):] for o in by_id[second_id].objects} <= new_chunks
    assert not {chunk_key(o.chunk.address)[len("chunks/"):] for o in by_id[first_id].objects} & new_chunks
    # The incremental restores on its own, both files included.
    result = restore_drill.run(ctx, {}, quiet)
    assert result["files"]["files"] == 2 and result["files"]["not_restored"] == 0


def test_two_full_backups_store_each_file_object_once(setup):
    ctx, clients, repo_root = setup
    _add(ctx, clients[0], _data(2 * content.CHUNK_SIZE + 5))
    first = backup.run(ctx, {"full": True}, quiet)
    count = len(_objects(repo_root / "chunks"))
    second = backup.run(ctx, {"full": True}, quiet)
    assert second["kind"] == "full" and second["files"]["files"] == 1
    assert second["files"]["added_objects"] == 0 and second["files"]["added_bytes"] == 0
    repo = _repo(ctx)
    a, b = (repo.read_manifest(uuid.UUID(r["snapshot_id"])) for r in (first, second))
    assert [o.chunk.address for o in a.files.files[0].objects] == [o.chunk.address for o in b.files.files[0].objects]
    new = _objects(repo_root / "chunks")
    file_chunks = {chunk_key(o.chunk.address)[len("chunks/"):] for o in a.files.files[0].objects}
    assert file_chunks <= new and len(new) - count <= len(b.tables)   # only table chunks could differ


def test_tampered_file_chunk_is_found_by_verify_and_refused_by_restore(setup, tmp_path):
    ctx, clients, repo_root = setup
    file_id = _add(ctx, clients[0], _data(content.CHUNK_SIZE + 10))
    result = backup.run(ctx, {}, quiet)
    repo = _repo(ctx)
    snapshot_id = uuid.UUID(result["snapshot_id"])
    assert verify.run(ctx, {"read_data": True}, quiet)["failed"] == 0
    obj = repo.read_manifest(snapshot_id).files.files[0].objects[1]
    path = repo_root / chunk_key(obj.chunk.address)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as err:
        verify.run(ctx, {"read_data": True}, quiet)
    assert str(file_id) in str(err.value)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(IntegrityError) as err:
        restore.run(ctx, {"snapshot_id": str(snapshot_id), "dest": f"sqlite:///{fresh / 'strongroom.db'}"}, quiet)
    assert str(file_id) in str(err.value) and "consent" not in str(err.value)
    assert _objects(fresh / "files") == set()            # nothing half-written
    assert not (fresh / "strongroom.db").exists() or (fresh / "strongroom.db").stat().st_size == 0
    with pytest.raises(IntegrityError):
        restore_drill.run(ctx, {}, quiet)


def test_a_restore_whose_database_fails_leaves_the_files_store_as_it_was(setup, tmp_path):
    ctx, clients, _ = setup
    _add(ctx, clients[0], b"intake form")
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    dest = f"sqlite:///{fresh / 'strongroom.db'}"
    restore.run(ctx, {"snapshot_id": snapshot_id, "dest": dest}, quiet)
    other = tmp_path / "other-files"
    # The target now holds data: without force the database restore is refused after
    # the files were written, and every object it wrote is removed again.
    with pytest.raises(ConflictError):
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": dest, "files_dest": str(other)}, quiet)
    assert _objects(other) == set()


def test_restored_file_objects_are_durable_before_the_restore_goes_on(setup, tmp_path, monkeypatch):
    """The objects are written as one put batch and synced before the database is
    restored; a disk error reported only at that sync fails the restore, naming the
    store, and removes every object it wrote."""
    from strongroom.core.storage.local import PutBatch
    ctx, clients, _ = setup
    _add(ctx, clients[0], _data(2 * content.CHUNK_SIZE + 1))
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    synced = []
    real_sync = PutBatch.sync
    monkeypatch.setattr(PutBatch, "sync", lambda self: (synced.append(len(self._open)), real_sync(self))[1])
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{fresh / 'strongroom.db'}"}, quiet)
    assert done["files"]["objects"] == 4 and synced == [4]
    real_fsync = os.fsync
    other = tmp_path / "other"
    other.mkdir()
    failures = [OSError(5, "Input/output error")]

    def fsync_fails_once(fd):     # the first fsync of a restored object fails
        if failures and os.readlink(f"/proc/self/fd/{fd}").startswith(str(other / "files")):
            raise failures.pop()
        return real_fsync(fd)
    monkeypatch.setattr("strongroom.core.storage.local.os.fsync", fsync_fails_once)
    with pytest.raises(StorageError, match="Input/output error"):
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{other / 'strongroom.db'}"}, quiet)
    assert not failures and not [p for p in (other / "files").rglob("*") if p.is_file()]


def test_postgresql_dest_needs_files_dest_before_anything_is_written(setup):
    ctx, clients, _ = setup
    _add(ctx, clients[0], b"intake form")
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    with pytest.raises(ValidationError) as err:
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": "postgresql+psycopg://postgres@127.0.0.1/nowhere"},
                    quiet)
    assert "files_dest" in str(err.value)


def test_removed_files_leave_the_next_snapshot_and_prune_keeps_listed_objects(setup):
    ctx, clients, _ = setup
    keep = _add(ctx, clients[0], b"keep me")
    gone = _add(ctx, clients[1], b"remove me")
    backup.run(ctx, {}, quiet)
    store = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        keys = remove_file(conn, ctx.keyring, ALL, store, gone)
    delete_objects(store, keys)
    later = backup.run(ctx, {}, quiet)
    repo = _repo(ctx)
    manifest = repo.read_manifest(uuid.UUID(later["snapshot_id"]))
    assert [e.file_id for e in manifest.files.files] == [keep]
    referenced = repo.referenced_chunks([manifest])
    assert all(chunk_key(o.chunk.address) in referenced for o in manifest.files.files[0].objects)


def test_lost_content_is_counted_and_the_integrity_check_reports_it(setup):
    from strongroom.core.integrity.backups import check_backups

    ctx, clients, _ = setup
    _add(ctx, clients[0], b"kept")
    lost = _add(ctx, clients[1], b"lost from the store")
    store_root = ctx.settings.data_dir / "files"
    before = _objects(store_root)
    backup.run(ctx, {}, quiet)
    manifest_key = next(e.objects[-1].key for e in _repo(ctx).read_manifest(
        _repo(ctx).list_snapshots()[-1]).files.files if e.file_id == lost)
    assert manifest_key in before
    (store_root / manifest_key).unlink()             # the content is gone, its row is not
    result = backup.run(ctx, {"full": True}, quiet)
    assert result["files"]["files"] == 1 and result["files"]["missing"] == 1
    finding = check_backups(ctx, quiet)
    (config,) = finding["evidence"]["findings"].values()
    assert config["files"] == {"count": 1, "bytes": 4, "missing": 1}
    assert any("lacks 1 file" in p for p in config["problems"])


def test_a_restore_never_writes_into_the_live_files_store(setup):
    ctx, clients, _ = setup
    _add(ctx, clients[0], b"intake form")
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    live = ctx.settings.data_dir / "files"
    before = {p: p.stat().st_mtime_ns for p in live.rglob("*") if p.is_file()}
    for params in ({"dest": f"sqlite:///{ctx.settings.data_dir / 'restored.db'}"},
                   {"dest": f"sqlite:///{ctx.settings.data_dir.parent / 'x.db'}", "files_dest": str(live) + "/"}):
        with pytest.raises(ValidationError) as err:
            restore.run(ctx, {"snapshot_id": snapshot_id, **params}, quiet)
        assert "files_dest" in str(err.value) and "live files store" in str(err.value)
    assert {p: p.stat().st_mtime_ns for p in live.rglob("*") if p.is_file()} == before
    assert not (ctx.settings.data_dir / "restored.db").exists()


def test_an_erased_clients_backed_up_files_restore_unreadable(setup, tmp_path):
    """The objects are kept sealed under the client's key, so destroying that key
    (erasure) reaches every backed-up copy: restored, they are there but do not open."""
    from strongroom.core import audit
    from strongroom.core.retention import erasure

    ctx, clients, _ = setup
    erased = _add(ctx, clients[0], b"erase me: a signed consent")
    kept = _add(ctx, clients[1], b"keep me")
    snapshot_id = backup.run(ctx, {}, quiet)["snapshot_id"]
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=clients[0], actor="user:alice", reason="ref 1")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob", files=open_files_target(ctx.settings))
    backup.run(ctx, {}, quiet)                        # rewrites the key bag without the erased key
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{fresh / 'strongroom.db'}"}, quiet)
    assert done["files"]["files"] == 2
    engine = make_engine(f"sqlite:///{fresh / 'strongroom.db'}")
    audit.seal_with(engine, ctx.keyring)
    store = open_target(str(fresh / "files"))
    try:
        from strongroom.core.crypto.keyring import Keyring
        from strongroom.core.crypto.kek import load_keks
        fresh_keyring = Keyring(load_keks(ctx.settings.keys))   # no cached key from before the erasure
        assert _get(engine, fresh_keyring, store, kept) == b"keep me"
        with pytest.raises(NotFoundError):            # the erased client's rows restore as tombstones
            _get(engine, fresh_keyring, store, erased)
        # ... and its objects, restored byte for byte, open with no key the restored database holds.
        from strongroom.core.db.models import ClientFile
        from strongroom.core.files.repository import _cipher_for
        with transaction(engine) as conn:
            row = conn.execute(select(ClientFile.__table__).where(ClientFile.__table__.c.id == erased)).mappings().one()
            opener = _cipher_for(conn, fresh_keyring, row["client_id"])
        assert store.exists(row["storage_key"])
        with pytest.raises(IntegrityError) as err:
            content.read_manifest(store, opener, erased, row["storage_key"])
        assert "failed authentication" in str(err.value)
        with pytest.raises(KeyUnavailableError):
            with transaction(engine) as conn:
                fresh_keyring.cipher(conn, row["key_id"])
    finally:
        engine.dispose()


def test_a_snapshot_with_files_is_format_3_and_one_without_stays_format_2(setup):
    ctx, clients, _ = setup
    plain = backup.run(ctx, {}, quiet)
    assert plain["files"] is None
    _add(ctx, clients[0], b"intake form")
    with_files = backup.run(ctx, {}, quiet)
    repo = _repo(ctx)
    first, second = (repo.read_manifest(uuid.UUID(r["snapshot_id"])) for r in (plain, with_files))
    assert (first.format, first.files) == (2, None)
    assert second.format == 3 and second.files.count == 1 and second.kind == "incremental"
    stored = (_repo(ctx).target.get(f"snapshots/{first.snapshot_id}.json"))
    assert b'"files"' not in stored                 # older Strongroom versions read it as before


def test_fast_verify_finds_a_missing_file_object(setup):
    ctx, clients, repo_root = setup
    _add(ctx, clients[0], b"referral letter")
    snapshot_id = uuid.UUID(backup.run(ctx, {}, quiet)["snapshot_id"])
    assert verify.run(ctx, {}, quiet)["failed"] == 0
    obj = _repo(ctx).read_manifest(snapshot_id).files.files[0].objects[0]
    (repo_root / chunk_key(obj.chunk.address)).unlink()
    with pytest.raises(IntegrityError) as err:
        verify.run(ctx, {}, quiet)
    assert chunk_key(obj.chunk.address) in str(err.value) and "missing" in str(err.value)


@pytest.mark.parametrize("read_data", [False, True], ids=["fast", "read-data"])
def test_a_verify_of_several_snapshots_counts_bytes_against_one_total(setup, read_data):
    """One unit per run: verifying every snapshot counts the bytes checked, the client
    files' content too when reading back, against one total for the whole run (it started
    again at 0 of another total for each snapshot)."""
    ctx, clients, _ = setup
    _add(ctx, clients[0], _data(content.CHUNK_SIZE + 10))
    backup.run(ctx, {}, quiet)
    _add(ctx, clients[1], b"intake form")
    backup.run(ctx, {"full": True}, quiet)
    seen: list[tuple[int, int | None, str]] = []
    assert verify.run(ctx, {"read_data": read_data},
                      lambda done, total, message: seen.append((done, total, message)))["failed"] == 0
    (total,) = {total for _, total, _ in seen}
    assert any(m.startswith("snapshot 1/2") for *_, m in seen) and any(m.startswith("snapshot 2/2") for *_, m in seen)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen) and seen[-1][0] == total
