"""One sync pass between this site and a peer: keys, then each table, in batches.

The job reaches the peer's database directly through its URL, so one process moves
rows both ways: push reads here and applies there, pull reads there and applies here.
Rows travel as stored (ciphertext, blind indexes, wrapped keys): nothing is decrypted to
move, only to check on receipt that each ciphertext opens under its row's key and AAD.

Ordering and safety:
- before anything moves, `preflight` refuses a pair that differs in schema revision,
  KEK, blind-index key or practice, naming what differs;
- a lease in both databases refuses two passes of one pair at once; it expires, so a
  pass killed with -9 does not block the next one for longer than the lease;
- the sending side stamps its local writes (core.sync.stamp) and reads one batch past
  the watermark; the receiving side applies the batch in one transaction; the watermark
  (kept here, in `sync_state`) moves only after that transaction committed. A crash in
  between sends the batch again, and applying a version twice changes nothing (it is
  then dominated), so nothing is half-applied and nothing is applied twice;
- a row received from a peer is not sent back to it (its metadata names the source);
  one that went A -> B -> C arrives at A as a version A has seen, and is skipped;
- a row that fails validation is quarantined with its reason and the batch goes on.
"""
from __future__ import annotations

import contextvars
import gc
import logging
import operator
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert, or_, select, update

from strongroom.core import audit
from strongroom.core.bulk import collector_paused
from strongroom.core.crypto.fields import FORMAT_VERSION, raw_key_id_of
from strongroom.core.crypto.keyring import KEY_RECORD, Keyring, active_singleton
from strongroom.core.db.engine import transaction
from strongroom.core.db.migrate import revision_of
from strongroom.core.db.models import (
    Client,
    DataKey,
    KeyPurpose,
    KeyState,
    Practice,
    SyncConflict,
    SyncLease,
    SyncPeer,
    SyncQuarantine,
    SyncRow,
    User,
)
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError
from strongroom.core.ids import new_id
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.sync import bases
from strongroom.core.sync.idsets import among, held
from strongroom.core.sync import keys as key_sync
from strongroom.core.sync import peers as peer_store
from strongroom.core.sync.conflicts import json_value, queue_conflict, row_image
from strongroom.core.sync.reader import ProcessReader, ReaderFailed, can_read_apart
from strongroom.core.sync.merge import CONFLICT, SKIP, Decision, Policy, decide
from strongroom.core.sync.settings import DEFAULT_BATCH_SIZE
from strongroom.core.sync.site import Clock, site_id
from strongroom.core.sync.stamp import (
    Meta,
    MetaWriter,
    compare,
    past,
    read_with_meta,
    lock_changes,
    merged,
    save_meta,
    stamp_rows,
)
from strongroom.core.sync.writes import write_rows
from strongroom.core.sync.tables import SyncTable, synced

log = logging.getLogger(__name__)

_VERSION_BYTE = bytes([FORMAT_VERSION])

_keys = DataKey.__table__
_peers = SyncPeer.__table__
_leases = SyncLease.__table__
_quarantine = SyncQuarantine.__table__
_conflicts = SyncConflict.__table__
KEYS_TABLE = "data_keys"
LEASE = timedelta(minutes=10)
MAX_BATCH = 5000
COLLECT_EVERY = 25      # batches between passes of the cyclic collector (move_table)


@dataclass
class Side:
    """One of the two databases of a pass."""

    engine: Engine
    keyring: Keyring
    site: str = ""
    label: str = "local"


@dataclass
class TableCounts:
    sent: int = 0
    applied: int = 0
    skipped: int = 0
    conflicts: int = 0
    quarantined: int = 0
    decisions: int = 0

    def add(self, other: "TableCounts") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class PassOptions:
    batch_size: int = DEFAULT_BATCH_SIZE
    policies: dict[str, Policy] = field(default_factory=dict)
    push: bool = True
    pull: bool = True
    tables: frozenset[str] | None = None      # None: every synced table
    # Test hook: called with (direction, table, batch number) after a batch committed on
    # the receiving side: when that is this site (a pull), its watermark committed with
    # it; when it is the peer (a push), before the watermark moved. Lets tests crash there.
    after_batch: Callable[[str, str, int], None] | None = None
    # Rows of a table read in this process before the rest are read by a child process
    # (core.sync.reader): its start-up (about half a second of the other core, while
    # this process goes on reading) pays only for long passes. None: never.
    process_after: int | None = 4_000
    # Where the pass's time went, filled in when given (bench/sync.py reports it), per
    # direction (`Timing`): what tells a pass bound by its receiving database from one
    # bound by this process's CPU or by its sending side's reads.
    timings: dict[str, "Timing"] | None = None


@dataclass
class Timing:
    """One direction's time on the applying thread, summed over its tables' batches.
    `apply_seconds - apply_cpu_seconds` is mostly waiting on the receiving database;
    `read_wait_seconds` is what the applying thread waited for the next batch (read by
    itself, or by the reading thread or child while it applied the one before)."""

    batches: int = 0
    apply_seconds: float = 0.0
    apply_cpu_seconds: float = 0.0
    read_wait_seconds: float = 0.0


# --- preflight -------------------------------------------------------------------------

def _blind_key(conn: Connection) -> uuid.UUID | None:
    return active_singleton(conn, KeyPurpose.BLIND_INDEX)


def _practices(conn: Connection) -> set[uuid.UUID]:
    table = Practice.__table__
    return set(conn.execute(select(table.c.id)).scalars())


def preflight(local: Side, remote: Side) -> None:
    """Refuse, before a row moves, a peer that is not a site of this practice's keyring
    and schema. The errors name what differs (ids and revisions, never data)."""
    with transaction(local.engine, read_only=True) as lc, transaction(remote.engine, read_only=True) as rc:
        mine, theirs = revision_of(lc), revision_of(rc)
        if mine != theirs:
            raise ConflictError(f"sync: the peer's schema is at revision {theirs}, this site's at {mine}; "
                                "upgrade both to the same release first (strongroom db upgrade)")
        local.site, remote.site = site_id(lc), site_id(rc)
        if local.site == remote.site:
            raise ConflictError(f"sync: the peer has this site's own id ({local.site}): it is this database "
                                "or a copy of it, and a site cannot sync with itself")
        theirs_in_use = key_sync.kek_ids_in_use(rc)
        foreign = sorted(theirs_in_use - set(local.keyring.kek_ids()))
        if foreign:
            raise ConflictError(f"sync: the peer's keys are wrapped by KEK {', '.join(foreign)}, this site holds "
                                f"KEK {', '.join(local.keyring.kek_ids())}; sites of one practice share one KEK "
                                "(a new site joins with strongroom init --join; after strongroom keys rotate-kek "
                                "at one site, install its new KEK at the others: see the README)")
        # And the other way: keys this site still wraps with a KEK the peer has left (a
        # rotation finished there, not here) would reach it unopenable.
        mine_only = sorted(key_sync.kek_ids_in_use(lc) - theirs_in_use) if theirs_in_use else []
        if mine_only:
            raise ConflictError(f"sync: this site's keys are wrapped by KEK {', '.join(mine_only)}, which the peer's "
                                f"keys no longer use (theirs: {', '.join(sorted(theirs_in_use))}); "
                                "finish the KEK rotation here first (strongroom keys rotate-kek; see the README)")
        mine_bidx, theirs_bidx = _blind_key(lc), _blind_key(rc)
        if mine_bidx != theirs_bidx:
            raise ConflictError(f"sync: the peer's blind-index key is {theirs_bidx}, this site's {mine_bidx}; "
                                "the sites were initialised separately (a new site joins with strongroom init --join)")
        if _practices(lc) != _practices(rc):
            raise ConflictError("sync: the peer holds another practice (practice ids differ); "
                                "a site syncs only with sites of its own practice")


# --- leases ----------------------------------------------------------------------------

def pair_of(a: str, b: str) -> str:
    return ":".join(sorted((a[:36], b[:36])))[:80]


def holder() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_gone(holder_name: str) -> bool:
    """A lease held by a process of this machine that no longer runs (killed with -9, or
    the machine restarted) holds nothing: the next pass need not wait for its expiry."""
    host, _, rest = holder_name.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:60] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_lease(engine: Engine, pair: str, who: str, now: datetime) -> None:
    with transaction(engine) as conn:
        row = conn.execute(select(_leases).where(_leases.c.pair == pair).with_for_update()).mappings().first()
        if row is not None and row["holder"] != who and row["expires_at"] > now and not _holder_gone(row["holder"]):
            raise ConflictError(f"sync: a pass between these two sites is already running "
                                f"(until {row['expires_at'].isoformat(timespec='seconds')} at the latest)")
        conn.execute(delete(_leases).where(_leases.c.pair == pair))
        conn.execute(insert(_leases), [{"pair": pair, "holder": who, "expires_at": now + LEASE}])


def drop_lease(engine: Engine, pair: str, who: str) -> None:
    with transaction(engine) as conn:
        conn.execute(delete(_leases).where(_leases.c.pair == pair, _leases.c.holder == who))


# --- images ----------------------------------------------------------------------------

def image(row: Mapping) -> dict:
    """A row as stored, JSON-safe, ciphertext still sealed: what quarantine keeps."""
    return {k: json_value(v) for k, v in row.items()}


# --- validation ------------------------------------------------------------------------

@dataclass
class Problem:
    reason: str
    detail: str


def _exists(conn: Connection, table, ids: set) -> set:
    return held(conn, table.c.id, ids)


def _key_records(conn: Connection, key_ids: set[uuid.UUID]) -> dict[uuid.UUID, tuple]:
    """The records (id, purpose, state, wrapped key, KEK id) of those of `key_ids` held
    here, in one query: which keys are known, which destroyed, and the wrapped keys to
    open, where three queries of the same rows asked each of these."""
    if not key_ids:
        return {}
    query = select(_keys.c.id, *KEY_RECORD).where(among(conn, _keys.c.id, key_ids))
    return {record[0]: tuple(record) for record in conn.execute(query).all()}


def checksum_mismatches(rows: list[Mapping]) -> set[uuid.UUID]:
    """The ids of the rows whose checksum does not match their content."""
    return {row["id"] for row in rows
            if row.get("data_checksum") is None
            or row_checksum(row if row.__class__ is dict else dict(row)) != row["data_checksum"]}


def validate(conn: Connection, keyring: Keyring, spec: SyncTable, rows: list[Mapping],
             local_rows: dict, mismatched: set[uuid.UUID] | None = None,
             ) -> tuple[dict[uuid.UUID, Problem], set[uuid.UUID]]:
    """Problems per row id, and the key ids among the rows' keys that are destroyed here.
    `mismatched`: the rows' checksum mismatches when they were already proven where the
    rows were read (`_read_batch`, off this process's busiest thread); None: prove here."""
    problems: dict[uuid.UUID, Problem] = {}
    for rid in checksum_mismatches(rows) if mismatched is None else mismatched:
        problems[rid] = Problem("checksum_mismatch", f"{spec.name} row's checksum does not match its content")
    if spec.name == "practices":
        return problems, set()
    named_practices = {r["practice_id"] for r in rows}
    practices = _exists(conn, Practice.__table__, named_practices)
    if spec.client_column is None:     # staff, services: practice rows without PHI or keys
        for row in rows:
            if row["id"] not in problems and row["practice_id"] not in practices:
                problems[row["id"]] = Problem("unknown_practice",
                                              f"{spec.name} row names a practice this site does not hold")
        return problems, set()
    named_users = {r.get("practitioner_id") for r in rows}
    users = _exists(conn, User.__table__, named_users)
    named_clients = {r["client_id"] for r in rows} if spec.client_column == "client_id" else set()
    clients = _exists(conn, Client.__table__, named_clients) if spec.client_column == "client_id" else set()
    bookings = _bookings_held(conn, spec, rows)
    key_ids = {r["key_id"] for r in rows}
    # Our own versions' keys count too: a client erased here under a key the remote
    # version no longer names (rotated there) is still erased.
    every_key = key_ids | {r["key_id"] for r in local_rows.values()}
    records = _key_records(conn, every_key)
    known_keys = key_ids.intersection(records)
    destroyed = {k for k in every_key if (record := records.get(k)) is None or record[2] == KeyState.DESTROYED}
    live = [k for k in known_keys if k not in destroyed]
    batch = keyring.batch_keys(conn, [k.bytes for k in live], fetched=[records[k] for k in live])
    # The usual batch names only what this site holds, checked once per distinct value
    # (a few practices and staff, a key per client): then no row needs the checks below,
    # six lookups of UUIDs a row, each hashed in Python.
    unheld = ((named_practices - practices) | (named_clients - clients) | (key_ids - known_keys)
              | (key_ids & destroyed) | {u for u in named_users if u is not None and u not in users})
    if not problems and not unheld and _bookings_all_held(rows, bookings):
        return _open_rows(batch, spec, rows), destroyed
    to_open: list[Mapping] = []
    for row in rows:
        rid = row["id"]
        if rid in problems:
            continue
        if row["practice_id"] not in practices:
            problems[rid] = Problem("unknown_practice", f"{spec.name} row names a practice this site does not hold")
        elif spec.client_column == "client_id" and row["client_id"] not in clients:
            problems[rid] = Problem("unknown_client", f"{spec.name} row names a client this site does not hold")
        elif row.get("practitioner_id") is not None and row["practitioner_id"] not in users:
            problems[rid] = Problem("unknown_practitioner",
                                    f"{spec.name} row names a practitioner without an account at this site")
        elif missing := _missing_booking(bookings, row):
            problems[rid] = Problem(f"unknown_{missing}", f"{spec.name} row names a {missing} this site does not hold")
        elif row["key_id"] not in known_keys:
            problems[rid] = Problem("unknown_key", f"{spec.name} row is sealed with a key this site does not hold")
        elif row["key_id"] in destroyed:
            local = local_rows.get(rid)
            if row.get("deleted_at") is None and (local is None or local.get("deleted_at") is None):
                problems[rid] = Problem("key_destroyed", f"{spec.name} row is a live version sealed with a key "
                                                         "destroyed at this site (an erased client)")
        else:
            to_open.append(row)
    problems.update(_open_rows(batch, spec, to_open))
    return problems, destroyed


def _bookings_all_held(rows: list[Mapping], held: dict[str, set]) -> bool:
    """Whether every service and staff member the rows name is held here (`held`:
    `_bookings_held`'s answer): no row has a `_missing_booking`."""
    for column, present in held.items():
        named = {row.get(column) for row in rows}
        named.discard(None)
        if not named <= present:
            return False
    return True


def _bookings_held(conn: Connection, spec: SyncTable, rows: list[Mapping]) -> dict[str, set]:
    """Which of the services and staff members the batch's rows name are held here (they
    sync ahead of sessions): one query per kind for the whole batch."""
    from strongroom.core.db.models import Service, Staff
    out: dict[str, set] = {}
    for column, table in (("service_id", Service.__table__), ("staff_id", Staff.__table__)):
        if column in spec.column_names:
            out[column] = _exists(conn, table, {r.get(column) for r in rows})
    return out


def _missing_booking(held: dict[str, set], row: Mapping) -> str | None:
    """A session's service or staff member not held here."""
    for column, what in (("service_id", "service"), ("staff_id", "staff")):
        if row.get(column) is not None and row[column] not in held.get(column, ()):
            return what
    return None


def _open_rows(batch, spec: SyncTable, rows: list[Mapping]) -> dict:
    """{row id: Problem} for the rows whose ciphertext does not open under the row's own
    key and identity. The usual batch (every field sealed with its row's key, and all
    open) is proven in one call (core.crypto.bulk, in C where built); any other goes row
    by row (`_open_all`), which names the problem of each."""
    if not rows:
        return {}
    deks = batch.deks_of([row["key_id"].bytes for row in rows])
    if deks is not None and spec.encrypted:
        columns = [[row.get(f"{name}_enc") for row in rows] for name in spec.encrypted]
        prefixes = [f"{spec.name}\0{name}\0".encode() for name in spec.encrypted]
        heads = [_VERSION_BYTE + row["key_id"].bytes for row in rows]
        if batch.open_rows(deks, columns, prefixes, [str(row["id"]).encode() for row in rows], heads,
                           text=False) is not None:
            return {}
    return {row["id"]: problem for row in rows if (problem := _open_all(batch, spec, row)) is not None}


def _open_all(batch, spec: SyncTable, row: Mapping) -> Problem | None:
    rid = str(row["id"]).encode()
    expected = row["key_id"].bytes
    for name in spec.encrypted:
        blob = row.get(f"{name}_enc")
        if blob is None:
            continue
        try:
            if raw_key_id_of(blob) != expected:
                return Problem("foreign_ciphertext", f"{spec.name}.{name} is sealed with another key than its row's")
            cipher = batch.get(expected)
            if cipher is None:
                return Problem("unknown_key", f"{spec.name} row's key cannot be opened at this site")
            cipher.open(bytes(blob), f"{spec.name}\0{name}\0".encode() + rid)
        except Exception:
            return Problem("ciphertext_invalid", f"{spec.name}.{name} does not open under its row's key and "
                                                 "identity (tampered, or moved from another row)")
    return None


def quarantine(conn: Connection, peer_id: uuid.UUID | None, spec_name: str, row: Mapping, problem: Problem) -> None:
    rid = str(row.get("id"))[:64]
    existing = conn.execute(select(_quarantine.c.id).where(_quarantine.c.table_name == spec_name,
                                                           _quarantine.c.row_id == rid,
                                                           _quarantine.c.status == "open")).scalar()
    values = {"peer_id": peer_id, "reason": problem.reason, "detail": problem.detail[:500], "image": image(row),
              "received_at": utcnow()}
    if existing is not None:
        conn.execute(update(_quarantine).where(_quarantine.c.id == existing).values(**values))
        return
    conn.execute(insert(_quarantine), [{"id": new_id(), "table_name": spec_name, "row_id": rid,
                                         "status": "open", **values}])
    audit.append(conn, actor="system", action="SYNC", table_name=spec_name, record_id=rid,
                 details={"event": "row_quarantined", "reason": problem.reason, "peer_id": str(peer_id)})


# --- applying --------------------------------------------------------------------------

def inbound_peer(conn: Connection, site: str) -> uuid.UUID:
    """The receiving database's record of the site pushing to it (conflicts and quarantine
    there name it); made on first contact, inactive: it is the other site that syncs."""
    found = conn.execute(select(_peers.c.id).where(_peers.c.site_id == site)).scalar()
    if found is not None:
        return found
    peer_id = new_id()
    conn.execute(insert(_peers), [{"id": peer_id, "name": f"site-{site[:8]}", "url": f"inbound:{site}",
                                   "direction": "both", "strategies": {}, "is_active": False,
                                   "created_at": utcnow(), "site_id": site, "failures": 0}])
    return peer_id


class RowWriter:
    """The rows a batch writes, in one INSERT and one UPDATE statement per flush, all with
    one new change version (a batch is one transaction: one version says "changed
    together", as a bulk insert's does). On SQLite the updates that leave every indexed
    column as it was (the usual edit) go in a statement that does not set those."""

    def __init__(self, conn: Connection, spec: SyncTable) -> None:
        self.conn, self.spec = conn, spec
        self.version: int | None = None
        self.inserts: list[dict] = []
        self.updates: list[dict] = []
        self.steady: list[dict] = []
        self.sqlite = conn.dialect.name == "sqlite"
        self.names = frozenset(spec.column_names)
        # The indexed columns' values of a row as one tuple (C), compared as a tuple:
        # a generator over them per row cost a frame and a call each.
        self.indexed = operator.itemgetter(*spec.indexed) if spec.indexed else None

    def write(self, values: Mapping, local: Mapping | None, checksum: str | None = None) -> int:
        """Queue one row; `local`: our version of it (None: new here), with at least the
        columns `_light_columns` names; `checksum`: the row's checksum when its content
        is a version already checked (the checksum leaves out the change version)."""
        if self.version is None:
            self.version = next_change_version(self.conn)
        # A whole row (the usual: the remote version as read) is copied in one call; its
        # change version and checksum are this side's, set below.
        full = dict(values) if values.keys() == self.names else {c: values[c] for c in self.spec.columns}
        full["sync_version"] = self.version
        full["data_checksum"] = checksum or row_checksum(full)
        if local is None:
            self.inserts.append(full)
        elif self.sqlite and self._same_indexed(local, full):
            self.steady.append(full)
        else:
            self.updates.append(full)
        return self.version

    def _same_indexed(self, local: Mapping, full: Mapping) -> bool:
        """Whether our version holds the indexed columns' values `full` gives them (a
        local version read light without one of them is not known to)."""
        if self.indexed is None:
            return True
        try:
            return self.indexed(local) == self.indexed(full)
        except KeyError:
            return False

    def flush(self) -> None:
        table = self.spec.table
        write_rows(self.conn, table, self.inserts)
        write_rows(self.conn, table, self.updates, keys=("id",))
        write_rows(self.conn, table, self.steady, keys=("id",), unchanged=self.spec.indexed)
        self.inserts, self.updates, self.steady = [], [], []


def _conflict(conn: Connection, peer_id: uuid.UUID, spec: SyncTable, local: Mapping, lmeta: Meta,
              remote: Mapping, rmeta: Meta, fields: list[str]) -> bool:
    """Queue (or refresh) the manual conflict of this row; True when newly queued."""
    lmeta.pending = merged(lmeta.pending or {}, rmeta.vv)
    save_meta(conn, spec.name, local["id"], lmeta)
    local_image, remote_image = row_image(spec.name, local), row_image(spec.name, remote)
    open_id = conn.execute(select(_conflicts.c.id).where(_conflicts.c.table_name == spec.name,
                                                         _conflicts.c.row_id == local["id"],
                                                         _conflicts.c.status == "open")).scalar()
    if open_id is not None:
        conn.execute(update(_conflicts).where(_conflicts.c.id == open_id)
                     .values(local=local_image, remote=remote_image))
        return False
    base = bases.base_image(conn, spec.name, local["id"], lmeta.vv, rmeta.vv)
    queue_conflict(conn, peer_id=peer_id, table_name=spec.name, row_id=local["id"],
                   local=local_image, remote=remote_image, base=base)
    return True


def _close_superseded(conn: Connection, spec: SyncTable, row_id: uuid.UUID, meta: Meta, source: str) -> None:
    """A version that has seen every version an open conflict held settles it."""
    if not meta.pending or any(meta.vv.get(s, 0) < v for s, v in meta.pending.items()):
        return
    conflict_id = conn.execute(select(_conflicts.c.id).where(_conflicts.c.table_name == spec.name,
                                                             _conflicts.c.row_id == row_id,
                                                             _conflicts.c.status == "open")).scalar()
    meta.pending = None
    if conflict_id is None:
        return
    conn.execute(update(_conflicts).where(_conflicts.c.id == conflict_id)
                 .values(status="resolved", resolved_by=f"sync:{source}"[:120], resolved_at=utcnow(),
                         resolution={"superseded_by_site": source}))
    audit.append(conn, actor="system", action="SYNC", table_name="sync_conflicts", record_id=conflict_id,
                 details={"event": "conflict_superseded", "table": spec.name, "row_id": str(row_id),
                          "site": source})


def settle_erased(conn: Connection) -> int:
    """Close open conflicts on rows whose client has been erased (their key destroyed):
    erasure wins, and nobody can choose between values nobody can read any more."""
    from strongroom.core.db.models import TherapySession
    closed = 0
    for table in (Client.__table__, TherapySession.__table__):
        rows = conn.execute(
            select(_conflicts.c.id, _conflicts.c.row_id)
            .select_from(_conflicts.join(table, table.c.id == _conflicts.c.row_id)
                         .join(_keys, _keys.c.id == table.c.key_id))
            .where(_conflicts.c.table_name == table.name, _conflicts.c.status == "open",
                   _keys.c.state == KeyState.DESTROYED)).all()
        for conflict_id, row_id in rows:
            conn.execute(update(_conflicts).where(_conflicts.c.id == conflict_id)
                         .values(status="resolved", resolved_by="erasure", resolved_at=utcnow(),
                                 resolution={"erased": True}))
            audit.append(conn, actor="system", action="SYNC", table_name="sync_conflicts", record_id=conflict_id,
                         details={"event": "conflict_erased", "table": table.name, "row_id": str(row_id)})
            closed += 1
    return closed


def _record(conn: Connection, spec: SyncTable, row_id: uuid.UUID, decision: Decision, lmeta: Meta | None,
            rmeta: Meta, peer_id: uuid.UUID) -> None:
    """Audit an automatic decision that overwrote or refused values: names, never values."""
    if not (decision.overwritten or decision.lost):
        return
    winner, loser = ((rmeta.origin, lmeta.origin if lmeta else None) if decision.overwritten
                     else (lmeta.origin if lmeta else None, rmeta.origin))
    audit.append(conn, actor="system", action="SYNC", table_name=spec.name, record_id=row_id,
                 details={"event": "rule_decision", "rule": decision.rule,
                          "fields": decision.overwritten or decision.lost, "winner_site": winner,
                          "loser_site": loser, "peer_id": str(peer_id)})


def _same_values(conn: Connection, keyring: Keyring, spec: SyncTable, local: Mapping, remote: Mapping,
                 fields: list[str]) -> frozenset[str]:
    """Which of `fields` hold the same value on both sides (opened: two sites sealing one
    value get two ciphertexts). A field that cannot be opened is not called equal."""
    if not fields:
        return frozenset()
    ids = {local["key_id"].bytes, remote["key_id"].bytes} if "key_id" in local else set()
    keys = keyring.batch_keys(conn, ids) if ids else None
    equal = set()
    for name in fields:
        columns = spec.fields[name]
        if name not in spec.encrypted:
            if all(local[c] == remote[c] for c in columns):
                equal.add(name)
            continue
        try:
            mine = _opened(keys, spec, name, local)
            theirs = _opened(keys, spec, name, remote)
        except Exception:
            continue
        if mine == theirs:
            equal.add(name)
    return frozenset(equal)


def _opened(keys, spec: SyncTable, name: str, row: Mapping) -> bytes | None:
    blob = row[f"{name}_enc"]
    if blob is None:
        return None
    cipher = keys.get(row["key_id"].bytes)
    if cipher is None:
        raise KeyError(name)
    return cipher.open(bytes(blob), f"{spec.name}\0{name}\0{row['id']}".encode())


def _light_columns(spec: SyncTable, dialect: str) -> list[str]:
    """What a local version is judged by when the remote one simply follows it: its
    identity, change version, key and tombstone; on SQLite also its indexed columns, so
    that an update that leaves them as they are need not rewrite their indexes
    (RowWriter)."""
    names = {"id", "sync_version", "key_id", "deleted_at"} | (set(spec.indexed) if dialect == "sqlite" else set())
    return [c for c in spec.column_names if c in names]


def _local_versions(conn: Connection, spec: SyncTable, batch: list[tuple[Mapping, Meta]],
                    ) -> tuple[dict[uuid.UUID, dict], dict[uuid.UUID, Meta]]:
    """Our versions of the batch's rows, locked. Most remote versions follow ours (a fast
    forward) or are ones we have (a skip), and neither needs our values nor our field
    history (dots and hashes): those rows are read light first, with their vectors only;
    whole rows and whole metadata only where a merge may read them (concurrent versions,
    and tombstones: an erased row keeps its own), or where a local edit is not stamped
    yet (its fields must be hashed)."""
    table = spec.table
    ids = [row["id"] for row, _ in batch]
    rows, metas = read_with_meta(conn, spec, among(conn, table.c.id, ids), for_update=True,
                                 columns=_light_columns(spec, conn.dialect.name), history=False)
    remote_vv = {row["id"]: rmeta.vv for row, rmeta in batch}
    whole = [r["id"] for r in rows
             if (m := metas.get(r["id"])) is None or m.version != r["sync_version"]
             or compare(m.vv, remote_vv[r["id"]]) == "concurrent" or r.get("deleted_at") is not None]
    local_rows = {row["id"]: row for row in rows}
    if whole:
        full, full_metas = read_with_meta(conn, spec, among(conn, table.c.id, whole))
        local_rows.update((row["id"], row) for row in full)
        metas.update(full_metas)
    return local_rows, metas


def plan_for_batches(conn: Connection) -> None:
    """Plan the rest of this transaction's queries for one process (PostgreSQL). A batch
    is a page of a few thousand rows by (sync_version, id), which the planner read with
    two parallel workers (Gather Merge) and a LIMIT: starting the workers cost more than
    the scan (a batch of 2,000 sessions: 24-35 ms with them, 12-13 without), and on a
    small server their CPU is taken from the pass's other processes."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")


def apply_batch(conn: Connection, keyring: Keyring, spec: SyncTable, batch: list[tuple[Mapping, Meta]], *,
                peer_id: uuid.UUID, source: str, policy: Policy,
                agreed: list[uuid.UUID] | None = None, mismatched: set[uuid.UUID] | None = None) -> TableCounts:
    """Apply one batch of remote versions in the caller's transaction (the receiver's).
    `agreed` (when given) collects the ids of the rows this side now holds the sender's
    version of (applied or already held): the sender may drop their bases. `mismatched`:
    as `validate` takes it."""
    counts = TableCounts()
    if not batch:
        return counts
    plan_for_batches(conn)
    with bases.applying(conn):
        return _apply(conn, keyring, spec, batch, counts, peer_id=peer_id, source=source, policy=policy,
                      agreed=agreed, mismatched=mismatched)


def _apply(conn: Connection, keyring: Keyring, spec: SyncTable, batch: list[tuple[Mapping, Meta]],
           counts: TableCounts, *, peer_id: uuid.UUID, source: str, policy: Policy,
           agreed: list[uuid.UUID] | None, mismatched: set[uuid.UUID] | None = None) -> TableCounts:
    applied: list[uuid.UUID] = []
    clock = Clock(conn)
    local_rows, metas = _local_versions(conn, spec, batch)
    stamp_rows(conn, clock, spec, list(local_rows.values()), metas)   # local edits not yet stamped
    problems, destroyed = validate(conn, keyring, spec, [r for r, _ in batch], local_rows, mismatched)
    rows_out, metas_out = RowWriter(conn, spec), MetaWriter(spec.name, spec.fields)
    for row, rmeta in batch:
        rid = row["id"]
        problem = problems.get(rid)
        if problem is not None:
            quarantine(conn, peer_id, spec.name, row, problem)
            counts.quarantined += 1
            continue
        clock.observe(max(rmeta.vv.values(), default=rmeta.hlc))
        local, lmeta = local_rows.get(rid), metas.get(rid)
        erased = spec.client_column is not None and (row["key_id"] in destroyed
                                               or (local is not None and local["key_id"] in destroyed))
        decision = decide(spec, local, lmeta, row, rmeta, policy, erased=erased)
        if decision.action == CONFLICT:
            equal = _same_values(conn, keyring, spec, local, row, decision.conflict_fields)
            if equal:
                decision = decide(spec, local, lmeta, row, rmeta, policy, erased=erased, equal=equal)
        if decision.action == SKIP:
            counts.skipped += 1
            if agreed is not None and lmeta is not None and compare(lmeta.vv, rmeta.vv) in ("equal", "after"):
                agreed.append(rid)
            continue
        if decision.action == CONFLICT:
            counts.conflicts += _conflict(conn, peer_id, spec, local, lmeta, row, rmeta, decision.conflict_fields)
            continue
        meta = decision.meta
        if decision.tick:
            meta.hlc = clock.tick()
            meta.origin = clock.site
            meta.vv[clock.site] = meta.hlc
        values = decision.values
        # Identity first: a version taken whole is a copy of the remote row, its values
        # the same objects (comparing UUIDs and datetimes by value cost more).
        same = values is row or all(values[c] is row[c] or values[c] == row[c] for c in spec.columns)
        meta.version = rows_out.write(decision.values, local, row["data_checksum"] if same else None)
        meta.source = source if decision.rule in ("new", "fast_forward") else None
        meta.stored = lmeta is not None
        _close_superseded(conn, spec, rid, meta, source)
        if erased:
            meta.pending = None
        metas_out.add(rid, meta)
        _record(conn, spec, rid, decision, lmeta, rmeta, peer_id)
        applied.append(rid)
        counts.applied += 1
        counts.decisions += bool(decision.overwritten or decision.lost)
    rows_out.flush()
    metas_out.flush(conn)
    clock.save()
    bases.forget(conn, spec.name, applied)      # what both sides now hold is the new base
    if agreed is not None:
        agreed.extend(applied)
    return counts


# --- moving ----------------------------------------------------------------------------

def _read_batch(side: Side, spec: SyncTable, cursor: tuple[int, uuid.UUID | None], limit: int,
                to_site: str, prove: bool = True,
                ) -> tuple[list[tuple[dict, Meta]], int, int, tuple | None, set, set | None]:
    """Up to `limit` rows past the cursor with their metadata, local writes among them
    stamped as they are read (every row written since the cursor is past it); rows the
    receiving site sent us that nobody changed since are left out (no echo). Returns the
    batch, the table's highest version when read (a short batch lets the watermark move
    there), how many rows were read (the batch may be shorter: echoes), the cursor of
    the last one, which of the rows have a base kept here (core.sync.bases), and which
    of the batch's rows do not match their checksum (None when not `prove`: the
    receiver proves them).

    The checksums are the receiver's first check (`validate`), proven here because this
    runs beside the applying thread (in the reader thread or child, core.sync.reader):
    the same function of the same values read, one batch ahead, where the applying
    thread is usually the pass's bottleneck (profiled: a fifth of validating a batch).
    When the reader is the slower side instead (move_table sees the applying thread
    wait for it), the job asks it not to, and proves them itself."""
    with transaction(side.engine) as conn:
        lock_changes(conn)
        table = spec.table
        high = conn.execute(select(func.max(table.c.sync_version))).scalar() or 0
        if high < cursor[0] or (high == cursor[0] and cursor[1] is None):
            return [], high, 0, None, set(), set()     # nothing past the watermark: the usual pass
        plan_for_batches(conn)
        meta = SyncRow.__table__
        not_echo = or_(meta.c.source.is_(None), meta.c.source != to_site, meta.c.version != table.c.sync_version)
        rows, metas = read_with_meta(conn, spec, past(table, *cursor), table.c.sync_version <= high, not_echo,
                                     limit=limit)
        if any(metas.get(r["id"]) is None or metas[r["id"]].version != r["sync_version"] for r in rows):
            clock = Clock(conn)
            stamp_rows(conn, clock, spec, rows, metas)
            clock.save()
        with_base = set(bases.with_bases(conn, spec.name, [r["id"] for r in rows]))
    out = [(row, metas[row["id"]]) for row in rows
           if not (metas[row["id"]].source == to_site and metas[row["id"]].version == row["sync_version"])]
    last = (rows[-1]["sync_version"], rows[-1]["id"]) if rows else None
    return out, high, len(rows), last, with_base, checksum_mismatches([row for row, _ in out]) if prove else None


def move_table(src: Side, dst: Side, spec: SyncTable, *, direction: str, cursor: tuple[int, uuid.UUID | None],
               set_watermark: Callable[..., None], dst_peer_id: uuid.UUID, policy: Policy,
               options: PassOptions, marks_at: Engine) -> TableCounts:
    """Every version of `spec` past the cursor from src to dst, batch by batch.

    While one batch is applied on the receiving side, the next one is read on the
    sending side (a full batch means there may be more past it): the two are separate
    databases. The next batch is read by a thread (which overlaps only the time either
    side waits on its database) and, past `options.process_after` rows, by a child
    process on the other core (core.sync.reader), so a long pass costs about the larger
    of the two sides' time rather than their sum.
    The receiving side does not also decide the next batch ahead (its versions read,
    validated and decided in a read-only transaction while this batch is written, the
    rows relocked and rechecked when applied): tried on two cores with 100k rows each
    way, that pass took 37-38 s against 31 s, because a pass already keeps both cores
    about 85% busy (this process, the reader child and the database server), leaving no
    waits to fill, only more contention for the interpreter lock. Tried again into
    PostgreSQL without the rechecking (the next batch's rows read, locked and validated
    in the transaction that then applies them, on a second connection, while a writing
    thread wrote and committed the batch before; decided only after that commit): 100k
    clients pushed in 17.1-19.8 s (median of seven 17.9) against 17.3-21.5 (17.8)
    applied batch after batch, in alternating runs, with about a tenth more of this
    process's CPU. Both cores stay busy either way: what a pass needs is less CPU.
    Reading ahead changes nothing that matters for safety: a read commits only the
    sender's stamps of local writes, which any later read would make the same; the
    receiver still applies batch after batch, each in its own transaction, and the
    watermark still moves only after the batch it covers committed there.

    `marks_at`: the database that keeps the watermarks (this site's, so one of the two;
    `set_watermark` takes a `conn=` of it). When it is the receiving side, the watermark is written in
    the batch's own transaction: the two commit together, one commit instead of two.
    When it is the sending side, it is written with that side's bookkeeping for the
    batch (the bases the receiver now holds, core.sync.bases) in one transaction, by
    the reading thread while the next batch is applied; those writes stay in batch
    order, and the next batch's waits for the one before (a failure is raised here)."""
    total = TableCounts()
    number = 0
    rows_read = 0
    timing = None if options.timings is None else options.timings.setdefault(direction, Timing())
    context = contextvars.copy_context()
    apart = options.process_after is not None and can_read_apart(src.engine)
    reader: ProcessReader | None = None

    def read(at: tuple[int, uuid.UUID | None]):
        return _read_batch(src, spec, at, options.batch_size, to_site=dst.site)

    def drop_reader() -> None:
        nonlocal reader, apart
        if reader is not None:
            reader.close()
        reader, apart = None, False

    # The collector is paused for the whole table (collector_paused), not batch by
    # batch: each time it came back on, its next pass scanned the batch in hand and the
    # one read ahead (profiled: two passes a batch, 0.9 s of a 100k-row pass's 23 s of
    # CPU). Cycles (a few per transaction) are collected every COLLECT_EVERY batches.
    # Everything below, the reading thread's work included, runs inside this pause.
    with collector_paused(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-read") as pool:
        # A thread's read, or (cursor, fetch) asked of the reader: `fetch` is the thread
        # taking the child's frame off the pipe and decoding it while this one applies.
        ahead: Future | tuple | None = None
        settling: Future | None = None     # the sending side's bookkeeping of the last batch
        prove = True                       # whether the reader child proves checksums

        def settle() -> None:
            nonlocal settling
            if settling is not None:
                done, settling = settling, None
                done.result()

        def after_commit(forget: dict, mark: tuple | None) -> None:
            with transaction(src.engine) as conn:
                bases.forget_sent(conn, spec.table, forget)
                if mark is not None:
                    set_watermark(*mark, conn=conn)

        try:
            while True:
                if number and not number % COLLECT_EVERY:
                    gc.collect(1)
                waiting = time.perf_counter()
                if ahead is None:
                    got = read(cursor)
                elif isinstance(ahead, Future):
                    got = ahead.result()
                else:
                    try:
                        # The reader keeps proving checksums while the applying thread
                        # does not wait for it: whichever side is slower does less.
                        prove = ahead[1].done()
                        got = ahead[1].result()
                    except ReaderFailed:
                        log.warning("sync reader process failed; reading %s in the job's process", spec.name)
                        drop_reader()
                        got = read(ahead[0])
                ahead = None
                if timing is not None:
                    timing.read_wait_seconds += time.perf_counter() - waiting
                batch, high, read_count, last_read, with_base, mismatched = got
                rows_read += read_count
                if not read_count:
                    settle()
                    if high > cursor[0]:          # only echoes (or nothing) up to `high`: move past them
                        set_watermark(high, None)
                    return total
                if read_count == options.batch_size:
                    if apart and reader is None and rows_read >= options.process_after:
                        try:
                            reader = ProcessReader(src.engine, spec.name, options.batch_size, dst.site)
                        except OSError:
                            drop_reader()
                    try:
                        ready = reader is not None and reader.poll_ready()
                    except ReaderFailed:
                        drop_reader()
                        ready = False
                    if ready:
                        reader.submit(last_read, prove=prove)
                        ahead = (last_read, pool.submit(reader.result))
                    else:
                        ahead = pool.submit(context.copy().run, read, last_read)
                number += 1
                outgoing = batch
                agreed: list[uuid.UUID] = []
                # Everything up to `high` has been read when the batch is short, the last
                # row's version included: (high, None) says so, where (high, last id) sent
                # the next pass, with nothing to do, to read past that row again.
                mark = last_read if read_count == options.batch_size else (high, None)
                applying, applying_cpu = time.perf_counter(), time.thread_time()
                with transaction(dst.engine) as conn:
                    counts = apply_batch(conn, dst.keyring, spec, outgoing, peer_id=dst_peer_id, source=src.site,
                                         policy=policy, agreed=agreed, mismatched=mismatched)
                    if marks_at is dst.engine:
                        set_watermark(*mark, conn=conn)
                if timing is not None:
                    timing.batches += 1
                    timing.apply_seconds += time.perf_counter() - applying
                    timing.apply_cpu_seconds += time.thread_time() - applying_cpu
                counts.sent = len(outgoing)
                total.add(counts)
                if options.after_batch is not None:
                    options.after_batch(direction, spec.name, number)
                forget = {}
                if agreed and with_base:
                    sent = {row["id"]: row["sync_version"] for row, _ in outgoing}
                    forget = {i: sent[i] for i in agreed if i in with_base}
                settle()
                cursor = mark
                if forget or marks_at is src.engine:
                    settling = pool.submit(context.copy().run, after_commit, forget,
                                           mark if marks_at is src.engine else None)
                if read_count < options.batch_size:
                    settle()
                    return total
                got = batch = outgoing = agreed = forget = None     # not alive beside the next batch
        finally:
            if isinstance(ahead, Future):   # a batch read ahead and not applied: read again next pass
                ahead.cancel()
            if reader is not None:
                if isinstance(ahead, tuple):   # its frame abandoned: the child stops, the fetch sees the end
                    reader.process.kill()
                reader.close()


def move_keys(src: Side, dst: Side, *, watermark: int, set_watermark: Callable[[int], None],
              batch_size: int) -> dict[str, int]:
    totals = {"inserted": 0, "destroyed": 0, "retired": 0}
    while True:
        with transaction(src.engine) as conn:
            lock_changes(conn)
            records = key_sync.changed_keys(conn, watermark, batch_size)
        if not records:
            return totals
        with transaction(dst.engine) as conn:
            counts = key_sync.apply_keys(conn, records, kek_ids=dst.keyring.kek_ids(), forget=dst.keyring.forget)
        for name, value in counts.items():
            totals[name] += value
        watermark = records[-1]["sync_version"]
        set_watermark(watermark)


def watermarks(engine: Engine, peer_id: uuid.UUID) -> dict[tuple[str, str], tuple[int, uuid.UUID | None]]:
    from strongroom.core.db.models import SyncState
    state = SyncState.__table__
    with transaction(engine, read_only=True) as conn:
        return {(r.table_name, r.direction): (r.watermark, r.after_id)
                for r in conn.execute(select(state).where(state.c.peer_id == peer_id))}


def run_pass(local: Side, remote: Side, peer_id: uuid.UUID, options: PassOptions,
             progress: Callable[[str], None] = lambda message: None) -> dict:
    """One pass with a peer: preflight, lease, then keys and every synced table, pushed
    and pulled. Returns counts per direction and table."""
    preflight(local, remote)
    pair, who, now = pair_of(local.site, remote.site), holder(), utcnow()
    take_lease(local.engine, pair, who, now)
    try:
        take_lease(remote.engine, pair, who, now)
    except BaseException:
        drop_lease(local.engine, pair, who)
        raise
    try:
        result = _exchange(local, remote, peer_id, options, progress)
        for side in (local, remote):
            with transaction(side.engine) as conn:
                settle_erased(conn)
        return result
    finally:
        drop_lease(remote.engine, pair, who)
        drop_lease(local.engine, pair, who)


def _exchange(local: Side, remote: Side, peer_id: uuid.UUID, options: PassOptions,
              progress: Callable[[str], None]) -> dict:
    marks = watermarks(local.engine, peer_id)
    with transaction(local.engine) as conn:      # which site the peer is (lag and echo need it)
        conn.execute(update(_peers).where(_peers.c.id == peer_id).values(site_id=remote.site))
    with transaction(remote.engine) as conn:
        remote_peer_id = inbound_peer(conn, local.site)

    def setter(table: str, direction: str) -> Callable[..., None]:
        def set_it(value: int, after_id: uuid.UUID | None = None, conn: Connection | None = None) -> None:
            if conn is not None:        # a transaction of this site's database, already open
                peer_store.set_watermark(conn, peer_id, table, direction, value, after_id)
                return
            with transaction(local.engine) as own:
                peer_store.set_watermark(own, peer_id, table, direction, value, after_id)
        return set_it

    directions = ([("push", local, remote, remote_peer_id)] if options.push else []) + (
        [("pull", remote, local, peer_id)] if options.pull else [])
    result: dict = {"push": {}, "pull": {}, "peer_site": remote.site, "seconds": {}}
    for direction, src, dst, dst_peer in directions:
        started = time.monotonic()
        progress(f"{direction}: keys")
        result[direction][KEYS_TABLE] = move_keys(src, dst, watermark=marks.get((KEYS_TABLE, direction), (0,))[0],
                                                  set_watermark=setter(KEYS_TABLE, direction),
                                                  batch_size=max(options.batch_size, 500))
        for spec in synced():
            if options.tables is not None and spec.name not in options.tables:
                continue
            progress(f"{direction}: {spec.name}")
            policy = options.policies.get(spec.name) or Policy(spec.default_strategy)
            counts = move_table(src, dst, spec, direction=direction, cursor=marks.get((spec.name, direction), (0, None)),
                                set_watermark=setter(spec.name, direction), dst_peer_id=dst_peer,
                                policy=policy, options=options, marks_at=local.engine)
            result[direction][spec.name] = counts.__dict__
        result["seconds"][direction] = round(time.monotonic() - started, 3)
    return result
