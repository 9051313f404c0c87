"""The restore plan: for each table, its base entry and every later link's entry, in
chain order; what to load first (largest work), how a big table is cut into parts,
chunks fetched and decrypted ahead in threads, and the data keys filled in from the
repository's key bag once the proofs have passed."""
from __future__ import annotations

import logging

import hashlib
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, text

from strongroom.core.backup import copytext, keybag
from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import Repository
from strongroom.core.db.models import AuditLog
from strongroom.core.errors import IntegrityError, KeyUnavailableError
from strongroom.core.repository import changes
from strongroom.core.restore.load import drop_absent, load_table_pg, load_table_sqlite, upsert_pg, upsert_sqlite

log = logging.getLogger(__name__)


PREFETCH = 2

def clear_seeded(conn: Connection, plan: "Plan") -> None:
    """Rows a migration seeds in a new database that the snapshot carries too: the
    site's sync identity (migration 0009). The restored database is the snapshot's site."""
    if "sync_site" in plan.tables():
        conn.execute(text("DELETE FROM sync_site"))

def _cost(entry) -> float:
    """A table's restore work, to order the loads: per-row work (index entries) weighs as
    much as per-byte work at about 4 KiB a row (measured at scale 1: the audit log's 12
    MB took as long as 150 MB of session notes). The audit log counts its rows twice:
    once loaded, the whole hash chain is verified row by row before anything else can
    finish, so it must not be the last load."""
    rows = entry.row_count * (2 if entry.name == AuditLog.__tablename__ else 1)
    return rows + sum(c.size for c in entry.chunks) / 4096

class Plan:
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
        part is proven on its own, `prove_part`), and it has two chunks a part at least."""
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

    def with_files(self, count: int):
        """The progress callback for restoring `count` client files' content before the
        rows: each file is one more record of the run's one total, so the count goes on
        from the files into the rows instead of restarting at 0 in another unit."""
        self.total += count
        before = self._done

        def restored(done: int, _total: int | None, message: str) -> None:
            with self._lock:
                self._done = before + done
                self._progress(self._done, self.total, message)
        return restored

def apply_table(conn: Connection, plan: Plan, name: str, pool: ThreadPoolExecutor) -> None:
    """Load one table's base, then apply each later link's entry for it in order."""
    load_base(conn, plan, name, 0, 1, pool)
    apply_links(conn, plan, name, pool)

def load_base(conn: Connection, plan: Plan, name: str, part: int, parts: int,
               pool: ThreadPoolExecutor) -> None:
    """Part `part` of `parts` of the table's base entry (its chunks cut into contiguous
    runs; segments end at row ends, so each run is whole rows). The base's SHA-256 is
    checked while loading when it loads whole; a part is proven by reading it back
    (`prove_part`), and every chunk is authenticated on its own (AES-GCM, bound to its
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
        for plain in prefetched(plan.repo, refs, pool):
            if parts == 1:
                digest.update(plain)
            yield plain
    if conn.dialect.name == "postgresql":
        load_table_pg(conn, table, chunks())
    else:
        load_table_sqlite(conn, table, cols, chunks())
    if parts == 1 and digest.hexdigest() != entry.sha256:
        raise IntegrityError(f"snapshot {link.snapshot_id} table {entry.name}: segments do not "
                             "hash to the manifest's SHA-256")
    n = max(len(entry.chunks), 1)                    # progress: a share of the rows per part
    plan.loaded(entry.row_count * end // n - entry.row_count * start // n if parts > 1 else entry.row_count,
                entry.name)

def apply_links(conn: Connection, plan: Plan, name: str, pool: ThreadPoolExecutor) -> None:
    """Each later link's entry for the table, in chain order."""
    pg = conn.dialect.name == "postgresql"
    table = plan.by_name[name]
    cols = copytext.columns(table)
    for _, link, entry in plan.steps[name][1:]:
        if copytext.column_names(cols) != entry.columns:
            raise IntegrityError(f"snapshot table {entry.name}: columns differ from this schema")
        digest = hashlib.sha256()

        def chunks(entry=entry, digest=digest):
            for plain in prefetched(plan.repo, entry.chunks, pool):
                digest.update(plain)
                yield plain
        if entry.mode == "append":
            if pg:
                load_table_pg(conn, table, chunks())
            else:
                load_table_sqlite(conn, table, cols, chunks())
        elif pg:
            upsert_pg(conn, table, cols, chunks())
            if entry.mode == "full":
                drop_absent(conn, table, lambda entry=entry: keys_of(plan.repo, entry, table, cols))
        else:
            keys = upsert_sqlite(conn, table, cols, chunks())
            if entry.mode == "full":
                drop_absent(conn, table, lambda keys=keys: keys)
        if digest.hexdigest() != entry.sha256:
            raise IntegrityError(f"snapshot {link.snapshot_id} table {entry.name}: segments do not "
                                 "hash to the manifest's SHA-256")
        plan.loaded(entry.row_count, entry.name)

def fill_keys(conn: Connection, plan: Plan) -> keybag.Filled:
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

def prefetched(repo: Repository, refs, pool: ThreadPoolExecutor):
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

def keys_of(repo: Repository, entry, table, cols) -> set:
    pk = [c.name for c in table.primary_key.columns]
    keys = set()
    for ref in entry.chunks:
        for row in copytext.decode_lines(cols, repo.load_chunk(ref)):
            keys.add(tuple(row[k] for k in pk))
    return keys
