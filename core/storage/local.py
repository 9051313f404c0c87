"""A storage target in a local directory (a second disk, a NAS mount, a USB drive).

Keys map to paths one to one: key "chunks/ab/abcdef..." is the file
`<root>/chunks/ab/abcdef...`. There is no hidden sharding; the backup job picks keys
that shard themselves (chunk keys carry their first two hex digits as a directory),
so an operator can find any object with `ls`. Because a path cannot be a file and a
directory at once, a key cannot also be the prefix-directory of another key here
("a" and "a/b"); the backup layout never does that, and trying raises StorageError.

Threats handled here: a crash or a full disk mid-write (every write goes to a temporary
file in the same directory, is fsynced, then renamed or linked into place and the
directory fsynced, so a reader sees all of an object or none of it) and other local
users reading backups (files 0600, directories 0700). A PutBatch (a client file's
chunks) renames each object in before it is fsynced and fsyncs them together later:
a reader still sees whole objects, and nothing names them until that sync is done.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import threading
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.fsutil import drop_cached, fsync_dir, start_writeback, write_atomic, write_temp
from strongroom.core.storage.base import StorageError, validate_key, validate_prefix

FILE_MODE = 0o600
DIR_MODE = 0o700
# link(2) answers these where the filesystem has no hard links.
_NO_HARDLINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})

# Errors whose cause the operator must fix on the machine; each gets its own wording
# from os.strerror ("No space left on device", "Disk quota exceeded", ...).
_OPERATOR_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                              errno.EPERM, errno.EIO})


class LocalTarget:
    """Objects stored as files under `root`; see the module docstring for the layout."""

    # `put` takes any bytes-like object (a memoryview of a reused buffer) without
    # copying it first: the client files writer seals chunks into buffers it reuses.
    accepts_views = True
    # `put_batch()`: many objects written at once and made durable together (PutBatch).
    batches_puts = True
    # `put` and `read_into` take `cache=False`: the object's pages are dropped from the
    # page cache once written (fsynced) or read (fsutil.drop_cached).
    cache_hints = True

    def __init__(self, root: Path) -> None:
        root = Path(root)
        if not root.is_absolute():
            raise ValidationError(f"local storage root {str(root)!r} must be an absolute path")
        self.root = root

    # -- Target protocol ---------------------------------------------------------------

    def put(self, key: str, data: bytes, *, cache: bool = True) -> None:
        """Write atomically (temporary file, fsync, rename, directory fsync), mode 0600."""
        path = self._path(key)
        try:
            self._make_parents(path, key)
            write_atomic(path, data, mode=FILE_MODE, cache=cache)
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def put_batch(self) -> "PutBatch":
        """A batch of puts made durable together by its `sync` (see PutBatch)."""
        return PutBatch(self)

    def replace(self, key: str, data: bytes) -> None:
        """`put`: the rename drops the only link to the old file (a filesystem snapshot
        or a backup of this directory is outside what Strongroom can reach)."""
        self.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Link a fully written temporary file into place unless the key exists.

        link(2) fails with EEXIST instead of replacing, so two writers racing for the
        same key cannot clobber each other and the check-then-write is one atomic step.
        """
        path = self._path(key)
        if path.is_file():
            return False
        try:
            self._make_parents(path, key)
            return _write_no_replace(path, bytes(data))
        except OSError as exc:
            raise self._error("write", key, exc) from exc

    def get(self, key: str) -> bytes:
        """Read the whole object; NotFoundError if no file holds this key."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFoundError(f"{self.describe()}: no object {key!r}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc

    def read_into(self, key: str, buffer: bytearray, *, cache: bool = True) -> memoryview:
        """`get` into a caller's reusable buffer; returns the view holding the object
        (of a fresh buffer if the object does not fit: the caller's may still be in use
        through an earlier view, so it is never resized). For readers of many large
        objects one after another (client file chunks), where a fresh buffer per object
        costs more than reading it."""
        path = self._path(key)
        try:
            with open(path, "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                view = memoryview(buffer if len(buffer) >= size else bytearray(size))[:size]
                got = 0
                while got < size and (n := fh.readinto(view[got:])):
                    got += n
                if fh.read(1):
                    raise StorageError(f"{self.describe()}: object {key!r} grew while it was read")
                if not cache:
                    drop_cached(fh.fileno())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFoundError(f"{self.describe()}: no object {key!r}") from exc
        except OSError as exc:
            raise self._error("read", key, exc) from exc
        return view[:got]

    def exists(self, key: str) -> bool:
        """True only for a regular file; a directory is a prefix, not an object."""
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """File size from stat; None when missing."""
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("stat", key, exc) from exc
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def modified_at(self, key: str) -> datetime | None:
        """The file's mtime (the rename into place keeps the temporary file's); None when missing."""
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("stat", key, exc) from exc
        return datetime.fromtimestamp(st.st_mtime, timezone.utc) if stat.S_ISREG(st.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[str]:
        """Walk only the directories that can hold matching keys, one at a time.

        Entries are visited in key order (a directory sorts as its name plus "/"), so
        the keys come out globally sorted, as S3 lists them. Temporary files are skipped.
        """
        validate_prefix(prefix)
        dir_part, _, _ = prefix.rpartition("/")
        start = self.root / dir_part if dir_part else self.root
        return self._walk(start, f"{dir_part}/" if dir_part else "", prefix)

    def delete(self, key: str) -> None:
        """Unlink the file and fsync its directory; missing is fine."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise self._error("delete", key, exc) from exc
        try:
            fsync_dir(path.parent)
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def describe(self) -> str:
        """The directory as a file URL."""
        return f"file://{self.root}"

    def close(self) -> None:
        """Nothing is held open between calls."""

    # -- helpers -------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _make_parents(self, path: Path, key: str) -> None:
        # Each missing level by hand: mkdir(parents=True) gives the intermediate levels
        # the default 0777-umask, which would let other local users list chunk names.
        missing = []
        directory = path.parent
        while not directory.is_dir() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=DIR_MODE)
            except FileExistsError as exc:
                if not directory.is_dir():
                    taken = (directory.relative_to(self.root).as_posix()
                             if directory.is_relative_to(self.root) else str(directory))
                    raise StorageError(
                        f"{self.describe()}: cannot write {key!r}: an object is stored at "
                        f"{taken!r}, which this key needs as a directory") from exc

    def _walk(self, directory: Path, key_prefix: str, wanted: str) -> Iterator[str]:
        try:
            with os.scandir(directory) as it:
                entries = [(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name, e)
                           for e in it if not e.name.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            raise StorageError(f"{self.describe()}: cannot list {key_prefix or '/'!r}: "
                               f"{_cause(exc)}") from exc
        for sort_name, entry in sorted(entries, key=lambda pair: pair[0]):
            key = key_prefix + sort_name
            if sort_name.endswith("/"):
                # Descend only where some key below could start with `wanted`.
                if key.startswith(wanted) or wanted.startswith(key):
                    yield from self._walk(Path(entry.path), key, wanted)
            elif key.startswith(wanted) and entry.is_file(follow_symlinks=False):
                yield key

    def _error(self, action: str, key: str, exc: OSError) -> StorageError:
        return StorageError(f"{self.describe()}: cannot {action} {key!r}: {_cause(exc)}")


def _write_no_replace(path: Path, data: bytes) -> bool:
    """Temporary file, fsync, link(2) to `path` (fails if present), directory fsync."""
    tmp = write_temp(path, data, FILE_MODE)
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARDLINKS:
                raise
            # vfat, some FUSE and SMB mounts: no link(2). Check, then rename; a racing
            # writer of the same content-addressed key wrote the same bytes anyway.
            if path.exists():
                return False
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _cause(exc: OSError) -> str:
    """The errno's plain wording, without the path (the message names the key)."""
    if exc.errno is None:
        return type(exc).__name__
    text = os.strerror(exc.errno)
    if exc.errno in _OPERATOR_ERRNOS:
        return text
    return f"{text} (errno {errno.errorcode.get(exc.errno, exc.errno)})"


class PutBatch:
    """Many objects of one target written now and made durable together: a client
    file's chunks, each of which must be on disk before the manifest naming them is
    written, and none of which anything reads before that.

    `put` writes an object to a temporary file, asks the kernel to start writing it to
    disk without waiting (sync_file_range), renames it into place and keeps the file
    open; `sync` then fsyncs every file still open and each directory once. By then
    the disk has written most of the data while later objects were being produced, so
    the fsyncs mostly wait for nothing, and one journal commit covers every rename.
    An fsync per object as it was written made each wait for its own data and its own
    commit, so the disk took one small write at a time: a 1 GiB add spent half its
    time there (bench/results/files.md). When 2 x WINDOW files are open, `put` fsyncs
    and closes the oldest WINDOW (their data long since written; the first fsync's
    journal commit covers the rest): open descriptors and unsynced data stay bounded
    whatever the file's size, a write error is reported on the descriptor that made
    it, and there is one journal commit per WINDOW objects, not one each (fsyncing
    only the oldest one per put measured half the gain).

    Until `sync` returns, an object may exist under its name without its content
    being durable: callers put nothing that is read before `sync` (the manifest, the
    row, comes after). After a crash such objects are orphans for the integrity job.
    `abort` closes what is open (the caller deletes the keys). Thread-safe: the
    writer's workers put into one batch."""

    WINDOW = 32

    def __init__(self, target: LocalTarget) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._open: deque[tuple[int, str]] = deque()    # (descriptor, key), oldest first
        self._dirs: set[Path] = set()

    def put(self, key: str, data) -> None:
        path = self._target._path(key)
        try:
            self._target._make_parents(path, key)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as exc:
            raise self._target._error("write", key, exc) from exc
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                view = memoryview(data).cast("B")
                while view:
                    view = view[os.write(fd, view):]
                start_writeback(fd)
                os.replace(tmp, path)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise self._target._error("write", key, exc) from exc
        with self._lock:
            self._open.append((fd, key))
            self._dirs.add(path.parent)
            due = [self._open.popleft() for _ in range(self.WINDOW)] if len(self._open) >= 2 * self.WINDOW else []
        self._settle(due)

    def sync(self) -> None:
        """Every object put so far durable, names and all; StorageError on the first
        that is not (the rest are closed regardless)."""
        with self._lock:
            due, self._open = list(self._open), deque()
            dirs, self._dirs = sorted(self._dirs), set()
        self._settle(due)
        for directory in dirs:
            try:
                fsync_dir(directory)
            except OSError as exc:
                raise StorageError(f"{self._target.describe()}: cannot sync "
                                   f"{directory.relative_to(self._target.root).as_posix()!r}: {_cause(exc)}") from exc

    def abort(self) -> None:
        """Close what is open without waiting for the disk."""
        with self._lock:
            due, self._open, self._dirs = list(self._open), deque(), set()
        for fd, _ in due:
            os.close(fd)

    def _settle(self, due: list[tuple[int, str]]) -> None:
        error = None
        for fd, key in due:
            try:
                if error is None:
                    os.fsync(fd)
            except OSError as exc:
                error = self._target._error("write", key, exc)
            finally:
                os.close(fd)
        if error is not None:
            raise error
