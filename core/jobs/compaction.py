"""Chain compaction: move the kept links of a chain onto a new, synthesised full base.

Incremental snapshots form chains back to a full base, and every kept snapshot must
restore on its own, so retention could never forget a base while one of its
incrementals was kept. Compaction removes that dependency. For a linear chain
L0 (full) ... Ln and a start link Ls (the first link retention keeps, or the tip of a
chain that reached the chain limit):

1. Restore Ls into a scratch SQLite file with the existing restore reader. This is the
   synthesis *and* its proof: restore follows the chain, checks every segment against
   the manifest's SHA-256, the row counts and the audit chain head. Merging manifests
   instead cannot work: a "changes" table entry holds only the rows changed since its
   parent, with earlier versions of the same rows in older links, so a base needs rows
   merged by primary key, which is exactly what restore does; a scratch database keeps
   memory bounded whatever the data size.
2. Stream the scratch database into the repository as a full snapshot F (the backup
   job's own table writer), which carries Ls's time, change watermark, schema revision,
   audit head and append high-water marks, so it *is* Ls on a chain of its own. Tables
   the source copied whole must re-encode to the same SHA-256, and every table must hold
   the row count Ls recorded: otherwise nothing is written and the chain stays as it was.
3. Re-parent L(s+1)..Ln: each gets a copy of its manifest (same chunks, nothing
   uploaded) whose parent is the previous new snapshot; their row filters are relative
   to change watermarks and high-water marks F preserves, so they apply to F exactly as
   to Ls.
4. Read back every new snapshot (`verify --read-data`) before it is recorded; the new
   rows start at proof `verified`, and in the same transaction the originals Ls..Ln
   become "superseded" (pointing at their replacements). Prune deletes superseded
   manifests under the repository's exclusive lock, and only those no remaining
   snapshot still depends on; one that is still needed waits for a later prune.

Concurrency: everything here runs under a *shared* repository lock, like a backup, so
garbage collection (exclusive) cannot run meanwhile and remove chunks the new
manifests reference; a concurrent backup keeps working, since nothing here deletes.
New snapshots get database rows only once all are written and read back; if anything
fails, the manifests written so far are removed again (they are referenced by nothing)
and the chain stays as it was.
"""
from __future__ import annotations

import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert, select, update

from strongroom.core import audit
from strongroom.core.backup import files as backup_files
from strongroom.core.backup import configurations, copytext, keybag
from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import Repository
from strongroom.core.context import Context
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Backup
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError
from strongroom.core.ids import new_id
from strongroom.core.jobs.backup import WORKERS, write_tables
from strongroom.core.restore import restore


@dataclass(frozen=True)
class Rewrite:
    """One planned compaction: `chain` base first, links from `start` move to a new base."""

    chain: tuple[uuid.UUID, ...]
    start: int
    reason: str  # "base_forgotten" | "chain_limit"

    @property
    def superseded(self) -> tuple[uuid.UUID, ...]:
        return self.chain[self.start:]

    def as_dict(self) -> dict:
        return {"chain": [str(i) for i in self.chain], "new_base_from": str(self.chain[self.start]),
                "reason": self.reason, "superseded": [str(i) for i in self.superseded]}


def _synthesise_base(ctx: Context, repo: Repository, source: Manifest, lock, progress) -> Manifest:
    scratch = Path(tempfile.mkdtemp(prefix=".compact-", dir=ctx.settings.data_dir))
    engine = None
    try:
        url = f"sqlite:///{scratch / 'compact.db'}"
        restore(repo, source.snapshot_id, url, progress=lambda d, t, m: progress(d, t, f"reading chain: {m}"))
        lock.check()
        engine = make_engine(url)
        recorded = {t.name: t for t in source.tables}
        with engine.connect() as conn, ThreadPoolExecutor(WORKERS, thread_name_prefix="compact") as pool:
            entries, added = write_tables(
                conn, repo, lock, pool,
                lambda table: ("full", None, recorded[table.name].high_water if table.name in recorded else None,
                               None),
                lambda d, t, m: progress(d, t, f"writing new base: {m}"))
            # The new base has no wrapped key (format 2): the keys its rows need go to
            # the key bag, listed at the source's time, before its manifest exists.
            live_keys = keybag.live_keys(conn, ctx.keyring, source.created_at)
        for entry in entries:
            old = recorded.get(entry.name)
            expected = None if old is None else (old.live_rows if old.live_rows is not None else old.row_count)
            # data_keys is compared by rows only: restore rewrapped its keys under the
            # current KEK, and a format-1 source carried wrapped keys the base does not.
            same_bytes = entry.sha256 == old.sha256 if old is not None else False
            if old is None or entry.row_count != expected or (
                    old.mode == "full" and not same_bytes and entry.name not in copytext.REDACTED):
                raise IntegrityError(f"compaction of snapshot {source.snapshot_id}: table {entry.name} of the "
                                     "synthesised base differs from the snapshot; chain left as it was")
        snapshot_id = new_id()
        keybag.after_backup(ctx.engine, repo, live_keys, snapshot_id, source.created_at)
        return Manifest.build(repository_id=repo.id, snapshot_id=snapshot_id, kind="full", parent_id=None,
                              created_at=source.created_at, schema_revision=source.schema_revision,
                              change_watermark=source.change_watermark, tables=entries, audit=source.audit,
                              added_bytes=added, files=source.files)
    finally:
        if engine is not None:
            engine.dispose()
        shutil.rmtree(scratch, ignore_errors=True)


def compact(ctx: Context, repo: Repository, cfg: configurations.Configuration, rewrite: Rewrite,
            progress, *, actor: str) -> dict[uuid.UUID, uuid.UUID]:
    """Carry out one Rewrite; returns old snapshot id -> its replacement's id.

    Raises (and leaves the repository and the database as they were) if the chain does
    not restore, the synthesised base does not match, or a read-back fails."""
    manifests = [repo.read_manifest(i) for i in rewrite.chain]
    written: list[Manifest] = []
    mapping: dict[uuid.UUID, uuid.UUID] = {}
    lock = repo.acquire_lock("shared", "compact")
    try:
        base = _synthesise_base(ctx, repo, manifests[rewrite.start], lock, progress)
        written.append(repo.write_manifest(base, lock))
        mapping[manifests[rewrite.start].snapshot_id] = base.snapshot_id
        for link in manifests[rewrite.start + 1:]:
            copy = Manifest.build(repository_id=repo.id, snapshot_id=new_id(), kind="incremental",
                                  parent_id=written[-1].snapshot_id, created_at=link.created_at,
                                  schema_revision=link.schema_revision, change_watermark=link.change_watermark,
                                  tables=link.tables, audit=link.audit, format=link.format, files=link.files)
            written.append(repo.write_manifest(copy, lock))
            mapping[link.snapshot_id] = copy.snapshot_id
        for manifest in written:
            problems = repo.verify_read_data(manifest, lambda d, t, m: progress(d, t, f"reading back: {m}"))
            if problems:
                raise IntegrityError(f"compaction: snapshot {manifest.snapshot_id} failed its read-back: "
                                     f"{problems[0]}")
            lock.check()
    except BaseException:
        for manifest in written:
            repo.delete_manifest(manifest.snapshot_id)
        raise
    finally:
        lock.release()
    _record(ctx, cfg, rewrite, manifests, written, mapping, actor)
    return mapping


def _record(ctx: Context, cfg, rewrite: Rewrite, originals: list[Manifest], written: list[Manifest],
            mapping: dict[uuid.UUID, uuid.UUID], actor: str) -> None:
    table = Backup.__table__
    now = utcnow()
    by_new = {new: old for old, new in mapping.items()}
    with transaction(ctx.engine) as conn:
        configuration_id = configurations.sync_one(conn, ctx.settings, cfg.name, actor="system")
        times = dict(conn.execute(select(table.c.id, table.c.started_at).where(
            table.c.id.in_([m.snapshot_id for m in originals]))).all())
        for manifest in written:
            old = by_new[manifest.snapshot_id]
            conn.execute(insert(table), [{
                "id": manifest.snapshot_id, "configuration_id": configuration_id, "kind": manifest.kind,
                "status": "succeeded", "proof": "verified", "parent_id": manifest.parent_id,
                "started_at": times.get(old, manifest.created_at), "finished_at": now, "verified_at": now,
                "manifest_key": f"snapshots/{manifest.snapshot_id}.json",
                "change_watermark": manifest.change_watermark, "size_bytes": manifest.totals.plain_bytes,
                "stored_bytes": manifest.totals.added_bytes, "row_count": manifest.totals.rows,
                **backup_files.columns(manifest.files)}])
            # The original is superseded from now on: the database's view of what each
            # data point is stays one snapshot, even if deleting the original waits.
            conn.execute(update(table).where(table.c.id == old).values(status="superseded",
                                                                       superseded_by=manifest.snapshot_id))
            audit.append(conn, actor=actor, action="BACKUP", table_name="backups", record_id=manifest.snapshot_id,
                         details={"kind": manifest.kind, "compacted_from": str(old), "reason": rewrite.reason,
                                  "configuration": cfg.name, "added_bytes": manifest.totals.added_bytes,
                                  "proof": "verified"})
