"""Restore: a snapshot into an empty database (PostgreSQL or a new SQLite file).

An incremental snapshot restores on its own: the chain is followed back to its full
base, the base is loaded, then each link is applied in order (changed rows upserted
by primary key, appended rows inserted, whole-copied tables replaced).

Cross-engine both ways: segments are PostgreSQL COPY text (core.backup.copytext), loaded
with `COPY ... FROM STDIN` on PostgreSQL and decoded into typed rows on SQLite. The
whole load is one transaction, so a failed restore leaves the target as it was. Then
the restored database is proven: every table's row count and its re-encoded SHA-256
must equal the manifest's, and the audit chain must verify. A non-empty target is
refused unless `force`, which empties it first (in the same transaction). A live
database (the caller's own, or one a running daemon serves) is refused whatever
`force` says, by the database's identity rather than its URL's spelling.

Only the KEK is needed: the backup key is in the repository, wrapped; the data keys
that open field ciphertext are in the repository's key bag (core/backup/keybag.py),
filled in once the snapshot is proven and wrapped by the restoring KEK. A key the bag
no longer holds (an erased client's) stays without a wrapped key: the client's rows
restore, as tombstones, and do not decrypt. A snapshot from before the bag carries its
own keys; only those the bag lists as erased are wiped.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from strongroom.core import audit
from strongroom.core.backup import files as backup_files
from strongroom.core.db import staging
from strongroom.core.backup.repository import Repository
from strongroom.core.db.engine import make_engine, set_scope, transaction
from strongroom.core.db.migrate import head_revision, upgrade
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import ConflictError, IntegrityError
from strongroom.core.backup.snapshots import chain_of
from strongroom.core.backup.snapshots import tables as backed_up_tables
from strongroom.core.repository import changes
from strongroom.core.storage.base import Target
from strongroom.core.restore.load import (begin_load, check_foreign_keys, defer_indexes, probe_replica, reset_counters,
                                          wipe)
from strongroom.core.restore.plan import PREFETCH, Plan, apply_links, apply_table, clear_seeded, fill_keys, load_base
from strongroom.core.restore.proof import prove_chain, prove_part, prove_table
from strongroom.core.restore.target import check_request, dest_engine, is_empty, refuse_live_target


__all__ = ["RestoreResult", "check_request", "dest_engine", "is_empty", "refuse_live_target", "restore"]

WORKERS = 2

@dataclass(frozen=True)
class RestoreResult:
    snapshot_id: str
    target_engine: str
    tables: int
    rows: int
    seconds: float
    audit_entries: int
    # restored / erased / missing data keys (keybag.Filled)
    keys: dict[str, int] = field(default_factory=dict)
    # client files put into the files store (files, objects, bytes) and not_restored
    files: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

def restore(repo: Repository, snapshot_id: uuid.UUID, dest_url: str, *, force: bool = False,
            progress=None, engine: Engine | None = None, live: Engine | None = None,
            files_target: Target | None = None) -> RestoreResult:
    """Restore `snapshot_id` (following its chain to a full base) into the database at
    `dest_url`, proven before it returns. `live` is the caller's own database (a
    daemon's): a target that is the same database, or that any running daemon serves,
    is refused before anything is written (`refuse_live_target`).

    With `files_target`, the snapshot's client file objects go into that files store
    first, each proven by its keyed hash (core/backup/files.py); if they or the
    database fail, every object this restore wrote is deleted again. Without it the
    database alone is restored (the files are counted as not restored)."""
    progress = progress or (lambda *a: None)
    started = time.monotonic()
    chain = chain_of(repo, snapshot_id)
    manifest = chain[-1]
    if chain[0].kind != "full":
        raise IntegrityError(f"snapshot {snapshot_id}: its chain does not start with a full snapshot")
    if manifest.schema_revision != head_revision():
        raise ConflictError(f"snapshot {snapshot_id} has schema {manifest.schema_revision}, this release "
                            f"restores schema {head_revision()} only")
    by_name = {t.name: t for t in backed_up_tables()}
    for link in chain:
        unknown = [t.name for t in link.tables if t.name not in by_name]
        if unknown:
            raise IntegrityError(f"snapshot {link.snapshot_id} holds tables this schema lacks: {', '.join(unknown)}")
    plan = Plan(repo, chain, by_name, progress)
    own_engine = engine is None
    engine = engine or make_engine(dest_url)
    try:
        refuse_live_target(engine, live)
        written: list[str] = []
        restored = None
        if files_target is not None and manifest.files is not None:
            restored = backup_files.restore(repo, manifest.files, files_target, plan.with_files(manifest.files.count),
                                            written)
        try:
            if engine.dialect.name == "postgresql" and staging.usable(engine):
                chain_check = _restore_staged(plan, engine, force)
            else:
                chain_check = _restore_in_place(plan, engine, force)
        except BaseException:
            if files_target is not None:
                backup_files.undo(files_target, written)
            raise
        count = manifest.files.count if manifest.files else 0
        return RestoreResult(str(snapshot_id), engine.dialect.name, len(manifest.tables),
                             plan.total, round(time.monotonic() - started, 3), chain_check.checked,
                             plan.keys.as_dict() if plan.keys else {},
                             files={**(restored.as_dict() if restored else {"files": 0, "objects": 0, "bytes": 0}),
                                    "not_restored": count - (restored.files if restored else 0)})
    finally:
        if own_engine:
            engine.dispose()

def _restore_in_place(plan: Plan, engine: Engine, force: bool) -> audit.VerifyResult:
    """One transaction over the live schema: SQLite, and PostgreSQL where the role may
    not create and swap schemas. A failure anywhere rolls everything back."""
    upgrade(engine)
    with transaction(engine) as conn, ThreadPoolExecutor(PREFETCH, thread_name_prefix="restore") as pool:
        changes.hold_tracking(conn)
        if not is_empty(conn):
            if not force:
                raise ConflictError("the target database is not empty; restoring over live data "
                                    "needs --force (which first empties it)")
            wipe(conn)
        clear_seeded(conn, plan)
        triggers_off = begin_load(conn)
        for name in plan.tables():
            apply_table(conn, plan, name, pool)
        reset_counters(conn, plan.manifest)
        changes.resume_tracking(conn)
        if triggers_off:
            check_foreign_keys(conn, [plan.by_name[n] for n in plan.tables()])
        for name in plan.tables():
            prove_table(conn, plan, name)
        plan.keys = fill_keys(conn, plan)
    return prove_chain(engine, plan)

def _restore_staged(plan: Plan, engine: Engine, force: bool) -> audit.VerifyResult:
    """PostgreSQL: build the whole database in a staging schema over several connections,
    then swap it in for `public` in one short transaction. Nothing is visible in `public`
    until every proof has passed, so a failure or a crash leaves the target as it was (a
    crash leaves only an invisible staging schema, dropped by the next restore).

    Spread over WORKERS connections, largest work first: every table's base, a big table
    cut into parts loaded side by side (one table usually holds most of the data, and
    one connection per table would leave the other idle), each part read back and proven
    as soon as it is in; as soon as a table is complete, the same thread applies the
    chain's later links to it, proves it, and for the audit log verifies the chain,
    while the other connection goes on loading.
    A table's foreign keys are proven as soon as it and every table it refers to are
    complete, on the thread that completed the last of them. Plain indexes are built
    once their table is complete, as pg_restore does, not maintained row by row."""
    with staging.Stage(engine) as stage:
        stage.check_target(force=force, is_empty=is_empty)
        with stage.engine.connect() as conn:
            parallel = WORKERS if probe_replica(conn) else 1
        upgrade(stage.engine)
        with transaction(stage.engine) as conn:
            clear_seeded(conn, plan)
        chain_check: list[audit.VerifyResult] = []

        units = plan.base_units(parallel)
        deferred = defer_indexes(stage.engine, plan.tables()) if parallel > 1 else {}
        unloaded = Counter(name for name, _, _ in units)
        counting = threading.Lock()

        proven_rows: Counter = Counter()

        def load(name: str, part: int, parts: int) -> None:
            with transaction(stage.engine) as conn:
                begin_load(conn)
                load_base(conn, plan, name, part, parts, pool)
            if parts > 1:             # proven at once, while the other parts still load
                with transaction(stage.engine) as conn:
                    begin_load(conn)
                    rows = prove_part(conn, plan, name, part, parts)
            with counting:
                if parts > 1:
                    proven_rows[name] += rows
                unloaded[name] -= 1
                complete = unloaded[name] == 0
            if complete:
                finish(name, proven_rows[name] if parts > 1 else None)

        complete: set[str] = set()
        unchecked = set(plan.tables())

        def finish(name: str, rows_in_parts: int | None = None) -> None:
            with transaction(stage.engine) as conn:
                begin_load(conn)
                apply_links(conn, plan, name, pool)
                prove_table(conn, plan, name, rows_in_parts)
            for ddl in deferred.get(name, ()):
                with transaction(stage.engine) as conn:
                    conn.execute(text(ddl))
            if name == AuditLog.__tablename__:
                chain_check.append(prove_chain(stage.engine, plan))
            with counting:
                complete.add(name)
                ready = [n for n in unchecked
                         if n in complete and _parents(plan.by_name[n]) & set(plan.steps) <= complete]
                unchecked.difference_update(ready)
            if ready:             # foreign keys as soon as a table and all it refers to are in
                with transaction(stage.engine) as conn:
                    check_foreign_keys(conn, [plan.by_name[n] for n in ready])

        with ThreadPoolExecutor(PREFETCH * parallel, thread_name_prefix="restore-fetch") as pool, \
                ThreadPoolExecutor(parallel, thread_name_prefix="restore-load") as loaders:
            if parallel > 1:
                _run_all(loaders, [(load, name, part, parts) for name, part, parts in units])
            else:                      # triggers on: parents before children, one at a time
                for name in plan.tables():
                    with transaction(stage.engine) as conn:
                        begin_load(conn)
                        load_base(conn, plan, name, 0, 1, pool)
                for name in plan.tables():
                    finish(name)
        if unchecked:
            raise IntegrityError(f"restore left tables unproven: {', '.join(sorted(unchecked))}")
        with transaction(stage.engine) as conn:
            set_scope(conn, practice_id=None, system=True)
            reset_counters(conn, plan.manifest)
        if not chain_check:                                  # a snapshot without audit_logs
            chain_check.append(prove_chain(stage.engine, plan))
        with transaction(stage.engine) as conn:
            begin_load(conn)
            plan.keys = fill_keys(conn, plan)
        stage.swap_in(force=force, is_empty=is_empty)
    return chain_check[0]

def _parents(table) -> set[str]:
    return {fk.column.table.name for fk in table.foreign_keys}

def _run_all(pool: ThreadPoolExecutor, calls: list[tuple]) -> None:
    """Run every call on the pool; the first failure is raised once all have stopped
    (a later call never runs against a half-built stage unnoticed)."""
    futures = [pool.submit(fn, *args) for fn, *args in calls]
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error
