"""Client file content in backups: the files store's objects kept as repository chunks.

What is kept. Every object of a live file (its sealed chunks and its sealed manifest,
core/files/content.py) is stored as one repository chunk holding the object's exact
bytes. The objects are already encrypted under the client's own data key; the
repository's chunk encryption wraps them once more, like any chunk. Nothing is
decrypted to be backed up except each file's small manifest, to learn its chunk keys.
So an erasure, which destroys the client's key, leaves every backed-up copy of the
client's files as unreadable as the live ones: no backup holds a key that opens them
(the key bag drops an erased key, core/backup/keybag.py).

Deduplication. A chunk's address is the keyed hash of its plaintext, here the sealed
object, and the store's object keys are themselves derived from the file id and the
content: the same object is stored once in a repository whatever number of snapshots
list it. Incrementals: a file the parent snapshot lists under the same manifest key is
taken over from the parent without reading anything; only new files are read and
uploaded. Every snapshot still lists every file, so each restores on its own and
garbage collection sees every object a snapshot needs (Manifest.chunk_refs).

Memory: one object (at most a 1 MiB chunk plus its seal) per in-flight upload, a
bounded window of them, whatever the files' sizes.

Restore writes each object into the target's files store only after `load_chunk` has
authenticated it and recomputed its keyed hash (the proof), and confirms the stored
size after each write (every put is itself atomic: temporary name, fsync, rename). A
failure names the file id, never a name or content, and deletes every object this
restore wrote, so the store is left as it was.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, select

from strongroom.core.backup.manifest import FileEntry, FileObject, FilesSection, Manifest
from strongroom.core.backup.locks import Lock
from strongroom.core.backup.chunks import StoredChunk
from strongroom.core.backup.repository import Repository
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import ClientFile
from strongroom.core.errors import IntegrityError, NotFoundError
from strongroom.core.files.content import read_manifest
from strongroom.core.files.repository import _cipher_for
from strongroom.core.storage.base import Target

log = logging.getLogger(__name__)

IN_FLIGHT = 4
_files = ClientFile.__table__

Progress = Callable[[int, int | None, str], None]


def columns(section: FilesSection | None) -> dict[str, int]:
    """The `backups` row's file columns for a snapshot's files section."""
    if section is None:
        return {"file_count": 0, "file_bytes": 0, "files_missing": 0}
    return {"file_count": section.count, "file_bytes": section.plain_bytes, "files_missing": section.missing}


def _store_object(repo: Repository, store: Target, key: str) -> StoredChunk:
    return repo.store_chunk(store.get(key))


def back_up(conn: Connection, keyring: Keyring, repo: Repository, store: Target, parent: Manifest | None,
            lock: Lock, pool: ThreadPoolExecutor, progress: Progress) -> FilesSection | None:
    """The snapshot's files section, every new object stored in `repo` first.

    `conn` is inside the backup's read snapshot, so the files listed are exactly the
    live `client_files` rows the snapshot's tables hold. A row whose objects are gone
    by the time they are read (removed since the snapshot began, or lost: the integrity
    job reports those) is counted as `missing`, not backed up. None when there are no
    files and the parent had none. `progress(bytes, None, message)` counts file content
    bytes gone through."""
    rows = conn.execute(select(_files.c.id, _files.c.client_id, _files.c.storage_key, _files.c.size_bytes)
                        .where(_files.c.deleted_at.is_(None)).order_by(_files.c.client_id, _files.c.id)).all()
    inherited = {}
    if parent is not None and parent.files is not None:
        inherited = {(e.file_id, e.objects[-1].key): e for e in parent.files.files}
    if not rows and not inherited:
        return None
    openers: dict[uuid.UUID, Callable] = {}
    entries: list[FileEntry] = []
    added_objects = added_bytes = missing = done = 0
    for row in rows:
        lock.check()
        done += row.size_bytes
        known = inherited.get((row.id, row.storage_key))
        if known is not None and known.size == row.size_bytes:
            entries.append(known)
            continue
        if row.client_id not in openers:
            openers[row.client_id] = _cipher_for(conn, keyring, row.client_id)
        try:
            keys = [*read_manifest(store, openers[row.client_id], row.id, row.storage_key)["chunks"], row.storage_key]
            objects, new, new_bytes = _store_all(repo, store, keys, pool)
        except (IntegrityError, NotFoundError):
            log.warning("backup: file %s has no readable content in the files store; not backed up "
                        "(removed meanwhile, or lost: the integrity job reports it)", row.id)
            missing += 1
            continue
        entries.append(FileEntry(file_id=row.id, size=row.size_bytes, objects=objects))
        added_objects += new
        added_bytes += new_bytes
        progress(done, None, "backing up client files")
    return FilesSection.build(entries, added_objects=added_objects, added_bytes=added_bytes, missing=missing)


def _store_all(repo: Repository, store: Target, keys: list[str],
               pool: ThreadPoolExecutor) -> tuple[list[FileObject], int, int]:
    """Store one file's objects (at most IN_FLIGHT read at once); (objects, new, new bytes)."""
    pending: deque[tuple[str, Future[StoredChunk]]] = deque()
    objects: list[FileObject] = []
    new = new_bytes = 0

    def collect() -> None:
        nonlocal new, new_bytes
        key, future = pending.popleft()
        stored = future.result()
        objects.append(FileObject(key=key, chunk=stored.ref))
        if stored.new_bytes:
            new += 1
            new_bytes += stored.new_bytes

    try:
        for key in keys:
            pending.append((key, pool.submit(_store_object, repo, store, key)))
            while len(pending) >= IN_FLIGHT:
                collect()
        while pending:
            collect()
    finally:
        for _, future in pending:      # an error above: let the others finish, unread
            future.cancel()
    return objects, new, new_bytes


@dataclass(frozen=True)
class RestoredFiles:
    files: int
    objects: int
    bytes: int

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "objects": self.objects, "bytes": self.bytes}


def restore(repo: Repository, section: FilesSection, store: Target, progress: Progress | None = None,
            written: list[str] | None = None) -> RestoredFiles:
    """Put every object the section lists into `store`, each proven first (authenticated,
    keyed hash recomputed) and its stored size checked after; all of them durable
    before this returns. IntegrityError names the
    file at fault; the objects written so far are then deleted (objects that were
    already there are left alone). `written`, if given, receives the keys this call
    created, for a caller that must undo them when a later step fails."""
    created: list[str] = [] if written is None else written
    objects = total_bytes = 0
    # Written without waiting for the disk object by object, all made durable before
    # this returns (LocalTarget.put_batch: the disk streams instead of taking one
    # fsynced 4 MiB object at a time); nothing reads them before the restore ends.
    batch = store.put_batch() if getattr(store, "batches_puts", False) else None
    put = batch.put if batch is not None else store.put
    try:
        for done, entry in enumerate(section.files, 1):
            for obj in entry.objects:
                try:
                    data = repo.load_chunk(obj.chunk, recheck_address=True)
                except NotFoundError:
                    raise IntegrityError(f"restore: file {entry.file_id}: its backed-up object "
                                         f"{obj.key} is missing from the repository") from None
                except IntegrityError:
                    raise IntegrityError(f"restore: file {entry.file_id}: its backed-up object {obj.key} "
                                         "failed its hash check (corrupted or tampered); nothing restored") from None
                existed = store.exists(obj.key)
                put(obj.key, data)
                if not existed:
                    created.append(obj.key)
                if store.size(obj.key) != len(data):
                    raise IntegrityError(f"restore: file {entry.file_id}: object {obj.key} did not read back "
                                         "at its size after writing")
                objects += 1
                total_bytes += len(data)
            if progress:
                progress(done, section.count, "restoring client files")
        if batch is not None:
            batch.sync()
    except BaseException:
        if batch is not None:
            batch.abort()
        undo(store, created)
        raise
    return RestoredFiles(section.count, objects, total_bytes)


def undo(store: Target, keys: list[str]) -> None:
    """Delete objects a failed restore wrote (best effort, each key once)."""
    for key in reversed(keys):
        try:
            store.delete(key)
        except Exception:   # noqa: BLE001 - the first error is the one to report
            log.warning("restore: could not remove object %s after a failed restore", key)
    keys.clear()


def destination(dest_url: str, files_dest: str | None, manifest: Manifest,
                live_files: str | None = None) -> Target | None:
    """Where a restore into `dest_url` puts the snapshot's client files: `files_dest`
    if given, else the `files` directory beside a SQLite database file (a data
    directory's default files store). None when the snapshot has no files. Refused
    (ValidationError naming `files_dest`) before anything is written: a PostgreSQL dest
    with files and no `files_dest`, and a files store that is `live_files`, the running
    data directory's own (a restore never writes into live data)."""
    from strongroom.core.errors import ValidationError
    from strongroom.core.storage import open_target

    has_files = manifest.files is not None and manifest.files.count > 0
    url = files_dest
    prefix = "sqlite:///"
    if url is None and has_files:
        if not dest_url.startswith(prefix) or ":memory:" in dest_url:
            raise ValidationError(f"files_dest (--files-target): snapshot {manifest.snapshot_id} holds {manifest.files.count} "
                                  "client file(s); name the files store to restore them into (a directory "
                                  "or storage URL)")
        url = str(Path(dest_url[len(prefix):]).resolve().parent / "files")
    if url is None:
        return None
    if live_files is not None and _same_place(url, live_files):
        raise ValidationError("files_dest (--files-target): that is this data directory's live files store; restore the files "
                              "into the new target's own store (a SQLite target in a directory of its own, "
                              "or --files-target)")
    return open_target(url)


def _same_place(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        plain = url.removeprefix("file://").rstrip("/")
        return str(Path(plain).resolve()) if "://" not in plain else plain
    return norm(a) == norm(b)
