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
from strongroom.core.files.repository import add_file, delete_objects, list_files, open_file, remove_file
from strongroom.core.files.store import open_files_target
from strongroom.core.principal import Principal
from tests.core.conftest import seed_clients

ALL = Principal("user:tester", frozenset({"*"}))
NAME = "intake form Zebediah-Quorn.pdf"


def _pieces(data: bytes, size: int = 300_000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _add(ctx, client_id, data: bytes, *, name=NAME, principal=ALL, content_type="application/pdf", **kw):
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, principal, target, ctx.settings.files, client_id, name=name,
                        content_type=content_type, size=len(data), content=_pieces(data), **kw)


def _get(ctx, file_id, principal=ALL) -> bytes:
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, principal, target, file_id)
        return b"".join(download.chunks)


def _objects(ctx) -> list:
    return sorted((ctx.settings.data_dir / "files").rglob("*"))


@pytest.fixture
def clients(ctx):
    return seed_clients(ctx, n=3)


def _data(n: int, seed: int = 1) -> bytes:
    """Half repetitive (compresses), half random (does not), with a marker to grep for."""
    rnd = os.urandom(n // 2)
    unit = b"MARKER-PLAINTEXT-%d " % seed
    text = unit * ((n - len(rnd)) // len(unit) + 1)
    data = text[: n - len(rnd)] + rnd
    assert len(data) == n
    return data


def test_round_trip_is_byte_identical_and_listed(ctx, clients):
    data = _data(3 * content.CHUNK_SIZE + 12345)
    added = _add(ctx, clients[0], data, description="referral letter")
    assert added["size_bytes"] == len(data) and added["virus_scan_status"] == "pending"
    assert _get(ctx, added["id"]) == data
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        (listed,) = list_files(conn, ctx.keyring, ALL, target, clients[0])
        masked = list_files(conn, ctx.keyring, Principal("user:x", frozenset({"table:client_files:read"})),
                            target, clients[0])
    assert listed["name"] == NAME and listed["description"] == "referral letter"
    assert masked[0]["name"] == "[redacted]" and masked[0]["description"] == "[redacted]"


def test_exact_chunk_multiple_and_one_byte(ctx, clients):
    for data in (_data(2 * content.CHUNK_SIZE), b"x"):
        assert _get(ctx, _add(ctx, clients[0], data)["id"]) == data


def test_nothing_plain_in_database_or_store(ctx, clients, settings):
    data = _data(content.CHUNK_SIZE + 999, seed=7)
    added = _add(ctx, clients[0], data)
    marker = b"MARKER-PLAINTEXT-7"
    sha = hashlib.sha256(data).hexdigest()
    for path in _objects(ctx):
        assert sha not in str(path) and str(added["id"]) not in str(path)
        if path.is_file():
            raw = path.read_bytes()
            assert marker not in raw and NAME.encode() not in raw and sha.encode() not in raw
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(ClientFile.__table__).where(ClientFile.__table__.c.id == added["id"])).mappings().one()
        entries = conn.execute(select(AuditLog.__table__)).mappings().all()
    assert NAME.encode() not in row["file_name_enc"] and row["sha256"] != sha
    dumped = repr([dict(e) for e in entries])
    assert "Zebediah" not in dumped and sha not in dumped
    if ctx.settings.database.url.startswith("sqlite"):
        db = ctx.settings.database.url.removeprefix("sqlite:///")
        ctx.engine.dispose()
        for suffix in ("", "-wal"):
            if os.path.exists(db + suffix):
                raw = open(db + suffix, "rb").read()
                assert b"Zebediah" not in raw and marker not in raw and sha.encode() not in raw


def _chunk_files(ctx, file_id) -> list:
    """The chunk objects of a file, in order (through its manifest), then the manifest."""
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(ClientFile.__table__).where(ClientFile.__table__.c.id == file_id)).mappings().one()
        manifest = content.read_manifest(target, lambda k: ctx.keyring.cipher(conn, k), file_id, row["storage_key"])
    root = ctx.settings.data_dir / "files"
    return [root / key for key in manifest["chunks"]] + [root / row["storage_key"]]


def test_tampered_object_is_refused_naming_the_file(ctx, clients):
    added = _add(ctx, clients[0], _data(2 * content.CHUNK_SIZE + 5))
    first = _chunk_files(ctx, added["id"])[1]
    raw = bytearray(first.read_bytes())
    raw[40] ^= 1
    first.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"file {added['id']}: chunk 1 failed authentication"):
        _get(ctx, added["id"])


def test_tampered_manifest_is_refused_before_anything_is_read(ctx, clients):
    added = _add(ctx, clients[0], _data(1000))
    manifest = _chunk_files(ctx, added["id"])[-1]
    manifest.write_bytes(manifest.read_bytes()[:-1] + b"\0")
    target = open_files_target(ctx.settings)
    with pytest.raises(IntegrityError, match=str(added["id"])):
        with transaction(ctx.engine) as conn:
            open_file(conn, ctx.keyring, ALL, target, added["id"])


def test_chunk_swapped_between_two_files_is_refused(ctx, clients):
    one = _add(ctx, clients[0], _data(2 * content.CHUNK_SIZE + 1, seed=1))
    two = _add(ctx, clients[0], _data(2 * content.CHUNK_SIZE + 1, seed=2))
    a, b = _chunk_files(ctx, one["id"])[0], _chunk_files(ctx, two["id"])[0]
    a.write_bytes(b.read_bytes())
    with pytest.raises(IntegrityError, match=f"file {one['id']}: chunk 0"):
        _get(ctx, one["id"])
    assert len(_get(ctx, two["id"])) == 2 * content.CHUNK_SIZE + 1


def test_reordered_chunks_are_refused(ctx, clients):
    added = _add(ctx, clients[0], _data(3 * content.CHUNK_SIZE, seed=3))
    c0, c1 = _chunk_files(ctx, added["id"])[:2]
    first, second = c0.read_bytes(), c1.read_bytes()
    c0.write_bytes(second)
    c1.write_bytes(first)
    with pytest.raises(IntegrityError, match="chunk 0"):
        _get(ctx, added["id"])


def test_truncation_is_refused(ctx, clients):
    """The last chunk removed, or replaced by a not-final chunk: neither reads as a file."""
    added = _add(ctx, clients[0], _data(3 * content.CHUNK_SIZE, seed=4))
    chunks = _chunk_files(ctx, added["id"])
    chunks[2].unlink()
    with pytest.raises(IntegrityError, match=f"file {added['id']}: its chunk 2 is missing"):
        _get(ctx, added["id"])
    chunks[2].write_bytes(chunks[1].read_bytes())      # chunk 1 sealed as "not final", index 1
    with pytest.raises(IntegrityError, match="chunk 2 failed authentication"):
        _get(ctx, added["id"])


def test_another_clients_key_is_not_taken_from_the_store(ctx, clients):
    """An object sealed with another client's key (its id in the header) is refused
    even though that key exists and opens it."""
    added = _add(ctx, clients[0], _data(500, seed=5))
    chunk = _chunk_files(ctx, added["id"])[0]
    with transaction(ctx.engine) as conn:
        other = ctx.keyring.client_cipher(conn, clients[1])
    chunk.write_bytes(other.encrypt(b"\0" + b"y" * 500, content.chunk_aad(added["id"], 0, True)))
    with pytest.raises(IntegrityError, match="chunk 0"):
        _get(ctx, added["id"])


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b.pdf", "a\\b.pdf", "nul\0.pdf", "bell\x07.pdf",
                                 "..", " lead.pdf", "", "x" * 256, "rtl\u202e.pdf"])
def test_bad_names_are_refused_without_echo_and_nothing_written(ctx, clients, bad):
    with pytest.raises(ValidationError) as err:
        _add(ctx, clients[0], b"content", name=bad)
    assert (bad.strip() or "@@") not in str(err.value) or bad in ("..",)
    assert not [p for p in _objects(ctx) if p.is_file()]


def test_limits_refused_before_anything_is_written(ctx, clients):
    ctx.settings = ctx.settings.model_copy(update={"files": ctx.settings.files.model_copy(
        update={"max_bytes": 1000})})
    with pytest.raises(ValidationError, match="limit is 1000"):
        _add(ctx, clients[0], b"z" * 1001)
    with pytest.raises(ValidationError, match="empty"):
        _add(ctx, clients[0], b"")
    with pytest.raises(ValidationError, match="application/x-msdownload is not allowed"):
        _add(ctx, clients[0], b"MZ", content_type="application/x-msdownload")
    with pytest.raises(ValidationError, match="type/subtype"):
        _add(ctx, clients[0], b"MZ", content_type="../../x")
    assert _add(ctx, clients[0], b"png", content_type="image/png")["content_type"] == "image/png"
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


def test_failing_store_leaves_no_row(ctx, clients, monkeypatch):
    target = open_files_target(ctx.settings)
    calls = []

    def failing_put(key, data):
        calls.append(key)
        if len(calls) == 2:
            raise OSError("disk full")
        return type(target).put(target, key, data)
    monkeypatch.setattr(target, "put", failing_put)
    data = _data(3 * content.CHUNK_SIZE)
    with pytest.raises(OSError):
        with transaction(ctx.engine) as conn:
            add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, clients[0], name="a.pdf",
                     content_type="application/pdf", size=len(data), content=_pieces(data))
    with transaction(ctx.engine) as conn:
        assert conn.execute(select(ClientFile.__table__)).all() == []
    assert not [p for p in _objects(ctx) if p.is_file()]   # the chunk stored before is deleted again


def test_permissions(ctx, clients):
    added = _add(ctx, clients[0], b"abc")
    reader = Principal("user:r", frozenset({"table:client_files:read"}))
    with pytest.raises(PermissionDenied, match="table:client_files:write"):
        _add(ctx, clients[0], b"abc", principal=reader)
    with pytest.raises(PermissionDenied, match="phi:read"):
        _get(ctx, added["id"], principal=reader)
    with pytest.raises(PermissionDenied, match="table:client_files:read"):
        _get(ctx, added["id"], principal=Principal("user:s", frozenset({"phi:read"})))
    target = open_files_target(ctx.settings)
    with pytest.raises(PermissionDenied, match="table:client_files:delete"):
        with transaction(ctx.engine) as conn:
            remove_file(conn, ctx.keyring, reader, target, added["id"])


def test_add_get_remove_audited_and_remove_deletes_objects(ctx, clients):
    added = _add(ctx, clients[0], _data(content.CHUNK_SIZE + 1))
    _get(ctx, added["id"])
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
        _get(ctx, added["id"])


def test_unknown_client_and_file(ctx, clients):
    with pytest.raises(NotFoundError):
        _add(ctx, uuid.uuid4(), b"abc")
    with pytest.raises(NotFoundError):
        _get(ctx, uuid.uuid4())
