"""The Target contract, run against every target kind (local directory, S3 via moto,
Azure Blob Storage via Azurite; Google Cloud Storage is the S3 code path).

The backup, restore, verify and retention jobs rely only on these behaviours, so a
target passing this file can hold backups.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.storage.base import Target


def chunk_key(data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    return f"chunks/{digest[:2]}/{digest}"


def test_target_satisfies_the_protocol(target: Target) -> None:
    assert isinstance(target, Target)


def test_put_then_get_returns_the_same_bytes(target: Target) -> None:
    data = bytes(range(256)) * 10
    target.put("snapshots/2026-01-01.manifest", data)
    assert target.get("snapshots/2026-01-01.manifest") == data
    assert target.exists("snapshots/2026-01-01.manifest")
    assert target.size("snapshots/2026-01-01.manifest") == len(data)


def test_empty_object_round_trips(target: Target) -> None:
    target.put("empty", b"")
    assert target.get("empty") == b""
    assert target.size("empty") == 0
    assert target.exists("empty")


def test_missing_key_is_not_found_and_named(target: Target) -> None:
    with pytest.raises(NotFoundError, match="chunks/00/missing"):
        target.get("chunks/00/missing")
    assert not target.exists("chunks/00/missing")
    assert target.size("chunks/00/missing") is None


def test_put_replaces_an_existing_object(target: Target) -> None:
    target.put("snapshots/latest", b"old manifest")
    target.put("snapshots/latest", b"new manifest, longer than the old one")
    assert target.get("snapshots/latest") == b"new manifest, longer than the old one"


def test_put_of_the_same_content_addressed_chunk_is_allowed(target: Target) -> None:
    data = b"ciphertext" * 100
    key = chunk_key(data)
    target.put(key, data)
    target.put(key, data)
    assert target.get(key) == data
    assert list(target.list("chunks/")) == [key]


def test_put_if_absent_writes_once_and_keeps_the_first(target: Target) -> None:
    data = b"chunk bytes"
    key = chunk_key(data)
    assert target.put_if_absent(key, data) is True
    assert target.put_if_absent(key, b"something else entirely") is False
    assert target.get(key) == data


def test_list_yields_matching_keys_in_order_lazily(target: Target) -> None:
    keys = ["chunks/ab/ab01", "chunks/ab/ab02", "chunks/cd/cd01", "chunks-old/x",
            "chunks0", "snapshots/s1.manifest", "snapshots/s2.manifest"]
    for key in reversed(keys):
        target.put(key, key.encode())
    listing = target.list("")
    assert isinstance(listing, Iterator)
    assert list(listing) == sorted(keys)
    assert list(target.list("chunks/")) == ["chunks/ab/ab01", "chunks/ab/ab02", "chunks/cd/cd01"]
    # A prefix may end mid-segment, as S3 prefixes do.
    assert list(target.list("chunks/a")) == ["chunks/ab/ab01", "chunks/ab/ab02"]
    assert list(target.list("chunks")) == ["chunks-old/x", "chunks/ab/ab01", "chunks/ab/ab02",
                                          "chunks/cd/cd01", "chunks0"]
    assert list(target.list("snapshots/s2")) == ["snapshots/s2.manifest"]
    assert list(target.list("nothing/here")) == []


def test_list_of_an_empty_target_is_empty(target: Target) -> None:
    assert list(target.list("")) == []


def test_delete_removes_and_missing_is_fine(target: Target) -> None:
    target.put("chunks/aa/aa11", b"x")
    target.delete("chunks/aa/aa11")
    assert not target.exists("chunks/aa/aa11")
    assert list(target.list("")) == []
    target.delete("chunks/aa/aa11")
    target.delete("never/written")


def test_modified_at_is_when_written_and_none_when_missing(target: Target) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    target.put("files/aa/aa11", b"x")
    written = target.modified_at("files/aa/aa11")
    assert written is not None and written.tzinfo is not None
    assert before <= written <= datetime.now(UTC) + timedelta(seconds=5)
    assert target.modified_at("files/aa/never") is None


def test_describe_names_the_location_without_secrets(target: Target) -> None:
    text = target.describe()
    assert text.startswith(("file:///", "s3://", "azure://"))
    assert "testing" not in text and "Eby8vdM02xNOcqFlqUw" not in text     # moto's and Azurite's keys


BAD_KEYS = ["", "/abs/path", "..", "../escape", "a/../b", "a/./b", "a//b", "a/", ".hidden",
            "chunks/.tmp", "a b", "a\\b", "snap:1", "caf\u00e9", "a\nb", "a\x00b", "x" * 513]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_by_every_method(target: Target, key: str) -> None:
    calls = [lambda: target.put(key, b"x"), lambda: target.put_if_absent(key, b"x"),
             lambda: target.get(key), lambda: target.exists(key), lambda: target.size(key), lambda: target.modified_at(key),
             lambda: target.delete(key)]
    for call in calls:
        with pytest.raises(ValidationError):
            call()
    assert list(target.list("")) == []


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../", "a//", ".", "a/.", "a b"])
def test_bad_list_prefixes_are_refused(target: Target, prefix: str) -> None:
    with pytest.raises(ValidationError):
        list(target.list(prefix))


def test_longest_allowed_key_works(target: Target) -> None:
    key = "/".join(["k" * 100] * 5) + "/" + "z" * 7  # 512 characters
    assert len(key) == 512
    target.put(key, b"deep")
    assert target.get(key) == b"deep"


def test_readers_never_see_a_partial_object(target: Target) -> None:
    """Overwrite one key again and again while readers fetch it: every read returns one
    complete version, never a mixture or a prefix (the manifest is written this way)."""
    versions = [bytes([n]) * 300_000 for n in range(3)]
    target.put("snapshots/latest", versions[0])
    seen: list[bytes] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            seen.append(target.get("snapshots/latest"))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(15):
            target.put("snapshots/latest", versions[round_ % 3])
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert seen
    assert all(data in versions for data in seen)
    assert list(target.list("")) == ["snapshots/latest"]


def test_concurrent_put_if_absent_has_exactly_one_winner(target: Target) -> None:
    data = b"the same chunk" * 1000
    key = chunk_key(data)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def race() -> None:
        barrier.wait()
        results.append(target.put_if_absent(key, data))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results.count(True) == 1
    assert target.get(key) == data
    assert list(target.list("")) == [key]
