"""Client file content: every live file row has its objects, every object a live row.

Both ways, because the two ways go wrong differently. A live `client_files` row whose
manifest or a chunk is missing from the files store, or whose manifest does not open
with its client's keys, is a file that cannot be served: a failure, naming the file.
An object no live row names is an orphan: content left by a crash mid-upload, by a
removal, an erasure or a retention delete whose object deletes failed or never ran
(core/files/purge.py). An orphan does not make the data wrong, but it is content that
should not exist (an erased client's, sealed under a destroyed key): a warning with
counts, and with `remove_orphans` the orphans are deleted. Only orphans last written
more than ORPHAN_GRACE ago go: an upload in progress writes its chunks before its row
exists, and a file committed while the check runs is looked up again before anything
is removed.

Proving the content is what was written means reading it: each chunk authenticated
under its file's id and place, the whole against the row's size and keyed hash
(content.read_chunks). A sample of files by default, every file with `full`.

The check holds the name of every object in the store in memory (about 100 bytes each;
a million 1 MiB chunks, a terabyte of files, is about 100 MB). Evidence is counts and
file ids; object names (keyed hashes) and content never leave this module.
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import ClientFile
from strongroom.core.db.types import utcnow
from strongroom.core.errors import CryptoError, IntegrityError, StrongroomError
from strongroom.core.files.content import PREFIX, read_chunks, read_manifest
from strongroom.core.files.repository import _cipher_for
from strongroom.core.files.store import open_files_target
from strongroom.core.integrity import FAIL, MAX_EVIDENCE_IDS, OK, WARN, record, worst
from strongroom.core.storage.base import Target

# Far longer than any upload runs (an idle transfer is dropped after 5 minutes).
ORPHAN_GRACE = timedelta(hours=24)
# Files whose whole content a sampled (not full) run reads.
SAMPLE_FILES = 16

_files = ClientFile.__table__


def _live_rows(conn, since: datetime | None = None) -> list:
    query = select(_files.c.id, _files.c.client_id, _files.c.storage_key, _files.c.size_bytes,
                   _files.c.sha256).where(_files.c.deleted_at.is_(None))
    if since is not None:
        query = query.where(_files.c.created_at >= since)
    return conn.execute(query.order_by(_files.c.client_id, _files.c.id)).all()


def _manifests(ctx: Context, conn, target: Target, rows) -> tuple[dict[uuid.UUID, list[str]], list[str]]:
    """file id -> its object names (chunks, then manifest) for rows whose manifest opens;
    and the ids of the rows whose manifest is missing or does not open."""
    named: dict[uuid.UUID, list[str]] = {}
    bad: list[str] = []
    openers: dict[uuid.UUID, object] = {}
    for row in rows:
        if row.client_id not in openers:
            openers[row.client_id] = _cipher_for(conn, ctx.keyring, row.client_id)
        try:
            manifest = read_manifest(target, openers[row.client_id], row.id, row.storage_key)
        except IntegrityError:
            bad.append(str(row.id))
            continue
        named[row.id] = [*manifest["chunks"], row.storage_key]
    return named, bad


def _read_whole(ctx: Context, conn, target: Target, row) -> bool:
    """Whether the file's content reads back whole and matches its row."""
    try:
        for _ in read_chunks(target, _cipher_for(conn, ctx.keyring, row.client_id), row.id, row.storage_key,
                             size=row.size_bytes, digest=row.sha256, indexer=ctx.keyring.blind_indexer(conn)):
            pass
    except (IntegrityError, CryptoError):
        return False
    return True


def _still_missing(ctx: Context, target: Target, file_ids: list[str]) -> list[str]:
    """Of files found incomplete, those still live and still incomplete now (a file
    removed while the check ran had its objects deleted after its row went)."""
    if not file_ids:
        return []
    with transaction(ctx.engine, read_only=True) as conn:
        rows = [r for r in _live_rows(conn) if str(r.id) in set(file_ids)]
        named, bad = _manifests(ctx, conn, target, rows)
    return sorted(bad + [str(f) for f, keys in named.items() if not all(target.exists(k) for k in keys)])


def _remove(target: Target, orphans: list[str], grace: timedelta) -> tuple[int, int, int]:
    """Delete the orphans last written before `grace` ago: (removed, too recent, failed)."""
    cutoff = utcnow() - grace
    removed = recent = failed = 0
    for key in orphans:
        try:
            written = target.modified_at(key)
            if written is None:
                continue                          # gone meanwhile
            if written > cutoff:
                recent += 1
                continue
            target.delete(key)
            removed += 1
        except (StrongroomError, OSError):
            failed += 1
    return removed, recent, failed


def check_files(ctx: Context, progress, *, full: bool, remove_orphans: bool,
                sample: int = SAMPLE_FILES, grace: timedelta = ORPHAN_GRACE) -> dict:
    """One recorded check of the files store against the live `client_files` rows."""
    started = utcnow()
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine, read_only=True) as conn:
        rows = _live_rows(conn)
        progress(0, len(rows), "files: manifests")
        named, unreadable = _manifests(ctx, conn, target, rows)
    stored = set(target.list(f"{PREFIX}/"))
    progress(len(rows), len(rows), "files: objects listed")
    incomplete = [str(f) for f, keys in named.items() if not all(k in stored for k in keys)]
    broken = _still_missing(ctx, target, sorted(unreadable + incomplete))

    chosen = [r for r in rows if r.id in named and str(r.id) not in broken]
    if not full and len(chosen) > sample:
        chosen = random.sample(chosen, sample)
    mismatched = []
    with transaction(ctx.engine, read_only=True) as conn:
        for n, row in enumerate(chosen, 1):
            if not _read_whole(ctx, conn, target, row):
                mismatched.append(str(row.id))
            progress(n, len(chosen), "files: content read back")
    mismatched = [f for f in mismatched if _is_live(ctx, f)]     # not removed while it was read

    orphans = stored.difference(*named.values())
    removed = recent = failed = 0
    if orphans:
        # Files committed since the rows were read name objects the listing holds.
        with transaction(ctx.engine, read_only=True) as conn:
            late, _ = _manifests(ctx, conn, target, _live_rows(conn, since=started - timedelta(minutes=1)))
        orphans = orphans.difference(*late.values())
    if orphans and remove_orphans:
        removed, recent, failed = _remove(target, sorted(orphans), grace)

    status = OK
    if orphans:
        status = WARN
    if broken or mismatched:
        status = worst(status, FAIL)
    return record(ctx, "files", "client file content", "client_files", status,
                  "every live file's objects are stored and read back as recorded; no object without a live file",
                  f"{len(broken)} files incomplete, {len(mismatched)} not matching, {len(orphans)} orphan objects",
                  {"files_checked": len(rows), "objects_stored": len(stored),
                   "incomplete_files": len(broken), "content_mismatched": len(mismatched),
                   "content_read": len(chosen), "read_mode": "full" if full else f"sample of {sample} files",
                   "orphan_objects": len(orphans), "orphans_removed": removed,
                   "orphans_too_recent": recent, "orphans_remove_failed": failed,
                   "ids": (broken + mismatched)[:MAX_EVIDENCE_IDS]}, started)


def _is_live(ctx: Context, file_id: str) -> bool:
    with transaction(ctx.engine, read_only=True) as conn:
        return conn.execute(select(_files.c.id).where(_files.c.id == uuid.UUID(file_id),
                                                      _files.c.deleted_at.is_(None))).first() is not None
