"""LocalTarget beyond the contract: full disks, permissions, layout, random keys."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.storage.base import StorageError, validate_key
from strongroom.core.storage.local import LocalTarget


def leftovers(root: Path) -> list[str]:
    """Files a reader should never see: temporaries of an interrupted write."""
    return [p.name for p in root.rglob("*") if p.name.startswith(".")]


@pytest.fixture
def local(tmp_path: Path) -> LocalTarget:
    return LocalTarget(tmp_path / "backups")


def test_keys_map_to_paths_one_to_one(local: LocalTarget) -> None:
    local.put("chunks/ab/abcdef", b"x")
    assert (local.root / "chunks" / "ab" / "abcdef").read_bytes() == b"x"


def test_files_are_0600_and_directories_0700(local: LocalTarget) -> None:
    local.put("chunks/ab/abcdef", b"x")
    local.put_if_absent("snapshots/s1.manifest", b"m")
    for path in [local.root, *local.root.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


@pytest.mark.parametrize("code, wording", [
    (errno.ENOSPC, "No space left on device"),
    (errno.EDQUOT, "Disk quota exceeded"),
    (errno.EROFS, "Read-only file system"),
])
@pytest.mark.parametrize("method", ["put", "put_if_absent"])
def test_a_full_disk_fails_cleanly_and_keeps_earlier_objects(
        local: LocalTarget, monkeypatch: pytest.MonkeyPatch, method: str, code: int,
        wording: str) -> None:
    """ENOSPC on fsync is what delayed allocation (ext4, XFS) and NFS report."""
    local.put("chunks/aa/aa01", b"earlier chunk")
    local.put("snapshots/latest", b"earlier manifest")
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(StorageError) as caught:
        getattr(local, method)("snapshots/latest" if method == "put" else "chunks/bb/bb01",
                               b"new bytes")
    monkeypatch.undo()
    message = str(caught.value)
    assert wording in message and str(local.root) in message
    assert "new bytes" not in message
    assert local.get("chunks/aa/aa01") == b"earlier chunk"
    assert local.get("snapshots/latest") == b"earlier manifest"
    assert not local.exists("chunks/bb/bb01")
    assert leftovers(local.root) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, when this process may mount (root in CI); else skipped."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs",
                             str(mount_point)], capture_output=True, timeout=10, check=False)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched test covers it")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], timeout=10, check=True)


def test_a_really_full_disk_fails_cleanly(tiny_disk: Path) -> None:
    target = LocalTarget(tiny_disk / "backups")
    written = []
    with pytest.raises(StorageError, match="No space left on device") as caught:
        for n in range(100):
            key = f"chunks/{n:02d}/{n:04d}"
            target.put_if_absent(key, bytes([n]) * 8192)
            written.append(key)
    assert written, "the disk should hold a few chunks before filling up"
    assert "chunks/" in str(caught.value)
    for key in written:
        assert target.get(key) == bytes([int(key[-4:])]) * 8192
    assert leftovers(target.root) == []
    # Overwriting the manifest on the full disk leaves the old one readable.
    with pytest.raises(StorageError, match="No space left on device"):
        target.put(written[0], b"y" * 16384)
    assert target.get(written[0]) == bytes([0]) * 8192
    assert leftovers(target.root) == []


def test_a_key_cannot_be_both_an_object_and_a_directory(local: LocalTarget) -> None:
    local.put("snapshots", b"x")
    with pytest.raises(StorageError, match="'snapshots'.*directory"):
        local.put("snapshots/s1", b"y")
    assert not local.exists("chunks/ab")
    local.put("chunks/ab/abcd", b"z")
    assert not local.exists("chunks/ab")  # a directory is a prefix, not an object
    assert local.size("chunks/ab") is None
    with pytest.raises(NotFoundError, match="no object 'chunks/ab'"):
        local.get("chunks/ab")


def test_list_skips_temporary_files(local: LocalTarget) -> None:
    local.put("chunks/ab/abcd", b"z")
    (local.root / "chunks" / "ab" / ".abce.x1y2.tmp").write_bytes(b"half")
    assert list(local.list("")) == ["chunks/ab/abcd"]


def test_a_relative_root_is_refused() -> None:
    with pytest.raises(ValidationError, match="absolute"):
        LocalTarget(Path("relative/dir"))


KEY_SEGMENT = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True)
KEYS = st.lists(KEY_SEGMENT, min_size=1, max_size=5).map("/".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=st.dictionaries(KEYS, st.binary(max_size=2048), min_size=1, max_size=8))
def test_random_keys_and_data_round_trip(objects: dict[str, bytes]) -> None:
    # Keys that are prefix-directories of other keys cannot coexist on a filesystem.
    keys = sorted(objects)
    objects = {k: v for k, v in objects.items()
               if not any(other.startswith(k + "/") for other in keys)}
    with tempfile.TemporaryDirectory() as tmp:
        target = LocalTarget(Path(tmp) / "t")
        for key, data in objects.items():
            assert target.put_if_absent(key, data)
        for key, data in objects.items():
            assert target.get(key) == data
            assert target.size(key) == len(data)
        assert list(target.list("")) == sorted(objects)
        for key in objects:
            target.delete(key)
        assert list(target.list("")) == []


@settings(max_examples=300, deadline=None)
@given(key=st.text(alphabet=st.sampled_from("ab./-_\\ \x00é:"), max_size=20))
def test_a_valid_key_never_leaves_the_root(key: str) -> None:
    try:
        validate_key(key)
    except ValidationError:
        return
    root = Path("/srv/backups")
    resolved = Path(os.path.normpath(root / key))
    assert resolved.is_relative_to(root) and resolved != root
    assert ".." not in key.split("/") and not key.startswith("/")


def test_read_into_reuses_the_buffer_and_reads_a_larger_object_whole(local: LocalTarget) -> None:
    local.put("files/ab/one", b"a" * 10)
    local.put("files/ab/two", b"b" * 3)
    local.put("files/ab/big", memoryview(b"c" * 100))      # put takes a view without copying it first
    buffer = bytearray(20)
    assert local.read_into("files/ab/one", buffer) == b"a" * 10
    view = local.read_into("files/ab/two", buffer)
    assert view == b"b" * 3 and view.obj is buffer
    assert local.read_into("files/ab/big", buffer) == b"c" * 100     # while `view` still holds the buffer
    with pytest.raises(NotFoundError):
        local.read_into("files/ab/none", buffer)


def test_cache_false_drops_the_objects_pages_and_changes_nothing_stored(local: LocalTarget, monkeypatch) -> None:
    advice = []
    real = os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, at, n, how: (advice.append(how), real(fd, at, n, how)))
    local.put("files/ab/one", b"x" * 5000, cache=False)
    assert advice == [os.POSIX_FADV_DONTNEED]
    assert bytes(local.read_into("files/ab/one", bytearray(10), cache=False)) == b"x" * 5000
    assert advice == [os.POSIX_FADV_DONTNEED] * 2
    local.put("files/ab/two", b"y")
    assert local.get("files/ab/two") == b"y" and len(advice) == 2       # cached by default: no advice
