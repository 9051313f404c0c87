"""Issue 13 item 1: an erasure reaches every backup. A snapshot taken before an erasure,
restored afterwards, gives the erased client back unreadable (every other client whole),
and no object of the repository, nor any older version of one, holds a copy of the
destroyed key that the KEK opens. The same for DEKs retired by a rotation once a prune
has forgotten the snapshots that needed them."""
from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from strongroom.core import audit
from strongroom.core.backup import keybag
from strongroom.core.backup.layout import CHUNKS
from strongroom.core.backup.repository import open_repository
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.crypto.dek_rotation import rotate_deks
from strongroom.core.crypto.key_status import destroy_retired_unused
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Client, DataKey, KeyState
from strongroom.core.errors import KeyUnavailableError
from strongroom.core import restore
from strongroom.core.jobs import backup, prune
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.clients import get_client
from strongroom.core.retention import certificate, erasure
from strongroom.core.storage import open_target
from strongroom.core.files.store import open_files_target
from tests.core.conftest import READER, seed_clients
from tests.core.storage.conftest import REGION, aws_env, moto_endpoint, s3_admin  # noqa: F401 - fixtures

_keys = DataKey.__table__


def _use_target(ctx, url: str) -> None:
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(update={"target": url})})


@pytest.fixture(params=["local", "s3"])
def repo_url(request, ctx, tmp_path) -> str:
    """A local directory, or an S3 bucket created with Object Lock (so versioned), its
    snapshots locked for 30 days in GOVERNANCE mode."""
    if request.param == "local":
        url = str(tmp_path / "repo")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        admin = request.getfixturevalue("s3_admin")
        bucket = f"sr-{uuid.uuid4().hex[:12]}"
        admin.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        url = f"s3://{bucket}/practice?endpoint_url={endpoint}&region={REGION}&object_lock_days=30"
    _use_target(ctx, url)
    return url


def _erase(ctx, client_id: uuid.UUID) -> dict:
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=client_id, actor="user:alice", reason="ref 1")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    return certificate.complete(ctx, request["id"], actor="user:bob")


def _key_material(ctx, client_id: uuid.UUID) -> list[tuple[uuid.UUID, bytes, bytes]]:
    """(key id, wrapped key, raw key) of the client's live keys, before they are destroyed."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(_keys).where(_keys.c.client_id == client_id,
                                                _keys.c.state != KeyState.DESTROYED)).mappings().all()
    return [(r["id"], bytes(r["wrapped_key"]),
             ctx.keyring.unwrap(r["id"], r["purpose"], r["wrapped_key"], r["kek_id"])) for r in rows]


def _every_version(url: str, s3_admin) -> list[tuple[str, bytes]]:  # noqa: F811
    """Every object of the repository, every stored version, and on disk every file
    (a leftover temporary one included)."""
    if url.startswith("/"):
        return [(str(p.relative_to(url)), p.read_bytes()) for p in Path(url).rglob("*") if p.is_file()]
    bucket = url.split("/")[2]
    found = []
    for page in s3_admin.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", ()):
            body = s3_admin.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"]
            found.append((version["Key"].split("/", 1)[1], body.read()))
    return found


def _copies_of(material, url: str, repo, s3_admin) -> list[str]:  # noqa: F811
    """Objects (or versions) holding a destroyed key in any form: wrapped as stored, raw,
    hex (COPY text), base64 (JSON) — in the object's bytes or in what the repository's
    key (which the KEK opens) decrypts it to."""
    needles = []
    for _, wrapped, raw in material:
        needles += [wrapped, raw, wrapped.hex().encode(), raw.hex().encode(),
                    base64.b64encode(raw), base64.b64encode(wrapped)]
    hits = []
    for key, data in _every_version(url, s3_admin):
        plains = [data]
        if key.startswith(CHUNKS):
            plains.append(_chunk_plain(repo, key.rsplit("/", 1)[1], data))
        if key == keybag.BAG_KEY:
            plains.append(_bag_plain(repo, data))
        if any(needle in plain for plain in plains for needle in needles):
            hits.append(key)
    return hits


def _chunk_plain(repo, address: str, data: bytes) -> bytes:
    import zstandard
    compressed = repo._chunk_cipher.decrypt(data[1:13], data[13:], b"strongroom-backup-chunk\0" + data[:1]
                                            + address.encode())
    return zstandard.ZstdDecompressor().decompressobj().decompress(compressed)


def _bag_plain(repo, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM(repo.keybag_key()).decrypt(data[1:13], data[13:], b"strongroom-backup-keybag\0" + data[:1]
                                             + repo.id.bytes)


def _readable(engine, keyring, client_id) -> bool:
    audit.seal_with(engine, keyring)    # reading PHI is audited: sealed, as a data directory would
    try:
        with transaction(engine) as conn:
            get_client(conn, keyring, READER, client_id, include_deleted=True)
        return True
    except KeyUnavailableError:
        return False


def test_old_snapshot_restored_after_an_erasure_gives_the_client_back_unreadable(ctx, repo_url, tmp_path,
                                                                                  request):
    s3 = request.getfixturevalue("s3_admin") if repo_url.startswith("s3:") else None
    ids = seed_clients(ctx, n=12)
    erased, kept = ids[0], ids[1:]
    old = backup.run(ctx, {}, lambda *a: None)
    material = _key_material(ctx, erased)
    repo = open_repository(open_target(repo_url), ctx.keyring)
    assert _copies_of(material, repo_url, repo, s3) == ["keys/bag"]   # only in the mutable bag

    cert = _erase(ctx, erased)
    assert [c["status"] for c in cert["repositories"]] == ["updated"] and cert["reached_all_copies"]

    # Disaster recovery: only the key file (a new keyring, nothing cached) and the repository.
    fresh = Keyring(load_keks(ctx.settings.keys))
    repo = open_repository(open_target(repo_url), fresh)
    dest = f"sqlite:///{tmp_path / 'after-erasure.db'}"
    result = restore.restore(repo, uuid.UUID(old["snapshot_id"]), dest)
    assert result.keys["missing"] == 0 and result.keys["erased"] == 1
    restored = make_engine(dest)
    try:
        assert not _readable(restored, fresh, erased)
        assert all(_readable(restored, fresh, cid) for cid in kept)
        clients = Client.__table__
        with restored.connect() as conn:        # as the erasure left it: tombstoned, keys destroyed
            gone = conn.execute(select(clients).where(clients.c.id == erased)).mappings().one()
            live = conn.execute(select(func.count()).select_from(clients).where(
                clients.c.id.in_(kept), clients.c.deleted_at.is_(None))).scalar()
            states = set(conn.execute(select(_keys.c.state).where(_keys.c.client_id == erased)).scalars())
        assert gone["deleted_at"] is not None and gone["data_checksum"] == row_checksum(dict(gone))
        assert (gone["email_bidx"], gone["ssn_last4_bidx"], gone["last_name_bidx"]) == (None, None, None)
        assert live == len(kept) and states == {KeyState.DESTROYED}
    finally:
        restored.dispose()
    assert _copies_of(material, repo_url, repo, s3) == []


def test_keys_retired_by_a_dek_rotation_leave_the_repository_once_prune_forgets_their_snapshots(
        ctx, repo_url, tmp_path, request):
    s3 = request.getfixturevalue("s3_admin") if repo_url.startswith("s3:") else None
    ids = seed_clients(ctx, n=6)
    before = backup.run(ctx, {}, lambda *a: None)
    material = [m for cid in ids for m in _key_material(ctx, cid)]
    rotate_deks(ctx, actor="test")
    destroy_retired_unused(ctx, actor="test")
    after = backup.run(ctx, {"full": "true"}, lambda *a: None)
    repo = open_repository(open_target(repo_url), ctx.keyring)
    # The snapshot taken before the rotation still restores whole: the bag keeps its keys.
    assert _restores_whole(repo, before["snapshot_id"], tmp_path / "before-rotation.db", ctx.keyring, ids)
    assert _copies_of(material, repo_url, repo, s3) == ["keys/bag"]

    result = prune.run(ctx, {"snapshot_id": before["snapshot_id"], "actor": "user:alice"}, lambda *a: None)
    assert sorted(result["keys_dropped"]) == sorted(str(k) for k, _, _ in material)
    assert _copies_of(material, repo_url, repo, s3) == []
    assert _restores_whole(repo, after["snapshot_id"], tmp_path / "after-rotation.db", ctx.keyring, ids)


def _restores_whole(repo, snapshot_id: str, path: Path, keyring, ids) -> bool:
    """The snapshot restores with no key missing, and every client in `ids` decrypts."""
    if restore.restore(repo, uuid.UUID(snapshot_id), f"sqlite:///{path}").keys["missing"]:
        return False
    restored = make_engine(f"sqlite:///{path}")
    try:
        return all(_readable(restored, keyring, cid) for cid in ids)
    finally:
        restored.dispose()
