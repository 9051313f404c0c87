"""Backup job: every table, streamed as COPY-text segments, into a backup repository.

The sentence of the pipeline: read_tables -> segments -> store_chunk (zstd, AES-GCM,
keyed content address) -> manifest, written last. Reading happens in one consistent
snapshot (SQLite: one deferred read transaction under WAL; PostgreSQL: REPEATABLE READ,
READ ONLY, with `COPY ... TO STDOUT`), and only ever holds one segment per in-flight
chunk in memory, so memory stays bounded whatever the table sizes. Compression and
encryption release the GIL and run in a small thread pool while the next segment is
read. A snapshot exists only once its manifest is written; a crash before that leaves
chunks that the next backup reuses (they are content-addressed) and that garbage
collection may later reclaim.

This first cut writes full snapshots. Row-aware incremental snapshots (rows whose
`sync_version` moved since the parent, plus tombstones) build on the same segments.
"""
from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, insert, text

from strongroom.core import audit
from strongroom.core.backup import copytext
from strongroom.core.backup.manifest import AuditHead, ChunkRef, Manifest, TableEntry
from strongroom.core.backup.repository import Repository, StoredChunk, init_repository, open_repository
from strongroom.core.context import Context
from strongroom.core.db.engine import set_scope, transaction
from strongroom.core.db.models import Backup, Base
from strongroom.core.db.types import utcnow
from strongroom.core.ids import new_id
from strongroom.core.repository.changes import current_change_version
from strongroom.core.storage import open_target

SEGMENT_BYTES = 8 * 1024 * 1024
WORKERS = 2
IN_FLIGHT = 4
_SQLITE_BATCH = 2000


def target_url(ctx: Context) -> str:
    """The configured repository location; default: <data dir>/backups on local disk."""
    url = ctx.settings.backup.target
    return url or str(Path(ctx.settings.data_dir) / "backups")


def open_or_init(ctx: Context, url: str | None = None) -> Repository:
    target = open_target(url or target_url(ctx))
    level = ctx.settings.backup.compression_level
    if not target.exists("config.json"):
        return init_repository(target, ctx.keyring, compression_level=level)
    return open_repository(target, ctx.keyring, compression_level=level)


# Engine bookkeeping, not data: SQLite's stand-in for a sequence. The manifest carries
# the change watermark and restore sets the counter (or sequence) from it.
NOT_BACKED_UP = frozenset({"change_counter"})


def tables() -> list[Table]:
    """Every data table of the schema, parents before children (the order restore needs)."""
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_BACKED_UP]


def _segments(lines: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Cut a stream of COPY text into segments of about `limit` bytes, at line ends."""
    buf: list[bytes] = []
    size = 0
    for block in lines:
        buf.append(block)
        size += len(block)
        if size >= limit:
            data = b"".join(buf)
            cut = data.rfind(b"\n") + 1
            if cut:
                yield data[:cut]
            buf, size = ([data[cut:]], len(data) - cut) if cut < len(data) else ([], 0)
    if size:
        yield b"".join(buf)


def _sqlite_blocks(conn: Connection, table: Table) -> Iterator[bytes]:
    cols = copytext.columns(table)
    result = conn.execution_options(stream_results=True).execute(copytext.select_for_copy(table))
    while True:
        rows = result.fetchmany(_SQLITE_BATCH)
        if not rows:
            return
        yield copytext.encode_rows(cols, rows)


def _pg_blocks(conn: Connection, table: Table) -> Iterator[bytes]:
    raw = conn.connection.driver_connection
    with raw.cursor().copy(copytext.copy_out_sql(table)) as copy:
        for block in copy:
            yield bytes(block)


@dataclass
class _TableWriter:
    """Hashes and stores one table's segments; keeps at most IN_FLIGHT chunks pending."""

    repo: Repository
    pool: ThreadPoolExecutor

    def write(self, segments: Iterator[bytes], progress) -> tuple[str, list[ChunkRef], int, int, int]:
        digest = hashlib.sha256()
        pending: deque[Future[StoredChunk]] = deque()
        refs: list[ChunkRef] = []
        rows = plain = added = 0
        for segment in segments:
            digest.update(segment)
            rows += segment.count(b"\n")
            plain += len(segment)
            pending.append(self.pool.submit(self.repo.store_chunk, segment))
            while len(pending) >= IN_FLIGHT:
                added += self._collect(pending.popleft(), refs)
            progress(plain)
        while pending:
            added += self._collect(pending.popleft(), refs)
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


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Write a full snapshot; record it in `backups`; audit it."""
    repo = open_or_init(ctx, params.get("target"))
    with transaction(ctx.engine) as conn:
        ctx.keyring.signing_key(conn)  # created outside the read snapshot if missing
    lock = repo.acquire_lock("shared", "backup")
    started = utcnow()
    snapshot_id = new_id()
    entries: list[TableEntry] = []
    added_total = 0
    try:
        with ctx.engine.connect() as conn, ThreadPoolExecutor(WORKERS, thread_name_prefix="backup") as pool:
            pg = conn.dialect.name == "postgresql"
            if pg:
                conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                set_scope(conn, practice_id=None, system=True)
                conn.execute(text(copytext.pg_session_sql()))
            watermark = current_change_version(conn)
            checkpoint = audit.checkpoint(conn, ctx.keyring)
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            writer = _TableWriter(repo, pool)
            done = 0
            for table in tables():
                blocks = _pg_blocks(conn, table) if pg else _sqlite_blocks(conn, table)
                lock.check()

                def tick(plain: int, name: str = table.name) -> None:
                    progress(done + plain, None, f"backing up {name}")
                sha, refs, rows, plain, added = writer.write(_segments(blocks, SEGMENT_BYTES), tick)
                done += plain
                added_total += added
                tombstones = 0
                entries.append(TableEntry(name=table.name, columns=copytext.column_names(copytext.columns(table)),
                                          row_count=rows, tombstone_count=tombstones, sha256=sha, chunks=refs))
        manifest = Manifest.build(
            repository_id=repo.id, snapshot_id=snapshot_id, kind="full", parent_id=None, created_at=started,
            schema_revision=revision, change_watermark=watermark, tables=entries,
            audit=AuditHead(id=checkpoint["head_id"], hash=checkpoint["head_hash"], checkpoint=checkpoint),
            added_bytes=added_total)
        repo.write_manifest(manifest, lock)
    finally:
        lock.release()
    totals = manifest.totals
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [{
            "id": snapshot_id, "kind": "full", "status": "succeeded", "proof": "written",
            "started_at": started, "finished_at": utcnow(), "manifest_key": f"snapshots/{snapshot_id}.json",
            "change_watermark": watermark, "size_bytes": totals.plain_bytes, "stored_bytes": totals.added_bytes,
            "row_count": totals.rows}])
        audit.append(conn, actor=params.get("actor", "system"), action="BACKUP", table_name="backups",
                     record_id=snapshot_id, details={"kind": "full", "rows": totals.rows, "tables": totals.tables,
                                                     "plain_bytes": totals.plain_bytes,
                                                     "added_bytes": totals.added_bytes,
                                                     "target": repo.target.describe()})
    return BackupResult(str(snapshot_id), "full", totals.tables, totals.rows, totals.plain_bytes,
                        totals.stored_bytes, totals.added_bytes, repo.target.describe()).as_dict()


def snapshot_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(str(value))
