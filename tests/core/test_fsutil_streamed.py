"""fsutil.StreamedFile: a large file written in pieces beside its path, handed to the
disk as it goes, and renamed into place only whole (or removed)."""
from __future__ import annotations

import os

import pytest

from strongroom.core import fsutil
from strongroom.core.fsutil import StreamedFile


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_commit_renames_the_whole_file_into_place(tmp_path, monkeypatch):
    hints, dropped = [], []
    real, real_drop = fsutil._start_writeback, fsutil._written_and_dropped
    monkeypatch.setattr(fsutil, "_start_writeback", lambda fd, at, n: (hints.append((at, n)), real(fd, at, n))[1])
    monkeypatch.setattr(fsutil, "_written_and_dropped", lambda fd, at, n: (dropped.append((at, n)), real_drop(fd, at, n)))
    out = tmp_path / "copy.pdf"
    out.write_bytes(b"old")
    piece = os.urandom(fsutil.WRITEBACK_EVERY // 2 + 7)
    with StreamedFile(out) as sink:
        for _ in range(9):
            sink.write(memoryview(piece))
        assert out.read_bytes() == b"old"            # not in place before commit
        sink.commit()
    assert out.read_bytes() == piece * 9 and sink.size == 9 * len(piece)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert _leftovers(tmp_path) == ["copy.pdf"]
    # the written stretches were handed to writeback in order, none twice, and all but
    # the last two waited for and dropped from the page cache (where Linux can)
    assert hints and hints[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(hints, hints[1:]))
    if fsutil._sync_file_range:
        assert dropped == hints[:-2]


def test_an_error_or_abort_leaves_nothing(tmp_path):
    out = tmp_path / "copy.pdf"
    with pytest.raises(RuntimeError):
        with StreamedFile(out) as sink:
            sink.write(b"part of it")
            raise RuntimeError("stream broke")
    assert _leftovers(tmp_path) == []
    sink = StreamedFile(out)
    sink.write(b"x")
    sink.abort()
    sink.abort()                                        # twice is fine
    assert _leftovers(tmp_path) == []


def test_a_failing_fsync_leaves_nothing_in_place(tmp_path, monkeypatch):
    out = tmp_path / "copy.pdf"
    sink = StreamedFile(out)
    sink.write(b"data")
    monkeypatch.setattr(fsutil.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(OSError):
        sink.commit()
    assert _leftovers(tmp_path) == []


def test_while_it_is_written_nothing_is_beside_the_path(tmp_path):
    """Unnamed until commit (where the filesystem allows): a crash or kill mid-write
    leaves no half-written copy of a client's file in the user's folder."""
    probe = fsutil.unnamed_fd(tmp_path)
    if probe is None:
        pytest.skip("this filesystem makes no unnamed files")
    os.close(probe)
    out = tmp_path / "consent.pdf"
    with StreamedFile(out) as sink:
        sink.write(b"%PDF-1.7 " * 1000)
        assert _leftovers(tmp_path) == []
        sink.commit()
    assert _leftovers(tmp_path) == ["consent.pdf"] and out.read_bytes() == b"%PDF-1.7 " * 1000


def test_where_there_are_no_unnamed_files_a_hidden_part_file_is_used(tmp_path, monkeypatch):
    monkeypatch.setattr(fsutil, "unnamed_fd", lambda directory: None)
    out = tmp_path / "consent.pdf"
    with StreamedFile(out) as sink:
        sink.write(b"data")
        (part,) = _leftovers(tmp_path)
        assert part.startswith(".consent.pdf.") and part.endswith(".part")
        sink.commit()
    assert _leftovers(tmp_path) == ["consent.pdf"]


def test_a_failing_rename_leaves_nothing_beside_the_path(tmp_path, monkeypatch):
    out = tmp_path / "consent.pdf"
    sink = StreamedFile(out)
    sink.write(b"data")
    monkeypatch.setattr(fsutil.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        sink.commit()
    assert _leftovers(tmp_path) == []
