"""Where an export's files go: a hidden temporary directory, moved into place whole.

Every file is created 0600 in `.NAME.tmp/` under the export directory, hashed (SHA-256)
as it is written, fsynced (its plaintext, not the spool it is first written as), and
listed in `manifest.json`, written last; then the directory is renamed to NAME. A failed or cancelled export removes its temporary
directory, so a reader only ever sees a complete export with its manifest. With a
password the data files go into one AES-256 ZIP (WinZip AE-2, which 7-Zip opens)
instead, and the manifest lists both the ZIP and the files inside it.

Until the export is complete nothing readable is on disk under any name: without a
password each data file is written once, as an unnamed file (O_TMPFILE: no path opens
it, and a crash or kill -9 frees it) that `finish` links into the directory just before
the move into place (core.fsutil.unnamed_file); where the filesystem has no unnamed
files, as an encrypted spool under a key held only in memory (core.export.spool), turned
into plaintext in `finish`. With a password, the ZIP's own AES encryption covers the
data as it is written. (The spool was the only way until the unnamed file: it wrote
every byte twice, sealed then clear, which measured as a sixth of a full export of
300k sessions.)

Each ZIP entry is dated with the export's creation time, in UTC (the ZIP's DOS date has
no time zone; UTC is what the manifest's `created_at` says too). Left alone, zipfile
dates an entry opened for writing 1980-01-01, which file managers show as the file's age.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from strongroom.core.errors import IntegrityError, ValidationError
from strongroom.core.export import spool
from strongroom.core.fsutil import TEMP_SUFFIX, fsync_dir, name_file, unnamed_file

MANIFEST = "manifest.json"
ZIP_NAME = "export.zip"
_CHUNK = 1 << 20
_IN_FLIGHT = 4        # chunks queued for the writer thread: at most 4 MiB beyond the buffer


def check_directory(root: Path) -> Path:
    """The export directory, created (0700) if missing and proven writable by creating
    and removing a file in it; a ValidationError names the directory otherwise."""
    root = Path(root)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValidationError(f"export: directory {root} is not writable ({exc.strerror or exc})") from None
    return root


class _Hashing(io.RawIOBase):
    """Passes bytes on to `target`, hashing and counting them, on a helper thread.

    Hashing, sealing the spool (or the ZIP's deflate and AES) and the file write are C
    code that mostly releases the GIL, so on their own thread they overlap the job's
    Python work of decrypting and formatting the next rows (measured: about a tenth off
    a full export of 300k sessions). Order is kept (one thread, one FIFO queue of at
    most _IN_FLIGHT chunks); what writing meets (a full disk) is raised by the next
    `write` or by `settle`, which the caller must reach before it trusts the hash."""

    def __init__(self, target) -> None:
        super().__init__()
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0
        self._chunks: queue.Queue = queue.Queue(maxsize=_IN_FLIGHT)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._pass_on, name="strongroom-export-writer", daemon=True)
        self._worker.start()

    def _pass_on(self) -> None:
        while (data := self._chunks.get()) is not None:
            if self._error is None:          # after a failure, only drain: the caller raises it
                try:
                    self.target.write(data)
                    self.sha.update(data)
                except BaseException as exc:   # noqa: BLE001 - handed to the caller's thread
                    self._error = exc

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self._error is not None:
            raise self._error
        chunk = bytes(data)       # the BufferedWriter reuses the buffer `data` views
        self._chunks.put(chunk)
        self.size += len(chunk)
        return len(chunk)

    def settle(self, *, quiet: bool = False) -> None:
        """Wait until every chunk has reached `target`, and stop the thread; then raise
        what writing met, unless `quiet` (the export is failing anyway)."""
        if self._worker.is_alive():
            self._chunks.put(None)
            self._worker.join()
        if self._error is not None and not quiet:
            raise self._error


def _create(path: Path):
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _finish_file(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()


def sha256_of(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


class Output:
    def __init__(self, root: Path, name: str, *, password: bytes | None = None,
                 created: datetime | None = None) -> None:
        self.root = Path(root)
        self._date_time = (created or datetime.now(timezone.utc)).astimezone(timezone.utc).timetuple()[:6]
        self.final = self.root / name
        self.tmp = self.root / f".{name}{TEMP_SUFFIX}"
        self.tmp.mkdir(mode=0o700)
        self.files: list[dict] = []
        self._spools: dict[str, bytes] = {}     # data file -> its spool's key, in memory only
        self._unnamed: dict[str, tuple] = {}    # data file -> (its unnamed file, the bytes hashed)
        self._zip = self._zip_file = None
        if password is not None:
            # Imported here: pyzipper brings pycryptodome's KDFs, about a tenth of a second
            # of start-up that every export without a password (and every CLI command
            # that loads this module) would pay for nothing.
            import pyzipper

            self._zip_file = _create(self.tmp / ZIP_NAME)
            self._zip = pyzipper.AESZipFile(self._zip_file, "w", compression=pyzipper.ZIP_DEFLATED,
                                            encryption=pyzipper.WZ_AES)
            self._zip.setpassword(password)
            self._zip.setencryption(pyzipper.WZ_AES, nbits=256)

    @contextmanager
    def open(self, name: str, *, text: bool, table: str | None = None, compress: bool = True) -> Iterator:
        """A stream for one data file (text: UTF-8, newlines as written; else bytes).
        Without `compress`, a ZIP entry is stored, not deflated (a client's scans and
        PDFs, compressed already: deflate would cost the most CPU of the export for nothing)."""
        if self._zip:
            target = underlying = self._zip.open(self._entry(name, compress), "w", force_zip64=True)
        else:
            target = underlying = unnamed_file(self.tmp)
            if underlying is None:
                underlying = _create(self.tmp / (name + spool.SUFFIX))
                target = spool.SpoolWriter(underlying)
        sink = _Hashing(target)           # the plaintext's hash, as the manifest lists it
        buffered = io.BufferedWriter(sink, _CHUNK)
        stream = io.TextIOWrapper(buffered, encoding="utf-8", newline="") if text else buffered
        try:
            yield stream
            stream.flush()
            if text:
                stream.detach()
            buffered.flush()
            sink.settle()
        except BaseException:
            sink.settle(quiet=True)      # nothing may still write to `underlying`
            underlying.close()           # abort() removes what it held
            raise
        if self._zip:
            target.close()
        elif target is underlying:
            self._unnamed[name] = (underlying, sink.size)    # named, fsynced and closed in `finish`
        else:
            target.finish()
            # Closed, not fsynced: a spool is ciphertext under a key that dies with this
            # process, so after a crash it is unreadable and removed all the same, and
            # `finish` fsyncs the plaintext it becomes. Forcing it to disk first was a
            # second disk write of the whole export (measured: about 1 s of 450 MB of
            # session notes).
            underlying.close()
            self._spools[name] = target.key
        entry = {"name": name, "sha256": sink.sha.hexdigest(), "bytes": sink.size}
        if table:
            entry["table"] = table
        if self._zip:
            entry["in"] = ZIP_NAME
        self.files.append(entry)

    def _entry(self, name: str, compress: bool = True):
        """A ZIP entry as zipfile would make it for `name`, dated when the export was made."""
        entry = self._zip.zipinfo_cls(name, date_time=self._date_time)
        entry.compress_type = self._zip.compression if compress else zipfile.ZIP_STORED
        entry._compresslevel = self._zip.compresslevel
        return entry

    def finish(self, manifest: dict) -> tuple[Path, str]:
        """Close the ZIP, write the manifest, move the directory into place; returns its
        final path and the manifest's SHA-256 (the export's fingerprint)."""
        if self._zip:
            self._zip.close()
            _finish_file(self._zip_file)
            zip_path = self.tmp / ZIP_NAME
            self.files.append({"name": ZIP_NAME, "sha256": sha256_of(zip_path), "bytes": zip_path.stat().st_size,
                               "encryption": "AES-256 (WinZip AE-2)"})
            self._zip = None
        self._name_unnamed()
        self._unspool()
        body = json.dumps({**manifest, "files": self.files}, indent=2, sort_keys=True).encode() + b"\n"
        fh = _create(self.tmp / MANIFEST)
        fh.write(body)
        _finish_file(fh)
        fsync_dir(self.tmp)
        os.rename(self.tmp, self.final)
        fsync_dir(self.root)
        return self.final, hashlib.sha256(body).hexdigest()

    def _name_unnamed(self) -> None:
        """Each unnamed data file linked under its name, checked against the size hashed
        while it was written, fsynced and closed."""
        while self._unnamed:
            name, (fh, size) = self._unnamed.popitem()
            try:
                fh.flush()
                on_disk = os.fstat(fh.fileno()).st_size
                if on_disk != size:
                    raise IntegrityError(f"export file {name}: {on_disk} bytes on disk, {size} written")
                name_file(fh, self.tmp, name)
                os.fsync(fh.fileno())
            finally:
                fh.close()

    def _unspool(self) -> None:
        """Each data file's spool into its plaintext file, checked against the size
        hashed while it was written; the spool and its key are then forgotten."""
        sizes = {f["name"]: f["bytes"] for f in self.files}
        for name, key in self._spools.items():
            source = self.tmp / (name + spool.SUFFIX)
            with open(source, "rb") as fh, _create(self.tmp / name) as out:
                written = spool.unspool(fh, key, out, name=name)
                out.flush()
                os.fsync(out.fileno())
            if written != sizes[name]:
                raise IntegrityError(f"export file {name}: {written} bytes unspooled, {sizes[name]} written")
            os.unlink(source)
        self._spools.clear()

    def abort(self) -> None:
        """Remove everything written so far."""
        try:
            if self._zip:
                self._zip.close()
        except (OSError, ValueError, RuntimeError):
            pass   # the ZIP is being thrown away: why it would not close says nothing more
        finally:
            if self._zip_file:
                self._zip_file.close()
            self._spools.clear()
            for fh, _ in self._unnamed.values():
                fh.close()                # an unnamed file closed is gone
            self._unnamed.clear()
            shutil.rmtree(self.tmp, ignore_errors=True)
