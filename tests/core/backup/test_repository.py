"""The backup repository on real targets: keys, chunks, manifests, verification, GC.

Everything runs against LocalTarget in a temporary directory; one smoke test runs the
same round trip against S3 (moto's standalone server on 127.0.0.1, the storage tests'
fixtures). Tampering is done on the stored bytes, exactly as an attacker with write
access to the target would.
"""
from __future__ import annotations

import base64
import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.core.backup.manifest import AuditHead, Manifest, TableEntry
from strongroom.core.backup.layout import chunk_key, manifest_key
from strongroom.core.backup.repo_keys import CONFIG_KEY, PREVIOUS_CONFIG_KEY
from strongroom.core.backup.repository import (
    Repository,
    confirm_rewrap,
    init_repository,
    open_repository,
    rewrap,
)
from strongroom.core.backup.verify import Problem
from strongroom.core.crypto.kek import Kek, generate_kek
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.errors import (
    ConflictError,
    IntegrityError,
    KeyUnavailableError,
    NotFoundError,
)
from strongroom.core.ids import new_id
from strongroom.core.storage.local import LocalTarget
from tests.core.storage.conftest import REGION, aws_env, bucket, moto_endpoint, s3_admin  # noqa: F401

NOW = datetime(2030, 3, 4, 5, 6, 7, tzinfo=timezone.utc)


def keyring(key: bytes | None = None) -> Keyring:
    return Keyring([Kek(key or generate_kek(), "test")])


@pytest.fixture
def target(tmp_path: Path) -> LocalTarget:
    return LocalTarget(tmp_path / "repo")


@pytest.fixture
def kr() -> Keyring:
    return keyring()


@pytest.fixture
def repo(target: LocalTarget, kr: Keyring) -> Repository:
    return init_repository(target, kr)


def segment(n: int, size: int = 50_000) -> bytes:
    """Compressible but distinct plaintext (a stand-in for COPY text segments)."""
    line = f"{n}\t01a2062f-f32f-7000-81a7-eb6919a99e49\t\\\\x01deadbeef\tACTIVE\n".encode()
    return (line * (size // len(line) + 1))[:size]


def snapshot(repo: Repository, tables: dict[str, list[bytes]], **fields: object) -> Manifest:
    """Store the segments and write a manifest for them, as the backup job will."""
    entries = []
    added = 0
    for name, segments in tables.items():
        refs = []
        digest = hashlib.sha256()
        for plain in segments:
            stored = repo.store_chunk(plain)
            refs.append(stored.ref)
            added += stored.new_bytes
            digest.update(plain)
        entries.append(TableEntry(name=name, columns=["id", "name_enc"], row_count=len(segments),
                                  tombstone_count=0, sha256=digest.hexdigest(), chunks=refs))
    manifest = Manifest.build(
        repository_id=repo.id, snapshot_id=fields.pop("snapshot_id", new_id()),
        kind="full", parent_id=None, created_at=NOW, schema_revision="0007",
        change_watermark=10, tables=entries, audit=AuditHead(id=5, hash="ab" * 32),
        added_bytes=added, **fields)
    return repo.write_manifest(manifest)


def flip(target: LocalTarget, key: str, offset: int, mask: int = 0x01) -> None:
    path = target.root / key
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


# -- repository config ------------------------------------------------------------------

def test_init_writes_only_a_wrapped_key(target: LocalTarget, kr: Keyring) -> None:
    repo = init_repository(target, kr)
    document = json.loads(target.get(CONFIG_KEY))
    assert document["format"] == 1
    assert document["repository_id"] == str(repo.id)
    assert document["backup_key"]["kek_id"] == kr.kek_id
    assert set(document["backup_key"]) == {"kek_id", "key_id", "wrapped"}
    raw = (target.root / CONFIG_KEY).read_bytes()
    assert repo._backup_key not in raw
    assert repo._backup_key.hex().encode() not in raw
    assert (target.root / CONFIG_KEY).stat().st_mode & 0o077 == 0


def test_init_refuses_an_existing_repository(target: LocalTarget, kr: Keyring) -> None:
    init_repository(target, kr)
    with pytest.raises(ConflictError, match="already holds a backup repository"):
        init_repository(target, kr)


def test_open_with_the_kek_alone_reads_what_was_written(target: LocalTarget) -> None:
    """A restore on a fresh machine has only the KEK (key file or recovery kit)."""
    kek = generate_kek()
    repo = init_repository(target, keyring(kek))
    manifest = snapshot(repo, {"clients": [segment(1), segment(2)]})
    fresh = open_repository(LocalTarget(target.root), keyring(kek))
    assert fresh.id == repo.id
    again = fresh.read_manifest(manifest.snapshot_id)
    assert again == manifest
    assert b"".join(fresh.load_chunk(r) for r in again.chunk_refs()) == segment(1) + segment(2)


def test_wrong_kek_names_both_kek_ids(target: LocalTarget, kr: Keyring) -> None:
    init_repository(target, kr)
    other = keyring()
    with pytest.raises(KeyUnavailableError) as caught:
        open_repository(target, other)
    assert kr.kek_id in str(caught.value) and other.kek_id in str(caught.value)


def test_an_empty_target_is_no_repository_yet(target: LocalTarget, kr: Keyring) -> None:
    with pytest.raises(NotFoundError, match="no backup repository here yet"):
        open_repository(target, kr)


def test_missing_config_beside_other_objects_is_named(target: LocalTarget, kr: Keyring) -> None:
    init_repository(target, kr)
    target.put("snapshots/0000", b"a snapshot written before the config went missing")
    target.delete("config.json")
    with pytest.raises(IntegrityError, match="config.json is missing"):
        open_repository(target, kr)


@pytest.mark.parametrize("mangle,message", [
    (lambda d: b"{not json", "not valid JSON"),
    (lambda d: b"[1]", "not a JSON object"),
    (lambda d: d.replace(b'"repository_id"', b'"repository_idx"'), "missing fields"),
    (lambda d: d.replace(b'"created_at":"2', b'"created_at":"1'), "failed HMAC"),
])
def test_garbled_config_is_named(target: LocalTarget, kr: Keyring, mangle, message: str) -> None:
    init_repository(target, kr)
    target.put(CONFIG_KEY, mangle(target.get(CONFIG_KEY)))
    with pytest.raises(IntegrityError, match=message) as caught:
        open_repository(target, kr)
    assert "config.json" in str(caught.value)


def test_tampered_wrapped_key_is_an_integrity_error(target: LocalTarget, kr: Keyring) -> None:
    init_repository(target, kr)
    document = json.loads(target.get(CONFIG_KEY))
    wrapped = bytearray(base64.b64decode(document["backup_key"]["wrapped"]))
    wrapped[-1] ^= 1
    document["backup_key"]["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
    target.put(CONFIG_KEY, json.dumps(document).encode())
    with pytest.raises(IntegrityError, match="wrapped backup key failed authentication"):
        open_repository(target, kr)


def test_rewrap_after_kek_rotation_keeps_every_backup_readable(target: LocalTarget) -> None:
    old, new = Kek(generate_kek(), "old"), Kek(generate_kek(), "new")
    repo = init_repository(target, Keyring([old]))
    manifest = snapshot(repo, {"clients": [segment(1)]})
    old_config = target.get(CONFIG_KEY)

    # During rotation the keyring holds the new KEK first, the old one second.
    rewrapped = rewrap(repo, Keyring([new, old]))
    assert rewrapped.config.kek_id == new.kek_id
    assert target.get(PREVIOUS_CONFIG_KEY) == old_config
    assert rewrap(rewrapped, Keyring([new, old])) is rewrapped  # idempotent

    # Rotation abandoned before the new KEK was installed: the old KEK still opens it.
    via_previous = open_repository(target, Keyring([old]))
    assert via_previous.read_manifest(manifest.snapshot_id) == manifest

    confirm_rewrap(target, Keyring([new]))
    assert not target.exists(PREVIOUS_CONFIG_KEY)
    after = open_repository(target, Keyring([new]))
    assert after.load_chunk(manifest.tables[0].chunks[0]) == segment(1)
    with pytest.raises(KeyUnavailableError):
        open_repository(target, Keyring([old]))


def test_rewrap_resumes_after_a_crash_between_its_two_writes(target: LocalTarget) -> None:
    old, new = Kek(generate_kek(), "old"), Kek(generate_kek(), "new")
    repo = init_repository(target, Keyring([old]))
    target.put(PREVIOUS_CONFIG_KEY, target.get(CONFIG_KEY))  # crashed after the copy
    assert rewrap(repo, Keyring([new, old])).config.kek_id == new.kek_id


def test_a_second_rewrap_waits_for_the_first_to_be_confirmed(target: LocalTarget) -> None:
    a, b, c = (Kek(generate_kek(), name) for name in "abc")
    repo = init_repository(target, Keyring([a]))
    repo_b = rewrap(repo, Keyring([b, a]))
    with pytest.raises(ConflictError, match="unconfirmed"):
        rewrap(repo_b, Keyring([c, b]))
    confirm_rewrap(target, Keyring([b]))
    assert rewrap(repo_b, Keyring([c, b])).config.kek_id == c.kek_id


def test_confirm_refuses_before_rewrap(target: LocalTarget, kr: Keyring) -> None:
    init_repository(target, kr)
    with pytest.raises(ConflictError, match="rewrap first"):
        confirm_rewrap(target, keyring())


# -- chunks -----------------------------------------------------------------------------

def test_chunk_round_trip_and_object_format(repo: Repository, target: LocalTarget) -> None:
    plain = segment(7, 300_000)
    stored = repo.store_chunk(plain)
    key = chunk_key(stored.ref.address)
    assert key == f"chunks/{stored.ref.address[:2]}/{stored.ref.address}"
    data = target.get(key)
    assert data[0] == 1 and len(data) == stored.ref.stored_size == stored.new_bytes
    assert stored.ref.size == len(plain) and stored.ref.stored_size < len(plain) // 10
    assert plain[:64] not in data
    assert repo.load_chunk(stored.ref) == plain


def test_empty_chunk_round_trips(repo: Repository) -> None:
    assert repo.load_chunk(repo.store_chunk(b"").ref) == b""


def test_same_plaintext_is_stored_once(repo: Repository, target: LocalTarget) -> None:
    first = repo.store_chunk(segment(1))
    second = repo.store_chunk(segment(1))
    assert first.new_bytes > 0 and second.new_bytes == 0
    assert second.ref == first.ref
    assert list(target.list("chunks/")) == [chunk_key(first.ref.address)]


def test_addresses_are_keyed_per_repository(tmp_path: Path, kr: Keyring) -> None:
    """Equal plaintext in two repositories gets unrelated addresses: no cross-repository
    equality leak, and no guessable SHA-256 of the content."""
    one = init_repository(LocalTarget(tmp_path / "one"), kr)
    two = init_repository(LocalTarget(tmp_path / "two"), kr)
    plain = segment(3)
    assert one.address_of(plain) != two.address_of(plain)
    assert one.address_of(plain) != hashlib.sha256(plain).hexdigest()


def test_concurrent_stores_of_the_same_chunk_store_it_once(repo: Repository) -> None:
    plains = [segment(n % 4, 200_000) for n in range(32)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(repo.store_chunk, plains))
    with ThreadPoolExecutor(8) as pool:
        loaded = list(pool.map(repo.load_chunk, [r.ref for r in results]))
    assert loaded == plains
    assert sum(1 for r in results if r.new_bytes) == 4


def test_zstd_threads_and_level_are_configurable(target: LocalTarget, kr: Keyring) -> None:
    repo = init_repository(target, kr, compression_level=19, zstd_threads=-1)
    plain = segment(9, 2_000_000)
    stored = repo.store_chunk(plain)
    assert open_repository(target, kr).load_chunk(stored.ref) == plain


@pytest.mark.parametrize("where", ["version", "nonce", "ciphertext", "tag"])
def test_a_flipped_bit_in_a_chunk_is_named(repo: Repository, target: LocalTarget,
                                           where: str) -> None:
    stored = repo.store_chunk(segment(1))
    key = chunk_key(stored.ref.address)
    offset = {"version": 0, "nonce": 5, "ciphertext": 20, "tag": stored.ref.stored_size - 1}[where]
    flip(target, key, offset)
    with pytest.raises(IntegrityError) as caught:
        repo.load_chunk(stored.ref)
    assert key in str(caught.value)
    if where != "version":
        assert str(caught.value) == (f"chunk {key} failed authentication "
                                     "(corrupted or tampered)")


def test_truncated_chunk_is_named(repo: Repository, target: LocalTarget) -> None:
    stored = repo.store_chunk(segment(1))
    key = chunk_key(stored.ref.address)
    target.put(key, target.get(key)[:20])
    with pytest.raises(IntegrityError, match=f"chunk {key} is truncated"):
        repo.load_chunk(stored.ref)


def test_a_chunk_moved_to_another_address_fails(repo: Repository, target: LocalTarget) -> None:
    a = repo.store_chunk(segment(1))
    b = repo.store_chunk(segment(2))
    target.put(chunk_key(b.ref.address), target.get(chunk_key(a.ref.address)))
    with pytest.raises(IntegrityError, match="failed authentication"):
        repo.load_chunk(b.ref)


def test_a_chunk_from_another_repository_fails(tmp_path: Path, kr: Keyring) -> None:
    one = init_repository(LocalTarget(tmp_path / "one"), kr)
    two = init_repository(LocalTarget(tmp_path / "two"), kr)
    stored = one.store_chunk(segment(1))
    forged = stored.ref.model_copy(update={"address": two.address_of(segment(1))})
    two.target.put(chunk_key(forged.address), one.target.get(chunk_key(stored.ref.address)))
    with pytest.raises(IntegrityError, match="failed authentication"):
        two.load_chunk(forged)


def test_a_ref_with_the_wrong_size_fails(repo: Repository) -> None:
    stored = repo.store_chunk(segment(1))
    with pytest.raises(IntegrityError):
        repo.load_chunk(stored.ref.model_copy(update={"size": stored.ref.size - 1}))


def test_a_missing_chunk_is_not_found(repo: Repository) -> None:
    stored = repo.store_chunk(segment(1))
    repo.target.delete(chunk_key(stored.ref.address))
    with pytest.raises(NotFoundError, match=stored.ref.address):
        repo.load_chunk(stored.ref)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_any_single_byte_change_in_a_chunk_is_detected(repo: Repository, target: LocalTarget,
                                                       position: float, mask: int) -> None:
    stored = repo.store_chunk(segment(11, 5_000))
    key = chunk_key(stored.ref.address)
    original = target.get(key)
    damaged = bytearray(original)
    damaged[int(position * len(original))] ^= mask
    target.put(key, bytes(damaged))
    try:
        with pytest.raises(IntegrityError, match=key):
            repo.load_chunk(stored.ref)
    finally:
        target.put(key, original)


# -- manifests --------------------------------------------------------------------------

def test_manifest_round_trip_and_listing(repo: Repository, target: LocalTarget) -> None:
    first = snapshot(repo, {"clients": [segment(1)]})
    second = snapshot(repo, {"clients": [segment(1), segment(2)]})
    assert repo.list_snapshots() == [first.snapshot_id, second.snapshot_id]
    assert repo.read_manifest(second.snapshot_id) == second
    assert second.totals.added_bytes == second.tables[0].chunks[1].stored_size  # deduped
    target.put("snapshots/README", b"x")  # stray objects are not snapshots
    assert repo.list_snapshots() == [first.snapshot_id, second.snapshot_id]
    repo.delete_manifest(first.snapshot_id)
    assert repo.list_snapshots() == [second.snapshot_id]


def test_a_manifest_is_never_overwritten(repo: Repository) -> None:
    manifest = snapshot(repo, {"clients": [segment(1)]})
    with pytest.raises(ConflictError, match="already exists"):
        snapshot(repo, {"clients": [segment(2)]}, snapshot_id=manifest.snapshot_id)


def test_a_manifest_for_another_repository_is_refused(repo: Repository) -> None:
    manifest = snapshot(repo, {"clients": [segment(1)]})
    foreign = manifest.model_copy(update={"repository_id": uuid.uuid4(),
                                          "snapshot_id": new_id()})
    with pytest.raises(ConflictError, match="belongs to repository"):
        repo.write_manifest(foreign)


def test_a_flipped_bit_in_a_manifest_is_refused(repo: Repository, target: LocalTarget) -> None:
    manifest = snapshot(repo, {"clients": [segment(1)]})
    key = manifest_key(manifest.snapshot_id)
    data = target.get(key)
    offset = data.index(b'"row_count":1') + len(b'"row_count":')
    flip(target, key, offset, 0x02)  # "1" -> "3": still valid JSON, wrong content
    with pytest.raises(IntegrityError, match=f"manifest {key} failed HMAC verification"):
        repo.read_manifest(manifest.snapshot_id)
    flip(target, key, offset, 0x02)
    flip(target, key, 0, 0x40)  # "{" -> ";": no longer JSON
    with pytest.raises(IntegrityError, match=f"manifest {key} is not valid JSON"):
        repo.read_manifest(manifest.snapshot_id)


def test_a_manifest_copied_under_another_id_is_refused(repo: Repository,
                                                       target: LocalTarget) -> None:
    manifest = snapshot(repo, {"clients": [segment(1)]})
    other = new_id()
    target.put(manifest_key(other), target.get(manifest_key(manifest.snapshot_id)))
    with pytest.raises(IntegrityError, match="moved or copied"):
        repo.read_manifest(other)


def test_a_missing_manifest_is_not_found(repo: Repository) -> None:
    with pytest.raises(NotFoundError):
        repo.read_manifest(new_id())


# -- verification -----------------------------------------------------------------------

def test_a_healthy_snapshot_verifies(repo: Repository) -> None:
    manifest = snapshot(repo, {"clients": [segment(1), segment(2)], "therapy_sessions": [segment(1)]})
    seen: list[tuple[int, int, str]] = []
    assert repo.verify_fast(manifest) == []
    assert repo.verify_read_data(manifest, lambda d, t, m: seen.append((d, t, m)), workers=3) == []
    assert seen[-1][0] == seen[-1][1] == manifest.totals.plain_bytes
    assert seen[-1][2] == "reading therapy_sessions"


def test_verify_fast_reports_missing_and_resized_chunks(repo: Repository,
                                                        target: LocalTarget) -> None:
    manifest = snapshot(repo, {"clients": [segment(1), segment(2), segment(3)]})
    gone, resized, _ = (chunk_key(r.address) for r in manifest.chunk_refs())
    target.delete(gone)
    target.put(resized, target.get(resized) + b"\0")
    problems = repo.verify_fast(manifest)
    assert problems[0] == Problem(gone, "missing")
    assert problems[1].key == resized and "bytes; the manifest records" in problems[1].message
    assert len(problems) == 2


def test_verify_read_data_reports_a_damaged_chunk(repo: Repository, target: LocalTarget) -> None:
    manifest = snapshot(repo, {"clients": [segment(1), segment(2)], "users": [segment(3)]})
    damaged = chunk_key(manifest.tables[0].chunks[1].address)
    flip(target, damaged, 30)
    assert repo.verify_fast(manifest) == []  # same size: only reading finds it
    problems = repo.verify_read_data(manifest, workers=2)
    assert problems == [Problem(damaged, f"chunk {damaged} failed authentication "
                                         "(corrupted or tampered)")]


def test_verify_read_data_reports_a_missing_chunk(repo: Repository, target: LocalTarget) -> None:
    manifest = snapshot(repo, {"clients": [segment(1)]})
    key = chunk_key(manifest.tables[0].chunks[0].address)
    target.delete(key)
    assert repo.verify_read_data(manifest) == [Problem(key, "missing")]


def test_verify_read_data_checks_table_order(repo: Repository) -> None:
    """Chunks that are each fine but listed in the wrong order fail the table SHA-256."""
    manifest = snapshot(repo, {"clients": [segment(1), segment(2)]})
    table = manifest.tables[0]
    swapped = table.model_copy(update={"chunks": list(reversed(table.chunks))})
    bad = manifest.model_copy(update={"tables": [swapped]})
    problems = repo.verify_read_data(bad)
    assert problems == [Problem(manifest_key(manifest.snapshot_id),
                                "table clients: SHA-256 over its chunks does not match "
                                "the manifest")]


# -- locks and garbage collection -------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def test_shared_locks_coexist_and_exclude_gc(repo: Repository) -> None:
    clock = Clock()
    one = repo.acquire_lock("shared", "backup", clock=clock)
    two = repo.acquire_lock("shared", "verify", clock=clock)
    with pytest.raises(ConflictError, match="held shared for backup"):
        repo.acquire_lock("exclusive", "gc", clock=clock)
    assert len(repo.locks()) == 2  # the refused attempt removed its own lock
    one.release()
    two.release()
    with repo.acquire_lock("exclusive", "gc", clock=clock):
        with pytest.raises(ConflictError, match="held exclusive for gc"):
            repo.acquire_lock("shared", "backup", clock=clock)
    assert repo.locks() == []


def test_an_expired_lock_is_ignored_and_its_holder_must_stop(repo: Repository) -> None:
    clock = Clock()
    crashed = repo.acquire_lock("shared", "backup", ttl=timedelta(minutes=10), clock=clock)
    clock.now += timedelta(minutes=11)
    gc = repo.acquire_lock("exclusive", "gc", clock=clock)
    with pytest.raises(ConflictError, match="lapsed"):
        crashed.refresh()
    gc.release()


def test_a_backup_whose_lease_lapsed_cannot_publish_its_manifest(repo: Repository) -> None:
    clock = Clock()
    lock = repo.acquire_lock("shared", "backup", ttl=timedelta(minutes=10), clock=clock)
    stored = repo.store_chunk(segment(1))
    manifest = Manifest.build(
        repository_id=repo.id, snapshot_id=new_id(), kind="full", parent_id=None,
        created_at=NOW, schema_revision="0007", change_watermark=1,
        tables=[TableEntry(name="clients", columns=["id"], row_count=1, tombstone_count=0,
                           sha256=hashlib.sha256(segment(1)).hexdigest(), chunks=[stored.ref])],
        audit=AuditHead(id=None, hash="0" * 64))
    clock.now += timedelta(minutes=11)
    with pytest.raises(ConflictError, match="lapsed"):
        repo.write_manifest(manifest, lock)
    assert repo.list_snapshots() == []


def test_a_lock_is_renewed_when_half_spent(repo: Repository) -> None:
    clock = Clock()
    lock = repo.acquire_lock("shared", "backup", ttl=timedelta(minutes=10), clock=clock)
    clock.now += timedelta(minutes=6)
    lock.check()
    assert lock.expires_at == clock.now + timedelta(minutes=10)
    stored = json.loads(repo.target.get(lock.key))
    assert datetime.fromisoformat(stored["expires_at"]) == lock.expires_at


def test_an_unreadable_lock_blocks_gc(repo: Repository) -> None:
    repo.target.put("locks/garbage.json", b"{")
    with pytest.raises(ConflictError, match="unreadable"):
        repo.acquire_lock("exclusive", "gc")


def test_gc_keeps_referenced_and_in_progress_chunks_and_deletes_the_rest(
        repo: Repository, target: LocalTarget) -> None:
    clock = Clock()
    old = snapshot(repo, {"clients": [segment(1), segment(2)]})
    snapshot(repo, {"clients": [segment(2), segment(3)]})

    # A backup is running: it holds a shared lock, has written a chunk no manifest
    # references yet, and has deduplicated against segment(1), which only `old` uses.
    backup = repo.acquire_lock("shared", "backup", clock=clock)
    fresh = repo.store_chunk(segment(4))
    reused = repo.store_chunk(segment(1))
    assert reused.new_bytes == 0

    repo.delete_manifest(old.snapshot_id)  # retention expired `old`
    with pytest.raises(ConflictError, match="held shared for backup"):
        repo.acquire_lock("exclusive", "gc", clock=clock)
    assert target.exists(chunk_key(fresh.ref.address))
    assert target.exists(chunk_key(reused.ref.address))

    # The backup finishes: manifest first, then its lock goes.
    running = Manifest.build(
        repository_id=repo.id, snapshot_id=new_id(), kind="full", parent_id=None,
        created_at=NOW, schema_revision="0007", change_watermark=11,
        tables=[TableEntry(name="clients", columns=["id"], row_count=2, tombstone_count=0,
                           sha256=hashlib.sha256(segment(4) + segment(1)).hexdigest(),
                           chunks=[fresh.ref, reused.ref])],
        audit=AuditHead(id=None, hash="0" * 64))
    running = repo.write_manifest(running)
    backup.release()

    orphan = repo.store_chunk(segment(5))  # e.g. left by a backup that crashed
    live = [repo.read_manifest(i) for i in repo.list_snapshots()]
    with repo.acquire_lock("exclusive", "gc", clock=clock) as gc:
        doomed = list(repo.unreferenced_chunks(live, gc))
        assert doomed == [chunk_key(orphan.ref.address)]
        for key in doomed:
            target.delete(key)
    assert repo.referenced_chunks(live) == set(target.list("chunks/"))
    for manifest in live:
        assert repo.verify_read_data(manifest) == []


def test_gc_refuses_without_the_exclusive_lock_or_with_a_manifest_left_out(
        repo: Repository) -> None:
    a = snapshot(repo, {"clients": [segment(1)]})
    snapshot(repo, {"clients": [segment(2)]})
    with repo.acquire_lock("shared", "verify") as shared:
        with pytest.raises(ConflictError, match="exclusive lock"):
            list(repo.unreferenced_chunks([a], shared))
    with repo.acquire_lock("exclusive", "gc") as gc:
        with pytest.raises(ConflictError, match="were not passed as live"):
            list(repo.unreferenced_chunks([a], gc))


def test_gc_stops_when_its_lease_lapses(repo: Repository) -> None:
    clock = Clock()
    repo.store_chunk(segment(1))
    repo.store_chunk(segment(2))
    gc = repo.acquire_lock("exclusive", "gc", ttl=timedelta(minutes=1), clock=clock)
    doomed = repo.unreferenced_chunks([], gc)
    next(doomed)
    clock.now += timedelta(minutes=2)
    with pytest.raises(ConflictError, match="lapsed"):
        next(doomed)


# -- S3 ---------------------------------------------------------------------------------

def test_s3_round_trip_smoke(moto_endpoint: str, bucket: str) -> None:  # noqa: F811
    from strongroom.core.storage import open_target

    target = open_target(f"s3://{bucket}/practice-1/backups?endpoint_url={moto_endpoint}"
                         f"&region={REGION}&max_attempts=2")
    kek = generate_kek()
    repo = init_repository(target, keyring(kek))
    manifest = snapshot(repo, {"clients": [segment(1), segment(2)], "users": [segment(1)]})
    assert manifest.totals.added_bytes == sum(r.stored_size for r in manifest.tables[0].chunks)
    reopened = open_repository(target, keyring(kek))
    assert reopened.list_snapshots() == [manifest.snapshot_id]
    read = reopened.read_manifest(manifest.snapshot_id)
    assert reopened.verify_fast(read) == []
    assert reopened.verify_read_data(read, workers=2) == []
    key = chunk_key(read.tables[0].chunks[0].address)
    data = bytearray(target.get(key))
    data[-1] ^= 1
    target.put(key, bytes(data))
    assert reopened.verify_read_data(read) == [
        Problem(key, f"chunk {key} failed authentication (corrupted or tampered)")]
    with pytest.raises(ConflictError):
        init_repository(target, keyring(kek))
    target.close()
