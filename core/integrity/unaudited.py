"""Unaudited changes: rows whose content changed between the two newest snapshots with
no audit entry for them in between.

Every write the application makes to a clinical row appends an audit entry naming the
table and row in the same transaction; PostgreSQL's triggers audit writes from psql or
another program too. A row that differs between two snapshots with no such entry was
changed behind the audit log's back (triggers off, the app marker forged, SQLite opened
directly, a restore of doctored data): exactly what an auditor must hear about.

Per backup configuration, the two newest succeeded snapshots are compared table by
table. A snapshot's state of a table is its chain's last full entry with the later
links' changed rows laid over it; every segment is sorted by primary key, so both
states are merged as sorted streams and joined on the key, one chunk per link in
memory whatever the table's size. A row is compared by its stored line (ciphertext,
checksum and all) less `sync_version`, a local counter that sync's stamping moves
without changing the row.

A changed row is accounted for by, among the audit entries committed between the two
snapshots (ids after the older manifest's audit head up to the newer one's: appends
are serialised by a lock held to commit, so a snapshot holds exactly the entries up to
its head, and an entry commits with the write it records): an entry for that table and
row; a bulk entry for the table listing
the row (retention's `ids`, or a bulk import's `first_id`..`last_id`, for rows it
created); for sessions and files, an entry
for their client (erasure and retention tombstone a client's sessions with it); a
version that came from a sync peer (audited at the site that made it); or a row moved
to another data key while a key rotation was audited (it audits per run). Anything else is
a failure, reported by table and row id, never by value.

An incremental snapshot carries the rows whose change version moved; a write that did
not take one (raw SQL) is seen by the next full snapshot. The evidence says which kind
each comparison had.
"""
from __future__ import annotations

import hashlib
import heapq
import json
import uuid
from collections.abc import Iterator
from itertools import islice

from sqlalchemy import Connection, and_, select
from strongroom.core.backup import configurations
from strongroom.core.backup.manifest import Manifest, TableEntry
from strongroom.core.backup.repository import Repository, open_repository
from strongroom.core.backup.snapshots import chain_of
from strongroom.core.context import Context
from strongroom.core.db.models import AuditLog, Backup, BackupConfiguration, SyncRow
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError, StrongroomError
from strongroom.core.integrity import FAIL, MAX_EVIDENCE_IDS, OK, WARN, record, worst
from strongroom.core.storage import open_target

# The clinical tables: every change to them is audited per row (core/repository/).
TABLES = ("practices", "clients", "therapy_sessions", "client_files")
# A session or file is also accounted for by an entry for its client.
PARENT = {"therapy_sessions": "client_id", "client_files": "client_id"}
# Entries naming many rows at once, in their details: never reads or exports.
_READS = ("READ", "EXPORT")
BATCH = 500

_backups, _configs = Backup.__table__, BackupConfiguration.__table__
_audit, _sync_rows = AuditLog.__table__, SyncRow.__table__

# (row id, created|changed|removed, parent id, re-encrypted under another data key)
Changed = tuple[str, str, str | None, bool]


def check_unaudited(ctx: Context, progress) -> dict:
    """One recorded check with a finding per backup configuration: fail if any row
    changed between its two newest snapshots without an audit entry, warn where fewer
    than two snapshots exist (nothing to compare)."""
    started = utcnow()
    status, findings = OK, {}
    pairs = _newest_pairs(ctx)
    for n, (name, target, snaps) in enumerate(pairs, 1):
        if len(snaps) < 2:
            finding = {"status": WARN, "problem": f"{len(snaps)} succeeded snapshot(s): nothing to compare"}
        else:
            try:
                finding = _compare(ctx, name, target, snaps[1], snaps[0], progress)
            except (StrongroomError, OSError) as exc:
                # A manifest or chunk that cannot be read is evidence gone: the comparison
                # cannot vouch for the rows, which is a failure, said in the store's words.
                finding = {"status": FAIL, "problem": f"cannot compare: {type(exc).__name__}: {exc}"[:300]}
            finding.update(older=str(snaps[1]["id"]), newer=str(snaps[0]["id"]))
        findings[name] = finding
        status = worst(status, finding["status"])
        progress(n, len(pairs), f"unaudited changes: {name}")
    if not findings:
        status = WARN
    unaudited = sum(f.get("unaudited", 0) for f in findings.values())
    changed = sum(f.get("changed", 0) for f in findings.values())
    actual = ("no backup configured" if not findings else
              f"{unaudited} of {changed} changed rows without an audit entry")
    return record(ctx, "unaudited", "unaudited changes", None, status,
                  "every row changed between the two newest snapshots has an audit entry", actual,
                  {"configurations": len(findings), "changed": changed, "unaudited": unaudited,
                   "tables": list(TABLES), "findings": findings}, started)


def _newest_pairs(ctx: Context) -> list[tuple[str, str | None, list[dict]]]:
    """Per active configuration (and per configuration that has snapshots): its name,
    its target and its two newest succeeded snapshots, newest first."""
    out = []
    with ctx.engine.connect() as conn:
        configs = conn.execute(select(_configs.c.id, _configs.c.name, _configs.c.target, _configs.c.is_active)
                               .order_by(_configs.c.name)).all()
        for config in configs:
            snaps = [dict(r._mapping) for r in conn.execute(
                select(_backups.c.id, _backups.c.kind, _backups.c.started_at, _backups.c.finished_at,
                       _backups.c.verified_at)
                .where(_backups.c.configuration_id == config.id, _backups.c.status == "succeeded")
                .order_by(_backups.c.started_at.desc(), _backups.c.id.desc()).limit(2))]
            if config.is_active or snaps:
                out.append((config.name, config.target, snaps))
    return out


def _open(ctx: Context, name: str, recorded_target: str | None) -> Repository:
    try:
        target = configurations.resolve(ctx.settings, name).target
    except StrongroomError:
        if not recorded_target:
            raise
        target = recorded_target         # a configuration since removed from the file
    return open_repository(open_target(target), ctx.keyring)


def _compare(ctx: Context, name: str, target: str | None, older: dict, newer: dict, progress) -> dict:
    repo = _open(ctx, name, target)
    old_chain, new_chain = chain_of(repo, older["id"]), chain_of(repo, newer["id"])
    low, high = old_chain[-1].audit.id or 0, new_chain[-1].audit.id or 0
    counts = {"changed": 0, "audited": 0, "by_bulk_entry": 0, "by_client": 0, "by_sync": 0,
              "by_key_rotation": 0, "unaudited": 0}
    per_table: dict[str, dict] = {}
    ids: dict[str, list[str]] = {}
    with ctx.engine.connect() as conn:
        for table in TABLES:
            tally = {"changed": 0, "unaudited": 0}
            bulk = None
            for batch in _batches(_changed(repo, old_chain, new_chain, table)):
                if bulk is None:
                    bulk = _bulk_entries(conn, table, low, high)
                left = _account(conn, table, batch, bulk, low, high, counts)
                tally["changed"] += len(batch)
                tally["unaudited"] += len(left)
                ids.setdefault(table, []).extend(left[:MAX_EVIDENCE_IDS - len(ids.get(table, []))])
                progress(tally["changed"], None, f"unaudited changes: {name} {table}")
            per_table[table] = tally
            counts["changed"] += tally["changed"]
    return {"status": FAIL if counts["unaudited"] else OK, **counts,
            "older_kind": old_chain[-1].kind, "newer_kind": new_chain[-1].kind,
            "audit_entries": [low + 1, high], "tables": per_table,
            "ids": {t: v for t, v in ids.items() if v}}


# --- which rows changed ----------------------------------------------------------------

def _state_links(chain: list[Manifest], table: str) -> list[tuple[uuid.UUID, TableEntry]]:
    """The entries that make up a table's state at the chain's last snapshot: the last
    full one and the changed rows laid over it (append-only tables are not compared)."""
    entries = [(m.snapshot_id, e) for m in chain for e in m.tables if e.name == table]
    start = max((i for i, (_, e) in enumerate(entries) if e.mode == "full"), default=0)
    links = entries[start:]
    if any(e.mode == "append" for _, e in links):
        raise IntegrityError(f"snapshot table {table} is stored append-only; it cannot be compared by row")
    return links


def _changed(repo: Repository, old_chain: list[Manifest], new_chain: list[Manifest],
             table: str) -> Iterator[Changed]:
    """Rows of `table` that differ between the two chains' states, in key order."""
    old, new = _state_links(old_chain, table), _state_links(new_chain, table)
    shared = [sid for sid, _ in old] == [sid for sid, _ in new[:len(old)]]
    if shared and all(e.row_count == 0 for _, e in new[len(old):]):
        return                           # the newer state is the older one plus nothing
    if old and new and old[-1][1].columns != new[-1][1].columns:
        raise IntegrityError(f"snapshot table {table}: columns differ between the two snapshots "
                             "(a schema change); compare after the next two snapshots")
    older, newer = _state(repo, old, table), _state(repo, new, table)
    a, b = next(older, None), next(newer, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            yield a[0].decode(), "removed", a[2], False
            a = next(older, None)
        elif a is None or b[0] < a[0]:
            yield b[0].decode(), "created", b[2], False
            b = next(newer, None)
        else:
            if a[1] != b[1]:
                yield b[0].decode(), "changed", b[2], a[3] != b[3]
            a, b = next(older, None), next(newer, None)


def _state(repo: Repository, links: list[tuple[uuid.UUID, TableEntry]], table: str
           ) -> Iterator[tuple[bytes, bytes, str | None, bytes | None]]:
    """(key, digest, parent id, data key id) per row of the state, in key order: the links' sorted
    rows merged, the latest link's version of each key kept."""
    streams = [_rows(repo, snapshot_id, entry, position, table)
               for position, (snapshot_id, entry) in enumerate(links)]
    pending = None
    for row in heapq.merge(*streams):
        if pending is not None and pending[0] != row[0]:
            yield pending[0], pending[2], pending[3], pending[4]
        pending = row
    if pending is not None:
        yield pending[0], pending[2], pending[3], pending[4]


def _rows(repo: Repository, snapshot_id: uuid.UUID, entry: TableEntry, position: int, table: str
          ) -> Iterator[tuple[bytes, int, bytes, str | None, bytes | None]]:
    """(key, link position, digest, parent id, data key id) per row of one entry, chunk by chunk,
    the chunks proven against the entry's SHA-256 once read to the end."""
    columns = entry.columns
    if "id" not in columns:
        raise IntegrityError(f"snapshot table {table} has no id column")
    at_id = columns.index("id")
    at_version = columns.index("sync_version") if "sync_version" in columns else None
    parent = PARENT.get(table)
    at_parent = columns.index(parent) if parent in columns else None
    at_key = columns.index("key_id") if "key_id" in columns else None
    digest_all = hashlib.sha256()
    carry = b""
    previous = None
    for ref in entry.chunks:
        plain = repo.load_chunk(ref)
        digest_all.update(plain)
        lines = (carry + plain).split(b"\n")
        carry = lines.pop()
        for line in lines:
            fields = line.split(b"\t")
            key = fields[at_id]
            if previous is not None and key <= previous:
                raise IntegrityError(f"snapshot {snapshot_id} table {table}: rows are not in key order")
            previous = key
            if at_version is not None:
                fields[at_version] = b""
            parent_id = fields[at_parent].decode() if at_parent is not None and fields[at_parent] != b"\\N" else None
            yield (key, position, hashlib.sha256(b"\t".join(fields)).digest(), parent_id,
                   fields[at_key] if at_key is not None else None)
    if carry:
        raise IntegrityError(f"snapshot {snapshot_id} table {table}: the last row is cut short")
    if digest_all.hexdigest() != entry.sha256:
        raise IntegrityError(f"snapshot {snapshot_id} table {table}: segments do not hash to the "
                             "manifest's SHA-256")


def _batches(rows: Iterator[Changed]) -> Iterator[list[Changed]]:
    while batch := list(islice(rows, BATCH)):
        yield batch


# --- which changes the audit log accounts for ----------------------------------------

def _window(low: int, high: int):
    """The entries committed after the older snapshot and by the newer one."""
    return and_(_audit.c.id > low, _audit.c.id <= high)


def _bulk_entries(conn: Connection, table: str, low: int, high: int) -> list[dict]:
    """Entries in the window that name many rows of `table` in their details."""
    out = []
    for action, details in conn.execute(select(_audit.c.action, _audit.c.details).where(
            _audit.c.table_name == table, _audit.c.record_id.is_(None), _audit.c.action.not_in(_READS),
            _window(low, high))):
        try:
            parsed = json.loads(details)
        except (TypeError, ValueError):
            continue
        if not isinstance(parsed, dict):
            continue
        listed = parsed.get("ids")
        first, last = parsed.get("first_id"), parsed.get("last_id")
        # An import names what it created: it accounts for no change to an older row.
        kinds = ("created",) if action == "CREATE" else ("created", "changed", "removed")
        if isinstance(listed, list):
            out.append({"ids": frozenset(str(i) for i in listed), "kinds": kinds})
        elif isinstance(first, str) and isinstance(last, str):
            out.append({"range": (min(first, last), max(first, last)), "kinds": kinds})
    return out


def _named(bulk: list[dict], row_id: str, kind: str) -> bool:
    for entry in bulk:
        if kind not in entry["kinds"]:
            continue
        if "ids" in entry and row_id in entry["ids"]:
            return True
        if "range" in entry and entry["range"][0] <= row_id <= entry["range"][1]:
            return True
    return False


def _audited(conn: Connection, table: str, row_ids: set[str], low: int, high: int) -> set[str]:
    if not row_ids:
        return set()
    return set(conn.execute(select(_audit.c.record_id).distinct().where(
        _audit.c.table_name == table, _audit.c.record_id.in_(sorted(row_ids)), _window(low, high))).scalars())


def _key_rotation_in(conn: Connection, low: int, high: int) -> bool:
    """A data key rotation ran in the window (it audits per run, not per row)."""
    return conn.execute(select(_audit.c.id).where(
        _audit.c.table_name == "data_keys", _audit.c.action == "KEY_ROTATE", _window(low, high)).limit(1)
    ).first() is not None


def _from_peers(conn: Connection, table: str, row_ids: set[str]) -> set[str]:
    keys = []
    for row_id in row_ids:
        try:
            keys.append(uuid.UUID(row_id))
        except ValueError:
            continue
    if not keys:
        return set()
    return {str(k) for k in conn.execute(select(_sync_rows.c.row_id).where(
        _sync_rows.c.table_name == table, _sync_rows.c.row_id.in_(keys), _sync_rows.c.source.is_not(None)))}


def _account(conn: Connection, table: str, batch: list[Changed], bulk: list[dict], low: int,
             high: int, counts: dict) -> list[str]:
    """Count how each change in `batch` is accounted for; the row ids nothing accounts for."""
    left = {row_id for row_id, _, _, _ in batch}
    kinds = {row_id: kind for row_id, kind, _, _ in batch}
    for reason, found in (("audited", lambda ids: _audited(conn, table, ids, low, high)),
                          ("by_bulk_entry", lambda ids: {i for i in ids if _named(bulk, i, kinds[i])}),
                          ("by_sync", lambda ids: _from_peers(conn, table, ids))):
        hit = found(left) & left
        counts[reason] += len(hit)
        left -= hit
    if left and table in PARENT:
        parents = {p for row_id, _, p, _ in batch if row_id in left and p}
        covered = _audited(conn, "clients", parents, low, high)
        hit = {row_id for row_id, _, p, _ in batch if row_id in left and p in covered}
        counts["by_client"] += len(hit)
        left -= hit
    rekeyed = {row_id for row_id, _, _, moved in batch if moved and row_id in left}
    if rekeyed and _key_rotation_in(conn, low, high):
        counts["by_key_rotation"] += len(rekeyed)
        left -= rekeyed
    counts["unaudited"] += len(left)
    return sorted(left)
