"""Durable file writes: temporary name, fsync, rename, directory fsync.

Every file Strongroom writes (keys, configs, kits, backups) goes through here, so a
crash or full disk leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_SUFFIX = ".tmp"


def write_temp(path: Path, data: bytes, mode: int = 0o600, *, cache: bool = True) -> Path:
    """`data` in a new, fsynced file beside `path` (hidden, `.tmp`), mode set from the
    first byte; the caller moves it into place and must unlink it on failure. Without
    `cache`, its pages leave the page cache once they are on disk (`drop_cached`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            if not cache:
                drop_cached(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def drop_cached(fd: int) -> None:
    """Ask the kernel to drop the file's clean pages from the page cache (advice only:
    nothing stored changes). For data written or read once and not wanted again soon:
    a gigabyte of sealed chunks kept cached evicts what is read often (the database),
    and on a virtual machine growing the cache into memory the guest has not touched
    before costs more than the write itself. A no-op where there is no fadvise."""
    fadvise = getattr(os, "posix_fadvise", None)
    if fadvise is not None:
        try:
            fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, sync_dir: bool = True, cache: bool = True) -> None:
    """Write `data` to `path` atomically with permissions `mode` from the first byte.
    Without `sync_dir` the directory is not fsynced: the caller must fsync it before
    anything relies on the file being there after a crash (many files written into a
    few directories, each directory fsynced once after the last of them). Without
    `cache`, not kept in the page cache once on disk (`drop_cached`)."""
    path = Path(path)
    tmp = write_temp(path, data, mode, cache=cache)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


WRITEBACK_EVERY = 16 * 1024 * 1024   # bytes between hints to start writing a streamed file out


class StreamedFile:
    """A large file written in pieces beside `path` and moved into place whole:
    `write` pieces, then `commit` (fsync, rename over `path`, directory fsync) or
    `abort` (the temporary file removed); as a context manager, an exception aborts.

    The kernel is asked to start writing each WRITEBACK_EVERY bytes out as soon as
    they are written (sync_file_range(SYNC_FILE_RANGE_WRITE) on Linux, which waits for
    nothing), so the disk works while the rest is still being produced and the fsync
    in `commit` waits for the last stretch only, not for the whole file: cp + fsync of
    1 GiB spent two thirds of its time in that fsync. Durability is unchanged: nothing
    is renamed into place before the fsync has returned."""

    def __init__(self, path: Path, *, mode: int = 0o600, suffix: str = ".part") -> None:
        self.path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
        self._fd, self._tmp = fd, Path(tmp)
        self.size = 0
        self._hinted = 0            # bytes handed to writeback so far
        try:
            os.fchmod(fd, mode)
        except BaseException:
            self.abort()
            raise

    def write(self, data) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
            self.size += n
        if self.size - self._hinted >= WRITEBACK_EVERY:
            _start_writeback(self._fd, self._hinted, self.size - self._hinted)
            self._hinted = self.size

    def commit(self) -> None:
        """fsync, rename over `path`, fsync the directory: the file is there whole."""
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StreamedFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


_SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = None      # libc's, looked up on first use (None: not yet, False: there is none)


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range of a file out without waiting for it (a hint: errors are
    ignored here and reported by the fsync that follows)."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            function = libc.sync_file_range
            function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
            function.restype = ctypes.c_int
            _sync_file_range = function
        except (OSError, AttributeError):
            pass            # not Linux / not glibc: the fsync at the end does all the work
    if _sync_file_range:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
