"""Durable file writes: temporary name, fsync, rename, directory fsync.

Every file Strongroom writes (keys, configs, kits, backups) goes through here, so a
crash or full disk leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import errno
import os
import secrets
import tempfile
from pathlib import Path
from typing import BinaryIO


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


def unnamed_file(directory: Path) -> BinaryIO | None:
    """A new, empty file in `directory` (0600) that has no name yet, or None where the
    filesystem or platform cannot make one (O_TMPFILE, or linking it by /proc, missing).

    Until `name_file` links it, no other process can open it by any path, and if this
    process dies (kill -9) or the machine loses power the kernel frees it: nothing of
    what was written is left under any name. What must not be readable before it is
    complete (an export of PHI) is written so, once, instead of being sealed to a
    temporary name and copied out at the end. Whether naming works here (the link
    goes through /proc/self/fd) is proven on the first file, which is then given back."""
    fd = unnamed_fd(directory)
    return None if fd is None else os.fdopen(fd, "wb")


def unnamed_fd(directory: Path) -> int | None:
    """`unnamed_file` as a bare descriptor (the caller closes it)."""
    if not _unnamed_files_work(Path(directory)):
        return None
    return _open_unnamed(Path(directory))


def name_file(fh: BinaryIO | int, directory: Path, name: str) -> None:
    """Give an `unnamed_file` (or `unnamed_fd`) its `name` in `directory` (linkat
    through /proc/self/fd, following the link: a hard link to the open file itself;
    `name` must not exist). The caller fsyncs the file and the directory as for any
    new file."""
    fd = fh if isinstance(fh, int) else fh.fileno()
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # With a dst_dir_fd, os.link calls linkat with AT_SYMLINK_FOLLOW (plain link()
        # would try to link the /proc symlink itself and fail with EXDEV).
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
    finally:
        os.close(dir_fd)


def _open_unnamed(directory: Path) -> int | None:
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            return None          # the filesystem has no unnamed files (or the kernel no O_TMPFILE)
        raise


_UNNAMED_WORKS: dict[int, bool] = {}


def _unnamed_files_work(directory: Path) -> bool:
    """Whether `directory`'s filesystem makes unnamed files and this process can name
    them, found once per filesystem (st_dev) by making one and linking it."""
    device = os.stat(directory).st_dev
    known = _UNNAMED_WORKS.get(device)
    if known is None:
        known = False
        probe = _open_unnamed(directory)
        if probe is not None:
            name = f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            try:
                name_file(probe, directory, name)
                os.unlink(directory / name)
                known = True
            except OSError:
                known = False
            finally:
                os.close(probe)
        _UNNAMED_WORKS[device] = known
    return known


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

    Written the way large streams should be (dd's oflag=nocache): each WRITEBACK_EVERY
    bytes are handed to the disk as soon as they are written (sync_file_range WRITE,
    which does not wait), and the stretch two before it, by then on disk, is waited for
    and dropped from the page cache. So the disk works while the rest is still being
    produced, the fsync in `commit` waits for the last stretches only (cp + fsync of
    1 GiB spent two thirds of its time in that fsync), and the file takes a few
    stretches of page cache instead of its whole size (which on a virtual machine
    meant memory the guest had never touched, each page a host fault: writing 1 GiB
    that way took 2 s). Durability is unchanged: nothing is renamed into place before
    the fsync has returned. Where there is no sync_file_range, only that fsync."""

    def __init__(self, path: Path, *, mode: int = 0o600, suffix: str = ".part") -> None:
        self.path = Path(path)
        self._suffix = suffix
        # Unnamed until commit where the filesystem allows (unnamed_fd): a crash or kill
        # mid-write then leaves nothing beside `path`, not a half-written `.part` of a
        # client's file in the user's folder that nothing would ever remove.
        fd = unnamed_fd(self.path.parent)
        if fd is not None:
            self._fd, self._tmp = fd, None
        else:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix, dir=self.path.parent)
            self._fd, self._tmp = fd, Path(tmp)
        self.size = 0
        self._hinted = 0            # bytes handed to writeback so far
        self._stretches: list[tuple[int, int]] = []   # (offset, length) handed on, not yet dropped
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
            stretch = (self._hinted, self.size - self._hinted)
            self._hinted = self.size
            if _start_writeback(self._fd, *stretch):
                self._stretches.append(stretch)
                if len(self._stretches) > 2:       # two stretches of slack for the disk
                    _written_and_dropped(self._fd, *self._stretches.pop(0))

    def commit(self) -> None:
        """fsync, rename over `path`, fsync the directory: the file is there whole."""
        try:
            os.fsync(self._fd)
            if self._tmp is None:         # unnamed: named beside `path` only now, whole
                name = f".{self.path.name}.{secrets.token_hex(4)}{self._suffix}"
                name_file(self._fd, self.path.parent, name)
                self._tmp = self.path.parent / name
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
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StreamedFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()


_SYNC_FILE_RANGE_WAIT_BEFORE, _SYNC_FILE_RANGE_WRITE, _SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4
_sync_file_range = None      # libc's, looked up on first use (None: not yet, False: there is none)


def _start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing a range of a file out without waiting for it; False where that
    cannot be done (a hint: errors are left to the fsync that follows)."""
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
    return bool(_sync_file_range) and _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE) == 0


def start_writeback(fd: int) -> None:
    """Start writing everything written to `fd` so far out to disk, without waiting:
    the fsync that must follow then finds little left to do (a hint; no-op where
    there is no sync_file_range)."""
    _start_writeback(fd, 0, 0)


def _written_and_dropped(fd: int, offset: int, length: int) -> None:
    """Wait until a range handed to writeback is on disk, then drop its pages from the
    page cache (clean by then; an error is left to the closing fsync, which reports it)."""
    flags = _SYNC_FILE_RANGE_WAIT_BEFORE | _SYNC_FILE_RANGE_WRITE | _SYNC_FILE_RANGE_WAIT_AFTER
    if _sync_file_range(fd, offset, length, flags) == 0:
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
