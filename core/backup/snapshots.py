"""A backup configuration's repository and its snapshots, as every job sees them.

The library under the backup, verify, prune, restore, drill and key-rotation jobs
(core/jobs/* stay thin over it): which tables a snapshot holds and how each travels
(whole, changed rows, appended rows), a configuration's repository opened or created,
a snapshot's chain back to its full base, the newest snapshot by our own clock, and a
snapshot described for people (names, counts and sizes, never PHI).
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, Table, select

from strongroom.core.backup import configurations
from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import Repository, init_repository, open_repository
from strongroom.core.context import Context
from strongroom.core.db.models import Backup, Base
from strongroom.core.errors import IntegrityError
from strongroom.core.storage import open_target


def target_url(ctx: Context, configuration: str | None = None) -> str:
    """The repository location of a backup configuration (default: "default")."""
    return configurations.resolve(ctx.settings, configuration).target


def open_or_init(ctx: Context, url: str | None = None, configuration: str | None = None) -> Repository:
    cfg = configurations.resolve(ctx.settings, configuration)
    target = open_target(url or cfg.target)
    if not target.exists("config.json"):
        return init_repository(target, ctx.keyring, compression_level=cfg.compression_level)
    return open_repository(target, ctx.keyring, compression_level=cfg.compression_level)


def open_configured(ctx: Context, params: dict) -> tuple[configurations.Configuration, Repository]:
    """The configuration a job's params name (`configuration`, default "default") and
    its existing repository."""
    cfg = configurations.resolve(ctx.settings, params.get("configuration"))
    return cfg, open_repository(open_target(cfg.target), ctx.keyring, compression_level=cfg.compression_level)


# Engine bookkeeping, not data: SQLite's stand-in for a sequence (the manifest carries
# the change watermark and restore sets the counter or sequence from it), and sync's
# transient bases (core/db/sync_bases.py): an incremental could not carry the removal
# of an erased client's base, so a restored chain would bring its blind indexes back.
NOT_BACKED_UP = frozenset({"change_counter", "sync_applying", "sync_base_clients", "sync_base_therapy_sessions"})


def tables() -> list[Table]:
    """Every data table of the schema, parents before children (the order restore needs)."""
    return [t for t in Base.metadata.sorted_tables if t.name not in NOT_BACKED_UP]


# Append-only tables: an incremental snapshot carries the rows after the parent's
# highest id. Tables with `sync_version` carry the rows changed (tombstones included)
# since the parent's change watermark. Every other table is small and copied whole.
APPEND_ONLY = frozenset({"audit_logs", "security_events"})
MAX_CHAIN = 14


def table_mode(table: Table) -> str:
    if table.name in APPEND_ONLY:
        return "append"
    return "changes" if "sync_version" in table.c else "full"


def chain_of(repo: Repository, snapshot_id: uuid.UUID) -> list[Manifest]:
    """The snapshot and its ancestors, base (full) first."""
    chain = []
    current: uuid.UUID | None = snapshot_id
    while current is not None:
        manifest = repo.read_manifest(current)
        chain.append(manifest)
        current = manifest.parent_id
        if len(chain) > 10_000:
            raise IntegrityError(f"snapshot {snapshot_id}: parent chain does not end")
    return list(reversed(chain))


def newest_snapshot(engine: Engine, ids: list[uuid.UUID]) -> uuid.UUID | None:
    """The newest of `ids` by our own clock among the good snapshots the database knows
    (a tie, which compaction creates by giving a replacement its original's time, goes
    to the newer id: the replacement); the newest id when the database knows none."""
    if not ids:
        return None
    table = Backup.__table__
    with engine.connect() as conn:
        known = conn.execute(select(table.c.id).where(table.c.id.in_(ids), table.c.status == "succeeded")
                             .order_by(table.c.started_at.desc(), table.c.id.desc()).limit(1)).scalar()
    return known or ids[-1]


def snapshot_uuid(value: str) -> uuid.UUID:
    return uuid.UUID(str(value))


def describe_snapshot(ctx: Context, repo: Repository, snapshot_id: uuid.UUID) -> dict[str, Any]:
    """A snapshot's manifest summary with what the database knows of it (no PHI:
    table names, counts, sizes, ids)."""
    from strongroom.core.errors import NotFoundError

    if snapshot_id not in repo.list_snapshots():
        raise NotFoundError(f"snapshot {snapshot_id} is not in {repo.target.describe()}")
    manifest = repo.read_manifest(snapshot_id)
    table = Backup.__table__
    with ctx.engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == snapshot_id)).mappings().first()
    return {
        "snapshot_id": str(snapshot_id), "kind": manifest.kind,
        "parent_id": str(manifest.parent_id) if manifest.parent_id else None,
        "chain_length": len(chain_of(repo, snapshot_id)), "created_at": manifest.created_at.isoformat(),
        "schema_revision": manifest.schema_revision, "change_watermark": manifest.change_watermark,
        "proof": row["proof"] if row else "unknown", "status": row["status"] if row else "unknown to this database",
        "verified_at": row["verified_at"].isoformat() if row and row["verified_at"] else None,
        "drilled_at": row["drilled_at"].isoformat() if row and row["drilled_at"] else None,
        "totals": manifest.totals.model_dump(),
        "tables": [{"name": t.name, "mode": t.mode, "rows": t.row_count, "tombstones": t.tombstone_count,
                    "live_rows": t.live_rows, "chunks": len(t.chunks), "plain_bytes": sum(c.size for c in t.chunks),
                    "stored_bytes": sum(c.stored_size for c in t.chunks)} for t in manifest.tables],
        "files": files_summary(manifest),
        "target": repo.target.describe(),
    }


def files_summary(manifest: Manifest) -> dict[str, int]:
    """A snapshot's client files: counts and bytes (zeros for a snapshot without any)."""
    if manifest.files is None:
        return {"files": 0, "objects": 0, "plain_bytes": 0, "stored_bytes": 0, "added_objects": 0,
                "added_bytes": 0, "missing": 0}
    return manifest.files.summary()
