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

import hashlib
import logging
import os
import threading
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from strongroom.core import audit
from strongroom.core.backup import copytext, keybag
from strongroom.core.backup import files as backup_files
from strongroom.core.db import identity, staging
from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import Repository
from strongroom.core.db.engine import driver_message, make_engine, set_scope, transaction
from strongroom.core.db.migrate import head_revision, upgrade
from strongroom.core.db.models import AuditLog, Client, DataKey, Practice
from strongroom.core.errors import ConfigError, ConflictError, IntegrityError, KeyUnavailableError, ValidationError
from strongroom.core.backup.snapshots import chain_of
from strongroom.core.backup.snapshots import tables as backed_up_tables
from strongroom.core.repository import changes
from strongroom.core.storage.base import Target

log = logging.getLogger(__name__)

_SQLITE_BATCH = 2000
PREFETCH = 2
WORKERS = 2
_EMPTY_CHECK = (Practice, Client, DataKey, AuditLog)


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


def is_empty(conn: Connection) -> bool:
    return all(conn.execute(select(func.count()).select_from(m.__table__)).scalar_one() == 0
               for m in _EMPTY_CHECK)


def _wipe(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_logs_append_only_delete")
    else:
        conn.execute(text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
    for table in reversed(backed_up_tables()):
        conn.execute(delete(table))
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("CREATE TRIGGER audit_logs_append_only_delete BEFORE DELETE ON audit_logs "
                             "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END")
    else:
        conn.execute(text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))


def _clear_seeded(conn: Connection, plan: "_Plan") -> None:
    """Rows a migration seeds in a new database that the snapshot carries too: the
    site's sync identity (migration 0009). The restored database is the snapshot's site."""
    if "sync_site" in plan.tables():
        conn.execute(text("DELETE FROM sync_site"))


def _load_table_sqlite(conn: Connection, table, cols, chunks) -> None:
    batch: list[dict] = []
    line = 1
    for plain in chunks:
        for row in copytext.decode_lines(cols, plain, first_line=line):
            batch.append(row)
            if len(batch) >= _SQLITE_BATCH:
                conn.execute(insert(table), batch)
                batch = []
        line += plain.count(b"\n")
    if batch:
        conn.execute(insert(table), batch)


def _load_table_pg(conn: Connection, table, chunks) -> None:
    """COPY the segments in. Decryption runs ahead in the prefetch threads while this one
    waits on the server (psycopg waits with the GIL released). Not psycopg's queued
    writer: its queue holds up to 1024 buffers, so a server slower than decryption let
    memory grow with the table (420 MiB at scale 1)."""
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(copytext.copy_in_sql(table)) as copy:
        for plain in chunks:
            copy.write(plain)


def _replica_mode(conn: Connection) -> bool:
    """Load without firing triggers: the foreign-key checks (one index probe per row)
    and the audit-bypass triggers (one plpgsql call per row) were most of a restore's
    server time. Needs a superuser (or SET privilege on the parameter); without it the
    load runs with every trigger on, only slower. `SET LOCAL` ends with the transaction.
    The foreign keys are then proven as a whole by `_check_foreign_keys`, and the audit
    chain by `audit.verify`, before the restore reports success."""
    try:
        with conn.begin_nested():
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        return True
    except DBAPIError as err:
        log.info("restore: cannot set session_replication_role (%s); loading with triggers on",
                 type(err.orig).__name__)
        return False


def _check_foreign_keys(conn: Connection, tables) -> None:
    """Every foreign key of every restored table points at an existing row: one scan of
    each child table, every reference left-joined to its parent's primary key."""
    for table in tables:
        fks = [fk for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)]
        if not fks:
            continue
        joins, counts = [], []
        for n, fk in enumerate(fks):
            alias = f"p{n}"
            joins.append(f'LEFT JOIN "{fk.column.table.name}" {alias} '
                         f'ON {alias}."{fk.column.name}" = c."{fk.parent.name}"')
            counts.append(f'count(*) FILTER (WHERE c."{fk.parent.name}" IS NOT NULL '
                          f'AND {alias}."{fk.column.name}" IS NULL)')
        row = conn.execute(text(f'SELECT {", ".join(counts)} FROM "{table.name}" c {" ".join(joins)}')).one()
        broken = [f"{fk.parent.name} -> {fk.column.table.name} ({bad} rows)"
                  for fk, bad in zip(fks, row) if bad]
        if broken:
            raise IntegrityError(f"restored table {table.name}: foreign keys point at missing rows: "
                                 f"{'; '.join(broken)}")


def _upsert_sqlite(conn: Connection, table, cols, chunks) -> set:
    """Insert or replace rows by primary key; returns the keys seen."""
    pk = [c.name for c in table.primary_key.columns]
    stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=pk,
                                      set_={c.name: stmt.excluded[c.name] for c in cols if c.name not in pk})
    keys: set = set()
    batch: list[dict] = []
    line = 1
    for plain in chunks:
        for row in copytext.decode_lines(cols, plain, first_line=line):
            keys.add(tuple(row[k] for k in pk))
            batch.append(row)
            if len(batch) >= _SQLITE_BATCH:
                conn.execute(stmt, batch)
                batch = []
        line += plain.count(b"\n")
    if batch:
        conn.execute(stmt, batch)
    return keys


def _upsert_pg(conn: Connection, table, cols, chunks) -> None:
    """COPY into a temporary twin, then INSERT ... ON CONFLICT DO UPDATE into the table."""
    names = [c.name for c in cols]
    pk = [c.name for c in table.primary_key.columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names if n not in pk) or f'"{pk[0]}" = EXCLUDED."{pk[0]}"'
    conn.execute(text(f'CREATE TEMP TABLE _sr_load (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP'))
    raw = conn.connection.driver_connection
    with raw.cursor().copy(f"COPY _sr_load ({quoted}) FROM STDIN") as copy:
        for plain in chunks:
            copy.write(plain)
    conn.execute(text(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM _sr_load '
                      f'ON CONFLICT ({", ".join(pk)}) DO UPDATE SET {updates}'))
    conn.execute(text("DROP TABLE _sr_load"))


def _drop_absent(conn: Connection, table, keep_from_latest) -> None:
    """A whole-copied table holds exactly the latest snapshot's rows."""
    pk = list(table.primary_key.columns)
    keys = keep_from_latest()
    if len(pk) != 1:
        return
    existing = set(conn.execute(select(pk[0])).scalars())
    gone = [k for k in existing if (k,) not in keys]
    for start in range(0, len(gone), 500):
        conn.execute(delete(table).where(pk[0].in_(gone[start:start + 500])))


def _reset_counters(conn: Connection, manifest: Manifest) -> None:
    """Sequences and the change counter continue after the restored data, never reuse."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT setval('strongroom_change_seq', :v, :called)"),
                     {"v": max(manifest.change_watermark, 1), "called": manifest.change_watermark > 0})
        for name in ("audit_logs", "security_events"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                              f"coalesce((SELECT max(id) FROM {name}), 0) + 1, false)"))
    else:
        conn.execute(text("UPDATE change_counter SET value = :v WHERE name = 'sync_version'"),
                     {"v": manifest.change_watermark})


def _read_in_key_order(conn: Connection) -> None:
    """Plan the proof's read-backs as index scans in key order. A just-loaded table has
    no statistics, and PostgreSQL then picked a parallel sequential scan and a sort that
    spilled to disk (work_mem), twice the time of walking the key index over rows that
    were loaded in key order anyway. Transaction-local."""
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        conn.execute(text(f"SET LOCAL {setting} = off"))
    conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def _reencoded_sha(conn: Connection, table) -> tuple[str, int]:
    cols = copytext.columns(table)
    digest = hashlib.sha256()
    rows = 0
    if conn.dialect.name == "postgresql":
        _read_in_key_order(conn)
        raw = conn.connection.driver_connection
        buf = bytearray()               # hashed a MiB at a time: a call per row costs more
        with raw.cursor().copy(copytext.copy_out_sql(table)) as copy:
            for block in copy:              # one row per CopyData message (protocol docs)
                buf += block
                rows += 1
                if len(buf) >= 1 << 20:
                    digest.update(buf)
                    buf.clear()
        digest.update(buf)
        return digest.hexdigest(), rows
    result = conn.execute(copytext.select_for_copy(table))
    while batch := result.fetchmany(_SQLITE_BATCH):
        data = copytext.encode_rows(cols, batch)
        digest.update(data)
        rows += len(batch)
    return digest.hexdigest(), rows


def dest_engine(dest: str) -> Engine:
    """The engine for a restore's `dest`; a URL that is not one is a ValidationError
    naming `dest` (the parameter the person gave), never the URL, which may hold a
    password, and never `database.url`, the daemon's own setting."""
    try:
        return make_engine(dest)
    except ConfigError as exc:
        why = ("names an engine Strongroom does not restore into" if "unsupported engine" in str(exc)
               else "is not a database URL")
        raise ValidationError(f"restore: dest (the target database) {why} (give "
                              "sqlite:////path/to/new.db or postgresql://user@host/database)") from None


def check_request(dest: str, *, force: bool, live: Engine | None = None) -> None:
    """What can be known about a restore's target before a job is queued: its URL is a
    database URL, the database answers, and it is empty unless `force`. Found here, a
    mistake is refused at once, by name, instead of as a failed run minutes later. A
    SQLite file that does not exist yet is fine (the restore creates it) and is not
    created here. A target that is a live database (`live`, or one a daemon serves) is
    let through to the run, which refuses it and audits the attempt as a failed
    RESTORE: an attempt on live data is worth a record, a typo is not."""
    engine = dest_engine(dest)
    try:
        if engine.dialect.name == "sqlite" and not _sqlite_file_exists(engine):
            return
        try:
            refuse_live_target(engine, live)
        except ConflictError:
            return
        except DBAPIError:
            pass                  # unreachable: said below, when it is opened
        try:
            with engine.connect() as conn:
                have = set(inspect(conn).get_table_names())
                empty = not {m.__tablename__ for m in _EMPTY_CHECK} <= have or is_empty(conn)
        except DBAPIError as exc:
            raise ValidationError("restore: dest (the target database) cannot be opened "
                                  f"({driver_message(exc, type(exc).__name__)})") from None
        if not empty and not force:
            raise ConflictError("restore: dest (the target database) is not empty; restoring over "
                                "live data needs force (which first empties it); nothing was queued")
    finally:
        engine.dispose()


def _sqlite_file_exists(engine: Engine) -> bool:
    database = engine.url.database
    return bool(database) and database != ":memory:" and os.path.exists(database)


def refuse_live_target(target: Engine, live: Engine | None) -> None:
    """Refuse a target that is a live database: `live` (the caller's own, e.g. the
    daemon's) or any database a running daemon serves, decided by identity, never by
    how the URL is spelled (core.db.identity). `force` does not override this: it
    means "a non-empty database that is not the live one". Restoring a practice over
    its own database is disaster recovery, done offline with the daemon stopped."""
    target_id = identity.of_engine(target)
    if target_id is None:                 # a SQLite file not yet created: nothing to lose
        return
    if live is not None and identity.of_engine(live) == target_id:
        raise ConflictError("the target is this daemon's own live database (the same "
                            f"{_what(target_id)}, however its URL is spelled); nothing was "
                            "changed. Restore into an empty database and switch over, or stop "
                            "the daemon and restore offline with `strongroom restore --force`")
    if identity.served_by_daemon(target):
        raise ConflictError("the target is a live database: a running strongroomd serves it "
                            "(it holds its leader lock); nothing was changed. Stop that daemon "
                            "before restoring over its database")


def _what(ident: identity.DatabaseIdentity) -> str:
    return ("PostgreSQL cluster and database oid" if ident.engine == "postgresql"
            else "SQLite file (device and inode)")


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
    plan = _Plan(repo, chain, by_name, progress)
    own_engine = engine is None
    engine = engine or make_engine(dest_url)
    try:
        refuse_live_target(engine, live)
        written: list[str] = []
        restored = None
        if files_target is not None and manifest.files is not None:
            restored = backup_files.restore(repo, manifest.files, files_target, progress, written)
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


def _cost(entry) -> float:
    """A table's restore work, to order the loads: per-row work (index entries) weighs as
    much as per-byte work at about 4 KiB a row (measured at scale 1: the audit log's 12
    MB took as long as 150 MB of session notes). The audit log counts its rows twice:
    once loaded, the whole hash chain is verified row by row before anything else can
    finish, so it must not be the last load."""
    rows = entry.row_count * (2 if entry.name == AuditLog.__tablename__ else 1)
    return rows + sum(c.size for c in entry.chunks) / 4096


class _Plan:
    """What to load, table by table: each table's base entry and every later link's entry
    for it, in chain order. Tables are independent of each other until the foreign keys
    are proven at the end, so they can load in any order (or in parallel)."""

    def __init__(self, repo: Repository, chain: list[Manifest], by_name: dict, progress) -> None:
        self.repo = repo
        self.chain = chain
        self.manifest = chain[-1]
        self.by_name = by_name
        self.keys: keybag.Filled | None = None
        self.steps: dict[str, list] = {}
        for position, link in enumerate(chain):
            for entry in link.tables:
                self.steps.setdefault(entry.name, []).append((position, link, entry))
        self.total = sum(t.row_count for link in chain for t in link.tables)
        self._done = 0
        self._lock = threading.Lock()
        self._progress = progress

    def tables(self) -> list[str]:
        """Parents before children (the schema's dependency order)."""
        return [name for name in self.by_name if name in self.steps]

    def by_size(self) -> list[str]:
        """Largest first, so two workers finish together rather than one waiting on the
        biggest table at the end."""
        return sorted(self.tables(), key=lambda n: -sum(c.size for _, _, e in self.steps[n] for c in e.chunks))

    def base_units(self, workers: int) -> list[tuple[str, int, int]]:
        """(table, part, parts) for every base load, largest first. A table is cut into
        `workers` parts only when its base is its final content (no later link touches
        it and it is whole-copied), its key can select a part's rows by range (so each
        part is proven on its own, `_prove_part`), and it has two chunks a part at least."""
        units = []
        for name in self.tables():
            steps = self.steps[name]
            entry = steps[0][2]
            final = next((e for e in self.manifest.tables if e.name == name), None)
            split = (len(steps) == 1 and final is entry and entry.mode == "full"
                     and len(entry.chunks) >= 2 * workers
                     and copytext.range_key(self.by_name[name]) is not None)
            parts = workers if split else 1
            units += [(_cost(entry) / parts, name, part, parts) for part in range(parts)]
        return [(name, part, parts) for _, name, part, parts in sorted(units, key=lambda u: -u[0])]

    def part_bounds(self, name: str, part: int, parts: int) -> tuple[int, int]:
        """Part `part` of `parts` of the table's base chunks, as a [start, end) range:
        contiguous runs (segments end at row ends, so each run is whole rows, and rows
        are in key order)."""
        count = len(self.steps[name][0][2].chunks)
        return part * count // parts, (part + 1) * count // parts

    def part_chunks(self, name: str, part: int, parts: int) -> list:
        start, end = self.part_bounds(name, part, parts)
        return self.steps[name][0][2].chunks[start:end]

    def key_range(self, name: str, part: int, parts: int) -> tuple[str | None, str | None]:
        """The keys part `part` holds: from its first row's key up to (not including) the
        next part's first row's key, open at either end of the table."""
        def first_key_of(chunk_part: int) -> str:
            ref = self.part_chunks(name, chunk_part, parts)[0]
            return copytext.first_key(self.by_name[name], self.repo.load_chunk(ref, recheck_address=False))
        return (first_key_of(part) if part > 0 else None,
                first_key_of(part + 1) if part + 1 < parts else None)

    def loaded(self, rows: int, name: str) -> None:
        with self._lock:
            self._done += rows
            self._progress(self._done, self.total, f"restored {name}")


def _apply_table(conn: Connection, plan: _Plan, name: str, pool: ThreadPoolExecutor) -> None:
    """Load one table's base, then apply each later link's entry for it in order."""
    _load_base(conn, plan, name, 0, 1, pool)
    _apply_links(conn, plan, name, pool)


def _load_base(conn: Connection, plan: _Plan, name: str, part: int, parts: int,
               pool: ThreadPoolExecutor) -> None:
    """Part `part` of `parts` of the table's base entry (its chunks cut into contiguous
    runs; segments end at row ends, so each run is whole rows). The base's SHA-256 is
    checked while loading when it loads whole; a part is proven by reading it back
    (`_prove_part`), and every chunk is authenticated on its own (AES-GCM, bound to its
    keyed address) either way."""
    _, link, entry = plan.steps[name][0]
    table = plan.by_name[name]
    cols = copytext.columns(table)
    if copytext.column_names(cols) != entry.columns:
        raise IntegrityError(f"snapshot table {entry.name}: columns differ from this schema")
    start, end = plan.part_bounds(name, part, parts)
    refs = entry.chunks[start:end]
    digest = hashlib.sha256()

    def chunks():
        for plain in _prefetched(plan.repo, refs, pool):
            if parts == 1:
                digest.update(plain)
            yield plain
    if conn.dialect.name == "postgresql":
        _load_table_pg(conn, table, chunks())
    else:
        _load_table_sqlite(conn, table, cols, chunks())
    if parts == 1 and digest.hexdigest() != entry.sha256:
        raise IntegrityError(f"snapshot {link.snapshot_id} table {entry.name}: segments do not "
                             "hash to the manifest's SHA-256")
    n = max(len(entry.chunks), 1)                    # progress: a share of the rows per part
    plan.loaded(entry.row_count * end // n - entry.row_count * start // n if parts > 1 else entry.row_count,
                entry.name)


def _apply_links(conn: Connection, plan: _Plan, name: str, pool: ThreadPoolExecutor) -> None:
    """Each later link's entry for the table, in chain order."""
    pg = conn.dialect.name == "postgresql"
    table = plan.by_name[name]
    cols = copytext.columns(table)
    for _, link, entry in plan.steps[name][1:]:
        if copytext.column_names(cols) != entry.columns:
            raise IntegrityError(f"snapshot table {entry.name}: columns differ from this schema")
        digest = hashlib.sha256()

        def chunks(entry=entry, digest=digest):
            for plain in _prefetched(plan.repo, entry.chunks, pool):
                digest.update(plain)
                yield plain
        if entry.mode == "append":
            if pg:
                _load_table_pg(conn, table, chunks())
            else:
                _load_table_sqlite(conn, table, cols, chunks())
        elif pg:
            _upsert_pg(conn, table, cols, chunks())
            if entry.mode == "full":
                _drop_absent(conn, table, lambda entry=entry: _keys_of(plan.repo, entry, table, cols))
        else:
            keys = _upsert_sqlite(conn, table, cols, chunks())
            if entry.mode == "full":
                _drop_absent(conn, table, lambda keys=keys: keys)
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(f"snapshot {link.snapshot_id} table {entry.name}: segments do not "
                                 "hash to the manifest's SHA-256")
        plan.loaded(entry.row_count, entry.name)


def _prove_table(conn: Connection, plan: _Plan, name: str, proven_rows: int | None = None) -> None:
    """The restored table re-encodes to the snapshot's bytes (whole-copied tables) and
    holds the row count the snapshot recorded. `proven_rows`: the table was loaded and
    proven in parts (`_prove_part`), which read back this many rows."""
    entry = next((e for e in plan.manifest.tables if e.name == name), None)
    if entry is None:
        return
    table = plan.by_name[name]
    if proven_rows is not None:
        if proven_rows != entry.row_count or (entry.live_rows is not None and proven_rows != entry.live_rows):
            raise IntegrityError(f"restored table {entry.name} has {proven_rows} rows, the snapshot "
                                 f"recorded {entry.row_count}")
        return
    if entry.mode == "full":
        sha, rows = _reencoded_sha(conn, table)
        if rows != entry.row_count or sha != entry.sha256:
            raise IntegrityError(f"restored table {entry.name} differs from the snapshot "
                                 f"({rows} rows vs {entry.row_count}; hash "
                                 f"{'equal' if sha == entry.sha256 else 'differs'})")
    if entry.live_rows is not None:
        rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if rows != entry.live_rows:
            raise IntegrityError(f"restored table {entry.name} has {rows} rows, the snapshot "
                                 f"recorded {entry.live_rows}")


def _prove_part(conn: Connection, plan: _Plan, name: str, part: int, parts: int) -> int:
    """Part of a table loaded in parts, read back in key order, must cut into exactly its
    chunks: each run of bytes the size of a chunk hashing to that chunk's sealed address
    (the manifest, HMAC'd, lists them in order), nothing left over. The parts' key ranges
    cover every key, so together they prove the whole table, and each part is proven on
    its own connection as soon as it is loaded. Returns the rows read back."""
    table = plan.by_name[name]
    refs = plan.part_chunks(name, part, parts)
    sql = copytext.copy_out_sql(table, key_range=plan.key_range(name, part, parts))
    position, need, mac = 0, refs[0].size, plan.repo.address_hasher()
    buf, rows = bytearray(), 0

    def mismatch(why: str) -> IntegrityError:
        return IntegrityError(f"restored table {name} differs from the snapshot in part {part + 1} of "
                              f"{parts}, chunk {position + 1} of {len(refs)}: {why}")

    def consume() -> None:
        nonlocal position, need, mac
        while buf:
            if position == len(refs):
                raise mismatch("rows past the snapshot's last chunk")
            take = min(len(buf), need)
            with memoryview(buf) as view:
                mac.update(view[:take])
            del buf[:take]
            need -= take
            if need == 0:
                if mac.hexdigest() != refs[position].address:
                    raise mismatch("its rows do not hash to the chunk's address")
                position += 1
                need = refs[position].size if position < len(refs) else 0
                mac = plan.repo.address_hasher()

    _read_in_key_order(conn)
    raw = conn.connection.driver_connection
    with raw.cursor().copy(sql) as copy:
        for block in copy:              # one row per CopyData message (protocol docs)
            buf += block
            rows += 1
            if len(buf) >= 1 << 20:
                consume()
    consume()
    if position != len(refs):
        raise mismatch("rows missing")
    return rows


def _prove_chain(engine: Engine, plan: _Plan) -> audit.VerifyResult:
    chain_check = audit.verify(engine)
    if not chain_check.ok:
        raise IntegrityError(f"restored audit chain is broken at entry {chain_check.broken_id}: {chain_check.reason}")
    if chain_check.head_hash != plan.manifest.audit.hash:
        raise IntegrityError("restored audit chain does not end at the snapshot's recorded head")
    return chain_check


def _begin_load(conn: Connection) -> bool:
    """Session settings for loading; True when triggers are off (PostgreSQL replica)."""
    if conn.dialect.name != "postgresql":
        # Self-references (backups.parent_id) may point forward within a table:
        # check foreign keys at commit, as PostgreSQL does at the end of each COPY.
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        return False
    set_scope(conn, practice_id=None, system=True)
    conn.execute(text(copytext.pg_session_sql()))
    # JIT compiling the proofs' scans of unanalysed tables cost more than it saved.
    conn.execute(text("SET LOCAL jit = off"))
    changes.hold_tracking(conn)
    return _replica_mode(conn)


def _restore_in_place(plan: _Plan, engine: Engine, force: bool) -> audit.VerifyResult:
    """One transaction over the live schema: SQLite, and PostgreSQL where the role may
    not create and swap schemas. A failure anywhere rolls everything back."""
    upgrade(engine)
    with transaction(engine) as conn, ThreadPoolExecutor(PREFETCH, thread_name_prefix="restore") as pool:
        changes.hold_tracking(conn)
        if not is_empty(conn):
            if not force:
                raise ConflictError("the target database is not empty; restoring over live data "
                                    "needs --force (which first empties it)")
            _wipe(conn)
        _clear_seeded(conn, plan)
        triggers_off = _begin_load(conn)
        for name in plan.tables():
            _apply_table(conn, plan, name, pool)
        _reset_counters(conn, plan.manifest)
        changes.resume_tracking(conn)
        if triggers_off:
            _check_foreign_keys(conn, [plan.by_name[n] for n in plan.tables()])
        for name in plan.tables():
            _prove_table(conn, plan, name)
        plan.keys = _fill_keys(conn, plan)
    return _prove_chain(engine, plan)


def _fill_keys(conn: Connection, plan: _Plan) -> keybag.Filled:
    """After the proofs (which compare the snapshot's bytes, wrapped keys absent): the
    data keys from the repository's key bag, with change tracking held so the key
    records keep the versions the snapshot gave them."""
    keyring = plan.repo.keyring
    if keyring is None:
        raise KeyUnavailableError("restore needs the repository opened with a keyring (the KEK)")
    changes.hold_tracking(conn)
    filled = keybag.fill(conn, plan.repo, keyring, in_bag_format=plan.manifest.keys_in_bag)
    changes.resume_tracking(conn)
    if filled.missing:
        log.warning("restore: %d data key(s) the snapshot needs are not in the key bag", filled.missing)
    return filled


def _restore_staged(plan: _Plan, engine: Engine, force: bool) -> audit.VerifyResult:
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
            parallel = WORKERS if _probe_replica(conn) else 1
        upgrade(stage.engine)
        with transaction(stage.engine) as conn:
            _clear_seeded(conn, plan)
        chain_check: list[audit.VerifyResult] = []

        units = plan.base_units(parallel)
        deferred = _defer_indexes(stage.engine, plan.tables()) if parallel > 1 else {}
        unloaded = Counter(name for name, _, _ in units)
        counting = threading.Lock()

        proven_rows: Counter = Counter()

        def load(name: str, part: int, parts: int) -> None:
            with transaction(stage.engine) as conn:
                _begin_load(conn)
                _load_base(conn, plan, name, part, parts, pool)
            if parts > 1:             # proven at once, while the other parts still load
                with transaction(stage.engine) as conn:
                    _begin_load(conn)
                    rows = _prove_part(conn, plan, name, part, parts)
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
                _begin_load(conn)
                _apply_links(conn, plan, name, pool)
                _prove_table(conn, plan, name, rows_in_parts)
            for ddl in deferred.get(name, ()):
                with transaction(stage.engine) as conn:
                    conn.execute(text(ddl))
            if name == AuditLog.__tablename__:
                chain_check.append(_prove_chain(stage.engine, plan))
            with counting:
                complete.add(name)
                ready = [n for n in unchecked
                         if n in complete and _parents(plan.by_name[n]) & set(plan.steps) <= complete]
                unchecked.difference_update(ready)
            if ready:             # foreign keys as soon as a table and all it refers to are in
                with transaction(stage.engine) as conn:
                    _check_foreign_keys(conn, [plan.by_name[n] for n in ready])

        with ThreadPoolExecutor(PREFETCH * parallel, thread_name_prefix="restore-fetch") as pool, \
                ThreadPoolExecutor(parallel, thread_name_prefix="restore-load") as loaders:
            if parallel > 1:
                _run_all(loaders, [(load, name, part, parts) for name, part, parts in units])
            else:                      # triggers on: parents before children, one at a time
                for name in plan.tables():
                    with transaction(stage.engine) as conn:
                        _begin_load(conn)
                        _load_base(conn, plan, name, 0, 1, pool)
                for name in plan.tables():
                    finish(name)
        if unchecked:
            raise IntegrityError(f"restore left tables unproven: {', '.join(sorted(unchecked))}")
        with transaction(stage.engine) as conn:
            set_scope(conn, practice_id=None, system=True)
            _reset_counters(conn, plan.manifest)
        if not chain_check:                                  # a snapshot without audit_logs
            chain_check.append(_prove_chain(stage.engine, plan))
        with transaction(stage.engine) as conn:
            _begin_load(conn)
            plan.keys = _fill_keys(conn, plan)
        stage.swap_in(force=force, is_empty=is_empty)
    return chain_check[0]


def _defer_indexes(engine: Engine, names: list[str]) -> dict[str, list[str]]:
    """Drop the staged tables' plain indexes (not primary keys, not unique ones: those
    the load, the proofs and the foreign-key checks use or enforce) and return their
    definitions, to build once each table is complete: one sorted build costs far less
    than an index entry per row loaded."""
    deferred: dict[str, list[str]] = {}
    with transaction(engine) as conn:
        for name in names:
            rows = conn.execute(text(
                "SELECT ic.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class ic ON ic.oid = i.indexrelid "
                "WHERE i.indrelid = to_regclass(:t) AND NOT i.indisunique AND NOT i.indisprimary "
                "ORDER BY ic.relname"), {"t": f'"{name}"'}).all()
            for index, _ in rows:
                conn.execute(text(f'DROP INDEX "{index}"'))
            if rows:
                deferred[name] = [ddl for _, ddl in rows]
    return deferred


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


def _probe_replica(conn: Connection) -> bool:
    with conn.begin():
        return _replica_mode(conn)


def _prefetched(repo: Repository, refs, pool: ThreadPoolExecutor):
    """Chunks in order, the next few fetched and decrypted in threads (zstd and AES-GCM
    release the GIL) while the current one is written to the database."""
    pending: deque = deque()
    for ref in refs:
        # Every byte is checked against the sealed manifest's table hashes (while loading,
        # or by the table's proof), so the per-chunk keyed-hash recheck would be a third pass.
        pending.append(pool.submit(repo.load_chunk, ref, recheck_address=False))
        if len(pending) > PREFETCH:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _keys_of(repo: Repository, entry, table, cols) -> set:
    pk = [c.name for c in table.primary_key.columns]
    keys = set()
    for ref in entry.chunks:
        for row in copytext.decode_lines(cols, repo.load_chunk(ref)):
            keys.add(tuple(row[k] for k in pk))
    return keys


def run(ctx, params: dict, progress) -> dict[str, Any]:
    """The `restore` job: snapshot `snapshot_id` of configuration `configuration` into the
    database at `dest`, which must be empty (`force` replaces it). Never into the
    daemon's own database: restoring over the live data while it runs is not a restore."""
    from strongroom.core.db.engine import normalise_url
    from strongroom.core.backup.snapshots import open_configured
    from strongroom.core.files.store import files_target_url
    from strongroom.core.jobs.kinds import parse

    asked = parse("restore", params)
    dest_engine(asked.dest).dispose()             # a bad URL named as `dest`, not database.url
    snapshot_id, dest, force = asked.snapshot_id, normalise_url(asked.dest), asked.force
    _, repo = open_configured(ctx, params)
    files_target = backup_files.destination(dest, asked.files_dest, repo.read_manifest(snapshot_id),
                                            files_target_url(ctx.settings))
    lock = repo.acquire_lock("shared", "restore")
    outcome, result = "failure", None
    try:
        result = restore(repo, snapshot_id, dest, force=force, progress=progress, live=ctx.engine,
                         files_target=files_target)
        outcome = "success"
    finally:
        lock.release()
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=params.get("actor", "system"), action="RESTORE", table_name="backups",
                         record_id=snapshot_id, outcome=outcome,
                         details={"target_engine": dest.split(":", 1)[0].split("+", 1)[0], "force": force,
                                  **({"rows": result.rows, "seconds": result.seconds, "files": result.files}
                                     if result else {})})
    return result.as_dict()
