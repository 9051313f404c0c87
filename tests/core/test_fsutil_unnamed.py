"""Unnamed files (core.fsutil.unnamed_file): written whole with no name, so nothing can
open them by a path and a crash leaves nothing; named only once complete."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from strongroom.core import fsutil
from tests.killed import READY, files_holding, killed_when_ready


def _unnamed_or_skip(directory) -> None:
    fd = fsutil.unnamed_fd(directory)
    if fd is None:
        pytest.skip("this filesystem makes no unnamed files")
    os.close(fd)


def test_an_unnamed_file_is_in_no_listing_until_it_is_named(tmp_path):
    _unnamed_or_skip(tmp_path)
    fh = fsutil.unnamed_file(tmp_path)
    with fh:
        fh.write(b"900-12-3456\n" * 1000)
        fh.flush()
        assert list(tmp_path.iterdir()) == []
        fsutil.name_file(fh, tmp_path, "clients.csv")
    assert (tmp_path / "clients.csv").read_bytes() == b"900-12-3456\n" * 1000
    assert stat.S_IMODE((tmp_path / "clients.csv").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clients.csv"]     # no probe left behind


def test_an_unnamed_file_closed_unnamed_leaves_nothing(tmp_path):
    _unnamed_or_skip(tmp_path)
    fh = fsutil.unnamed_file(tmp_path)
    fh.write(b"x" * 4096)
    fh.close()
    assert list(tmp_path.iterdir()) == []


def test_a_process_killed_while_writing_leaves_nothing_readable(tmp_path):
    """kill -9 mid-write: the kernel frees the file with the process; no path reaches it."""
    _unnamed_or_skip(tmp_path)
    killed_when_ready(
        "import time; from strongroom.core import fsutil\n"
        f"fh = fsutil.unnamed_file({str(tmp_path)!r})\n"
        "fh.write(b'900-12-3456\\n' * 100000); fh.flush()\n"
        f"print({READY!r}, flush=True); time.sleep(60)")
    assert files_holding(tmp_path, b"900-12-3456") == []


def test_where_the_filesystem_has_no_unnamed_files_the_answer_is_none(tmp_path, monkeypatch):
    real_open = os.open

    def refusing(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", refusing)
    monkeypatch.setattr(fsutil, "_UNNAMED_WORKS", {})
    assert fsutil.unnamed_file(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_where_naming_fails_the_answer_is_none_and_nothing_is_left(tmp_path, monkeypatch):
    """No /proc, say: found on the probe, before anything is written unnamed."""
    def no_link(*args, **kwargs):
        raise OSError(errno.ENOENT, "No such file or directory")
    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(fsutil, "_UNNAMED_WORKS", {})
    assert fsutil.unnamed_file(tmp_path) is None
    assert list(tmp_path.iterdir()) == []
