"""Client files in core: content sealed with the client's key in a storage target, on
SQLite and PostgreSQL; tampering, swapping, truncation refused by file id; limits and
names refused before anything is written; permissions; audit without PHI."""
from __future__ import annotations

import hashlib
import json
import os
import uuid

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, ClientFile
from strongroom.core.errors import IntegrityError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.files import content
from strongroom.core.files.repository import (add_file, delete_objects, list_files, open_file, remove_file,
                                              save_download)
from strongroom.core.files.store import open_files_target
from strongroom.core.principal import Principal
from tests.core.conftest import ALL, FILE_NAME, _pieces, fetch_file, file_bytes, file_objects, seed_clients, store_file

def _objects(ctx) -> list:
    return sorted((ctx.settings.data_dir / "files").rglob("*"))


@pytest.fixture
def clients(ctx):
    return seed_clients(ctx, n=3)


def test_round_trip_is_byte_identical_and_listed(ctx, clients):
    data = file_bytes(3 * content.CHUNK_SIZE + 12345)
    added = store_file(ctx, clients[0], data, description="referral letter")
    assert added["size_bytes"] == len(data) and added["virus_scan_status"] == "pending"
    assert fetch_file(ctx, added["id"]) == data
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        (listed,) = list_files(conn, ctx.keyring, ALL, target, clients[0])
        masked = list_files(conn, ctx.keyring, Principal("user:x", frozenset({"table:client_files:read"})),
                            target, clients[0])
    assert listed["name"] == FILE_NAME and listed["description"] == "referral letter"
    assert masked[0]["name"] == "[redacted]" and masked[0]["description"] == "[redacted]"


def test_exact_chunk_multiple_and_one_byte(ctx, clients):
    for data in (file_bytes(2 * content.CHUNK_SIZE), b"x"):
        assert fetch_file(ctx, store_file(ctx, clients[0], data)["id"]) == data


def test_nothing_plain_in_database_or_store(ctx, clients, settings):
    data = file_bytes(content.CHUNK_SIZE + 999, seed=7)
    added = store_file(ctx, clients[0], data)
    marker = b"MARKER-PLAINTEXT-7"
    sha = hashlib.sha256(data).hexdigest()
    for path in _objects(ctx):
        assert sha not in str(path) and str(added["id"]) not in str(path)
        if path.is_file():
            raw = path.read_bytes()
            assert marker not in raw and FILE_NAME.encode() not in raw and sha.encode() not in raw
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(ClientFile.__table__).where(ClientFile.__table__.c.id == added["id"])).mappings().one()
        entries = conn.execute(select(AuditLog.__table__)).mappings().all()
    assert FILE_NAME.encode() not in row["file_name_enc"] and row["sha256"] != sha
    dumped = repr([dict(e) for e in entries])
    assert "Zebediah" not in dumped and sha not in dumped
    if ctx.settings.database.url.startswith("sqlite"):
        db = ctx.settings.database.url.removeprefix("sqlite:///")
        ctx.engine.dispose()
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                raw = open(db + suffix, "rb").read()
                assert b"Zebediah" not in raw and marker not in raw and sha.encode() not in raw


def test_tampered_object_is_refused_naming_the_file(ctx, clients):
    added = store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE + 5))
    first = file_objects(ctx, added["id"])[1]
    raw = bytearray(first.read_bytes())
    raw[40] ^= 1
    first.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"file {added['id']}: chunk 1 failed authentication"):
        fetch_file(ctx, added["id"])


def test_tampered_manifest_is_refused_before_anything_is_read(ctx, clients):
    added = store_file(ctx, clients[0], file_bytes(1000))
    manifest = file_objects(ctx, added["id"])[-1]
    manifest.write_bytes(manifest.read_bytes()[:-1] + b"\0")
    target = open_files_target(ctx.settings)
    with pytest.raises(IntegrityError, match=str(added["id"])):
        with transaction(ctx.engine) as conn:
            open_file(conn, ctx.keyring, ALL, target, added["id"])


def test_chunk_swapped_between_two_files_is_refused(ctx, clients):
    one = store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE + 1, seed=1))
    two = store_file(ctx, clients[0], file_bytes(2 * content.CHUNK_SIZE + 1, seed=2))
    a, b = file_objects(ctx, one["id"])[0], file_objects(ctx, two["id"])[0]
    a.write_bytes(b.read_bytes())
    with pytest.raises(IntegrityError, match=f"file {one['id']}: chunk 0"):
        fetch_file(ctx, one["id"])
    assert len(fetch_file(ctx, two["id"])) == 2 * content.CHUNK_SIZE + 1


def test_reordered_chunks_are_refused(ctx, clients):
    added = store_file(ctx, clients[0], file_bytes(3 * content.CHUNK_SIZE, seed=3))
    c0, c1 = file_objects(ctx, added["id"])[:2]
    first, second = c0.read_bytes(), c1.read_bytes()
    c0.write_bytes(second)
    c1.write_bytes(first)
    with pytest.raises(IntegrityError, match="chunk 0"):
        fetch_file(ctx, added["id"])


def test_truncation_is_refused(ctx, clients):
    """The last chunk removed, or replaced by a not-final chunk: neither reads as a file."""
    added = store_file(ctx, clients[0], file_bytes(3 * content.CHUNK_SIZE, seed=4))
    chunks = file_objects(ctx, added["id"])
    chunks[2].unlink()
    with pytest.raises(IntegrityError, match=f"file {added['id']}: its chunk 2 is missing"):
        fetch_file(ctx, added["id"])
    chunks[2].write_bytes(chunks[1].read_bytes())      # chunk 1 sealed as "not final", index 1
    with pytest.raises(IntegrityError, match="chunk 2 failed authentication"):
        fetch_file(ctx, added["id"])


def test_another_clients_key_is_not_taken_from_the_store(ctx, clients):
    """An object sealed with another client's key (its id in the header) is refused
    even though that key exists and opens it."""
    added = store_file(ctx, clients[0], file_bytes(500, seed=5))
    chunk = file_objects(ctx, added["id"])[0]
    with transaction(ctx.engine) as conn:
        other = ctx.keyring.client_cipher(conn, clients[1])
    chunk.write_bytes(other.encrypt(b"\0" + b"y" * 500, content.chunk_aad(added["id"], 0, True)))
    with pytest.raises(IntegrityError, match="chunk 0"):
        fetch_file(ctx, added["id"])


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b.pdf", "a\\b.pdf", "nul\0.pdf", "bell\x07.pdf",
                                 "..", " lead.pdf", "", "x" * 256, "rtl\u202e.pdf"])
def test_bad_names_are_refused_without_echo_and_nothing_written(ctx, clients, bad):
    with pytest.raises(ValidationError) as err:
        store_file(ctx, clients[0], b"content", name=bad)
    assert (bad.strip() or "@@") not in str(err.value) or bad in ("..",)
    assert not [p for p in _objects(ctx) if p.is_file()]


def test_limits_refused_before_anything_is_written(ctx, clients):
    ctx.settings = ctx.settings.model_copy(update={"files": ctx.settings.files.model_copy(
        update={"max_bytes": 1000})})
    with pytest.raises(ValidationError, match="limit is 1000"):
        store_file(ctx, clients[0], b"z" * 1001)
    with pytest.raises(ValidationError, match="empty"):
        store_file(ctx, clients[0], b"")
    with pytest.raises(ValidationError, match="application/x-msdownload is not allowed"):
        store_file(ctx, clients[0], b"MZ", content_type="application/x-msdownload")
    with pytest.raises(ValidationError, match="type/subtype"):
        store_file(ctx, clients[0], b"MZ", content_type="../../x")
    assert store_file(ctx, clients[0], b"png", content_type="image/png")["content_type"] == "image/png"
    assert len([p for p in _objects(ctx) if p.is_file()]) == 2     # the png: one chunk, one manifest


def test_more_content_than_declared_is_abandoned(ctx, clients):
    target = open_files_target(ctx.settings)
    with pytest.raises(ValidationError, match="declared"):
        with transaction(ctx.engine) as conn:
            add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, clients[0], name="a.pdf",
                     content_type="application/pdf", size=10, content=[b"x" * 8, b"x" * 8])
    with pytest.raises(ValidationError, match="received 8 of the declared 10"):
        with transaction(ctx.engine) as conn:
            add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, clients[0], name="a.pdf",
                     content_type="application/pdf", size=10, content=[b"x" * 8])
    assert not [p for p in _objects(ctx) if p.is_file()]
    with transaction(ctx.engine) as conn:
        assert conn.execute(select(ClientFile.__table__)).all() == []


def _full_after_one_chunk(ctx, fail_nth_put):
    """The files target, whose disk fills up after the first object it stores."""
    target = open_files_target(ctx.settings)
    fail_nth_put(target, 2)
    return target


def test_failing_store_leaves_no_row(ctx, clients, fail_nth_put):
    target = _full_after_one_chunk(ctx, fail_nth_put)
    data = file_bytes(3 * content.CHUNK_SIZE)
    with pytest.raises(OSError):
        with transaction(ctx.engine) as conn:
            add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, clients[0], name="a.pdf",
                     content_type="application/pdf", size=len(data), content=_pieces(data))
    with transaction(ctx.engine) as conn:
        assert conn.execute(select(ClientFile.__table__)).all() == []
    assert not [p for p in _objects(ctx) if p.is_file()]   # the chunk stored before is deleted again


def test_a_failing_cleanup_does_not_hide_why_the_add_failed(ctx, clients, monkeypatch, fail_nth_put, caplog):
    """The store fails mid-upload, then deleting what was stored fails too: the caller
    still gets the store's error (the cause), the leftover chunk is logged without any
    name or content, and no row exists (the integrity run removes orphans)."""
    target = _full_after_one_chunk(ctx, fail_nth_put)

    def failing_delete(key):
        raise PermissionError("read-only store")
    monkeypatch.setattr(target, "delete", failing_delete)
    data = file_bytes(3 * content.CHUNK_SIZE)
    with pytest.raises(OSError, match="disk full"):
        with transaction(ctx.engine) as conn:
            add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, clients[0], name="Quillon.pdf",
                     content_type="application/pdf", size=len(data), content=_pieces(data))
    with transaction(ctx.engine) as conn:
        assert conn.execute(select(ClientFile.__table__)).all() == []
    assert "could not delete" in caplog.text and "Quillon" not in caplog.text


def test_permissions(ctx, clients):
    added = store_file(ctx, clients[0], b"abc")
    reader = Principal("user:r", frozenset({"table:client_files:read"}))
    with pytest.raises(PermissionDenied, match="table:client_files:write"):
        store_file(ctx, clients[0], b"abc", principal=reader)
    with pytest.raises(PermissionDenied, match="phi:read"):
        fetch_file(ctx, added["id"], principal=reader)
    with pytest.raises(PermissionDenied, match="table:client_files:read"):
        fetch_file(ctx, added["id"], principal=Principal("user:s", frozenset({"phi:read"})))
    target = open_files_target(ctx.settings)
    with pytest.raises(PermissionDenied, match="table:client_files:delete"):
        with transaction(ctx.engine) as conn:
            remove_file(conn, ctx.keyring, reader, target, added["id"])


def test_add_get_remove_audited_and_remove_deletes_objects(ctx, clients):
    added = store_file(ctx, clients[0], file_bytes(content.CHUNK_SIZE + 1))
    fetch_file(ctx, added["id"])
    assert len([p for p in _objects(ctx) if p.is_file()]) == 3
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        keys = remove_file(conn, ctx.keyring, ALL, target, added["id"])
    assert delete_objects(target, keys) == 3
    assert not [p for p in _objects(ctx) if p.is_file()]
    with transaction(ctx.engine) as conn:
        entries = conn.execute(select(AuditLog.__table__).where(AuditLog.__table__.c.table_name == "client_files")
                               .order_by(AuditLog.__table__.c.id)).mappings().all()
        row = conn.execute(select(ClientFile.__table__)).mappings().one()
    assert [(e["action"], e["record_id"]) for e in entries] == [
        ("CREATE", str(added["id"])), ("READ", str(added["id"])), ("DELETE", str(added["id"]))]
    assert json.loads(entries[1]["details"])["phi"] is True
    assert row["deleted_at"] is not None
    with pytest.raises(NotFoundError, match=str(added["id"])):
        fetch_file(ctx, added["id"])


def test_unknown_client_and_file(ctx, clients):
    with pytest.raises(NotFoundError):
        store_file(ctx, uuid.uuid4(), b"abc")
    with pytest.raises(NotFoundError):
        fetch_file(ctx, uuid.uuid4())


def test_save_download_writes_the_file_whole_or_leaves_nothing(ctx, clients, tmp_path):
    """save_download: the content in a temporary file beside the target, renamed in only
    after the last chunk (handed out only once the whole matched its hash); a tampered
    chunk leaves neither the target nor a temporary file."""
    data = file_bytes(3 * content.CHUNK_SIZE + 777, seed=9)
    added = store_file(ctx, clients[0], data)
    target = open_files_target(ctx.settings)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, ALL, target, added["id"])
    assert save_download(download, out_dir / "copy.pdf") == len(data)
    assert (out_dir / "copy.pdf").read_bytes() == data and sorted(p.name for p in out_dir.iterdir()) == ["copy.pdf"]
    last = file_objects(ctx, added["id"])[3]
    raw = bytearray(last.read_bytes())
    raw[-3] ^= 1
    last.write_bytes(bytes(raw))
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, ALL, target, added["id"])
    with pytest.raises(IntegrityError, match=f"file {added['id']}: chunk 3 failed authentication"):
        save_download(download, out_dir / "again.pdf")
    assert sorted(p.name for p in out_dir.iterdir()) == ["copy.pdf"]
