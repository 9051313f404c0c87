"""Backup job: every table, streamed as COPY-text segments, into a backup repository.

The sentence of the pipeline: read_tables -> segments -> store_chunk (zstd, AES-GCM,
keyed content address) -> client file objects (core/backup/files.py) -> manifest,
written last. Reading happens in one consistent
snapshot (SQLite: one deferred read transaction under WAL; PostgreSQL: REPEATABLE READ,
READ ONLY, with `COPY ... TO STDOUT`), and only ever holds one segment per in-flight
chunk in memory, so memory stays bounded whatever the table sizes. Compression and
encryption release the GIL and run in a small thread pool while the next segment is
read. A snapshot exists only once its manifest is written; a crash before that leaves
chunks that the next backup reuses (they are content-addressed) and that garbage
collection may later reclaim.

Incremental snapshots are row-aware: tables with `sync_version` carry the rows changed
since the parent's watermark (deletes are tombstones, so they travel as rows), the
append-only audit tables the rows after the parent's high-water id, and the few small
bookkeeping tables are copied whole. Every snapshot restores on its own by following
its chain back to a full base; after MAX_CHAIN links the next snapshot is full.
"""
from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, text

from strongroom.core import audit
from strongroom.core.backup import copytext
from strongroom.core.backup.manifest import AuditHead, ChunkRef, Manifest, TableEntry
from strongroom.core.backup import configurations, keybag
from strongroom.core.backup import files as backup_files
from strongroom.core.files.store import open_files_target
from strongroom.core.backup.locks import Lock
from strongroom.core.backup.chunks import StoredChunk
from strongroom.core.backup.repository import Repository
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.db.engine import set_scope, transaction
from strongroom.core.db.migrate import current_revision, revision_of
from strongroom.core.db.models import Backup
from strongroom.core.db.pg import CHANGE_LOCK_KEY
from strongroom.core.errors import IntegrityError
from strongroom.core.db.types import utcnow
from strongroom.core.ids import new_id
from strongroom.core.repository.changes import current_change_version
from strongroom.core.backup.snapshots import (MAX_CHAIN, chain_of, newest_snapshot,
                                             open_or_init, table_mode, tables)

SEGMENT_BYTES = 8 * 1024 * 1024
WORKERS = 2
IN_FLIGHT = 4
_SQLITE_BATCH = 2000


def _parent(ctx: Context, repo: Repository, full: bool, cfg: configurations.Configuration) -> Manifest | None:
    """The newest snapshot, when the next one may be incremental on top of it."""
    if full or cfg.backup_type == "full":
        return None
    newest_id = newest_snapshot(ctx.engine, repo.list_snapshots())
    if newest_id is None:
        return None
    newest = repo.read_manifest(newest_id)
    if newest.schema_revision != current_revision(ctx.engine):
        return None          # a chain never spans schema revisions: restore needs one schema
    if not newest.keys_in_bag:
        return None          # the first snapshot with its keys in the bag starts a chain of its own
    return newest if len(chain_of(repo, newest.snapshot_id)) < MAX_CHAIN else None


def _open_snapshot(conn: Connection) -> None:
    """Begin the read snapshot; on PostgreSQL with no change version still in flight."""
    if conn.dialect.name != "postgresql":
        return
    locker = conn.engine.connect()
    try:
        locker.execute(text("SELECT pg_advisory_lock(:k)"), {"k": CHANGE_LOCK_KEY})
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        set_scope(conn, practice_id=None, system=True)
        conn.execute(text(copytext.pg_session_sql()))
        conn.execute(text("SELECT 1")).scalar()  # the snapshot is taken here, under the lock
        locker.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CHANGE_LOCK_KEY})
        locker.commit()
    finally:
        locker.close()


def _segments(blocks: Iterator[tuple[bytes | memoryview, int]], limit: int) -> Iterator[tuple[bytes, int]]:
    """Gather (rows of COPY text, row count) blocks into segments of about `limit` bytes.

    Every block ends at a row end, so a segment does too: no search for line breaks, and
    the row count comes with the block instead of from scanning the bytes."""
    buf = bytearray()
    rows = 0
    for block, n in blocks:
        buf += block
        rows += n
        if len(buf) >= limit:
            yield bytes(buf), rows
            buf = bytearray()
            rows = 0
    if buf:
        yield bytes(buf), rows


def _sqlite_blocks(conn: Connection, table: Table, after: tuple[str, int] | None) -> Iterator[tuple[bytes, int]]:
    cols = copytext.columns(table)
    result = conn.execution_options(stream_results=True).execute(
        copytext.select_for_copy(table, after=after, redact=True))
    while True:
        rows = result.fetchmany(_SQLITE_BATCH)
        if not rows:
            return
        yield copytext.encode_rows(cols, rows), len(rows)


def _pg_blocks(conn: Connection, table: Table, after: tuple[str, int] | None) -> Iterator[tuple[memoryview, int]]:
    """One block per CopyData message: PostgreSQL sends exactly one row per message in
    COPY TO (protocol docs, CopyData), so each is a whole line and counts one row."""
    raw = conn.connection.driver_connection
    with raw.cursor().copy(copytext.copy_out_sql(table, after=after, redact=True)) as copy:
        for block in copy:
            yield block, 1


@dataclass
class _TableWriter:
    """Hashes and stores one table's segments; keeps at most IN_FLIGHT chunks pending.

    The table's SHA-256 runs on a thread of its own, in order (hashlib releases the GIL
    for large buffers), so the thread reading the database only reads."""

    repo: Repository
    pool: ThreadPoolExecutor
    hasher: ThreadPoolExecutor

    def write(self, segments: Iterator[tuple[bytes, int]], progress) -> tuple[str, list[ChunkRef], int, int, int]:
        digest = hashlib.sha256()
        pending: deque[Future[StoredChunk]] = deque()
        hashed: Future | None = None
        refs: list[ChunkRef] = []
        rows = plain = added = 0
        for segment, n in segments:
            hashed = self.hasher.submit(digest.update, segment)
            rows += n
            plain += len(segment)
            pending.append(self.pool.submit(self.repo.store_chunk, segment))
            while len(pending) >= IN_FLIGHT:
                added += self._collect(pending.popleft(), refs)
            progress(plain)
        while pending:
            added += self._collect(pending.popleft(), refs)
        if hashed is not None:
            hashed.result()           # a single worker: every earlier update is done too
        return digest.hexdigest(), refs, rows, plain, added

    @staticmethod
    def _collect(future: Future[StoredChunk], refs: list[ChunkRef]) -> int:
        stored = future.result()
        refs.append(stored.ref)
        return stored.new_bytes


@dataclass(frozen=True)
class BackupResult:
    snapshot_id: str
    kind: str
    tables: int
    rows: int
    plain_bytes: int
    stored_bytes: int
    added_bytes: int
    target: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# (mode, row filter, high-water id, live rows before this snapshot's appended rows)
PlanFor = Callable[[Table], tuple[str, "tuple[str, int] | None", "int | None", "int | None"]]


def write_tables(conn: Connection, repo: Repository, lock: Lock, pool: ThreadPoolExecutor,
                 plan_for: PlanFor, progress) -> tuple[list[TableEntry], int]:
    """Stream every table of `conn` (already inside its read snapshot) into chunks,
    without the wrapped data keys (copytext.REDACTED: they go to the key bag).

    `plan_for(table)` gives (mode, row filter, high-water id, live rows of the parent)
    per table. Returns the manifest's table entries and the bytes newly stored."""
    pg = conn.dialect.name == "postgresql"
    entries: list[TableEntry] = []
    done = added_total = 0
    with ThreadPoolExecutor(1, thread_name_prefix="backup-hash") as hasher:
        writer = _TableWriter(repo, pool, hasher)
        for table in tables():
            mode, after, high_water, live_before = plan_for(table)
            blocks = _pg_blocks(conn, table, after) if pg else _sqlite_blocks(conn, table, after)
            lock.check()

            def tick(plain: int, name: str = table.name) -> None:
                progress(done + plain, None, f"backing up {name}")
            sha, refs, rows, plain, added = writer.write(_segments(blocks, SEGMENT_BYTES), tick)
            done += plain
            added_total += added
            if mode == "append" and live_before is not None:
                # Append-only rows commit in id order (the audit lock), so the parent's
                # rows plus this delta are all of them: no count over the whole log.
                live = live_before + rows
            else:
                live = conn.execute(select(func.count()).select_from(table)).scalar_one()
            tombstones = 0
            if "deleted_at" in table.c:
                query = select(func.count()).select_from(table).where(table.c.deleted_at.is_not(None))
                if after:
                    query = query.where(table.c[after[0]] > after[1])
                tombstones = conn.execute(query).scalar_one()
            entries.append(TableEntry(name=table.name, columns=copytext.column_names(copytext.columns(table)),
                                      row_count=rows, tombstone_count=tombstones, sha256=sha, chunks=refs,
                                      mode=mode, high_water=high_water, live_rows=live))
    return entries, added_total


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Write a snapshot of the configuration `params["configuration"]` (default
    "default"): incremental on its newest one when it can be, else full; record it in
    `backups` under that configuration; audit it. With the configuration's
    `verify_after`, a fast verify (manifest and every chunk present at its size) closes
    the run, and a snapshot that fails it is recorded as failed and fails the run."""
    asked = parse("backup", params)
    cfg = configurations.resolve(ctx.settings, asked.configuration)
    repo = open_or_init(ctx, None, cfg.name)
    with transaction(ctx.engine) as conn:
        ctx.keyring.signing_key(conn)  # created outside the read snapshot if missing
    lock = repo.acquire_lock("shared", "backup")
    started = utcnow()
    snapshot_id = new_id()
    problems: list = []
    try:
        parent = _parent(ctx, repo, asked.full, cfg)
        kind = "incremental" if parent else "full"
        parent_tables = {t.name: t for t in parent.tables} if parent else {}
        with ctx.engine.connect() as conn, ThreadPoolExecutor(WORKERS, thread_name_prefix="backup") as pool:
            _open_snapshot(conn)
            watermark = current_change_version(conn)
            checkpoint = audit.checkpoint(conn, ctx.keyring)
            revision = revision_of(conn)
            live_keys = keybag.live_keys(conn, ctx.keyring, started)
            entries, added_total = write_tables(
                conn, repo, lock, pool, lambda table: _plan(conn, table, parent, parent_tables), progress)
            # File content from the same read snapshot: exactly the files its rows name.
            tables_bytes = sum(ref.size for entry in entries for ref in entry.chunks)
            files = backup_files.back_up(conn, ctx.keyring, repo, open_files_target(ctx.settings), parent,
                                         lock, pool, lambda d, t, m: progress(tables_bytes + d, None, m))
        lock.check()
        # The keys before the manifest: a snapshot never exists without them.
        keybag.after_backup(ctx.engine, repo, live_keys, snapshot_id, started)
        del live_keys
        manifest = Manifest.build(
            repository_id=repo.id, snapshot_id=snapshot_id, kind=kind,
            parent_id=parent.snapshot_id if parent else None, created_at=started,
            schema_revision=revision, change_watermark=watermark, tables=entries,
            audit=AuditHead(id=checkpoint["head_id"], hash=checkpoint["head_hash"], checkpoint=checkpoint),
            added_bytes=added_total, files=files)
        repo.write_manifest(manifest, lock)
        if cfg.verify_after:
            problems = repo.verify_fast(manifest, lambda d, t, m: progress(d, t, f"verifying: {m}"))
    finally:
        lock.release()
    totals = manifest.totals
    with transaction(ctx.engine) as conn:
        configuration_id = configurations.sync_one(conn, ctx.settings, cfg.name, actor="system")
        conn.execute(insert(Backup.__table__), [{
            "id": snapshot_id, "kind": kind, "status": "failed" if problems else "succeeded", "proof": "written",
            "configuration_id": configuration_id,
            "parent_id": parent.snapshot_id if parent and _known(conn, parent.snapshot_id) else None,
            "started_at": started, "finished_at": utcnow(), "manifest_key": f"snapshots/{snapshot_id}.json",
            "change_watermark": watermark, "size_bytes": totals.plain_bytes, "stored_bytes": totals.added_bytes,
            "row_count": totals.rows, **backup_files.columns(files),
            "error": f"verify after backup: {len(problems)} problem(s); first: {problems[0]}" if problems else None}])
        audit.append(conn, actor=params.get("actor", "system"), action="BACKUP", table_name="backups",
                     record_id=snapshot_id, outcome="failure" if problems else "success",
                     details={"kind": kind, "rows": totals.rows, "tables": totals.tables,
                              "plain_bytes": totals.plain_bytes, "added_bytes": totals.added_bytes,
                              "target": repo.target.describe(), "configuration": cfg.name,
                              "verified_after": cfg.verify_after, "verify_problems": len(problems),
                              "files": files.summary() if files else None})
    result = BackupResult(str(snapshot_id), kind, totals.tables, totals.rows, totals.plain_bytes,
                          totals.stored_bytes, totals.added_bytes, repo.target.describe()).as_dict()
    result.update(configuration=cfg.name, verified_after=cfg.verify_after and not problems,
                  files=files.summary() if files else None)
    if problems:
        raise BackupVerifyFailure(f"snapshot {snapshot_id} was written but the verify after backup found "
                                  f"{len(problems)} problem(s); first: {problems[0]}",
                                  {**result, "problems": [str(p) for p in problems[:50]]})
    return result


class BackupVerifyFailure(IntegrityError):
    """The verify after backup found the new snapshot incomplete; `result` says what."""

    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result


def _known(conn: Connection, snapshot_id: uuid.UUID) -> bool:
    table = Backup.__table__
    return conn.execute(select(table.c.id).where(table.c.id == snapshot_id)).first() is not None


def _plan(conn: Connection, table: Table, parent: Manifest | None,
          parent_tables: dict[str, TableEntry]) -> tuple[str, tuple[str, int] | None, int | None, int | None]:
    """(mode, row filter, high-water id, parent's live rows) for one table in this snapshot."""
    mode = table_mode(table)
    high_water = None
    if mode == "append":
        high_water = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
    previous = parent_tables.get(table.name)
    if parent is None or previous is None or mode == "full":
        return "full", None, high_water, None
    if mode == "changes":
        return "changes", ("sync_version", parent.change_watermark), high_water, None
    return "append", ("id", previous.high_water or 0), high_water, previous.live_rows
