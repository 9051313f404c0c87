"""Records retention: archive, then delete, clinical rows by their table's policy.

What "archive" and "delete" mean here (the source moves old rows into an archive table
and later deletes them from there; our rows are already sealed at rest, so nothing
needs moving):

- A row's reference date: a therapy session's `starts_at` (the date of service); a
  client file's `created_at` (its upload); a client's last activity, the later of its
  `created_at` and its newest therapy session (a future appointment keeps it active).
- Archive, `archive_after_days` after the reference date (a client also when its
  `retention_expiry_date` has come): the row is entered in the `retention_archive`
  ledger with our clock's `archived_at`; a client also becomes INACTIVE (a row change
  that travels to peers and backups).
- Delete, `delete_after_days` after the reference date, and never sooner than the
  policy's archive-to-delete interval after `archived_at`, and (clients) never before
  `retention_expiry_date`: the row is tombstoned (`deleted_at`, `sync_version` moves,
  so sync peers and incremental backups carry the delete) and a session's notes
  ciphertext is cleared. Deleting a client crypto-shreds it as an erasure does: its
  sessions and files are tombstoned with it and its data keys destroyed. Rows are
  never hard-deleted: the incremental backup chain and sync rely on tombstones. A
  file's content is: once the batch that tombstoned its row (or its client) has
  committed, its objects are deleted from the live files store (core/files/purge.py;
  audited RETENTION with counts; a failed delete leaves an orphan the integrity job's
  files check removes).

Because deletion is also timed from `archived_at`, which only our clock writes, a row
that arrives already old (the backlog when a policy is first set, or a date a peer
planted) is archived first and stays visible in the plan for the whole interval before
anything irreversible happens. "Now" is always this process's clock, never a parameter.

A legal hold on a client, or on its whole practice, blocks both. Work happens in
batches, each its own transaction that re-checks policy, eligibility and holds under
the retention lock, so a run is resumable: stopped (cancel, crash) between batches, the
next run carries on, and a finished run repeated does nothing.
"""
from __future__ import annotations

import heapq
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, ClientFile, ClientStatus, RetentionArchive, TherapySession
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ValidationError
from strongroom.core.files.purge import Purge, record
from strongroom.core.files.store import open_files_target
from strongroom.core.ids import new_id
from strongroom.core.repository.changes import next_change_version
from strongroom.core.retention import holds, lock, rewrite_rows
from strongroom.core.retention.erasure import erase_client, tombstone
from strongroom.core.retention.policies import Policy, active_policies

BATCH = 500
ARCHIVE, DELETE = "archive", "delete"
MAX_AUDIT_IDS = 100
MAX_HORIZON_DAYS = 3650

_clients = Client.__table__
_sessions = TherapySession.__table__
_files = ClientFile.__table__
_ledger = RetentionArchive.__table__
_TABLES = {"clients": _clients, "therapy_sessions": _sessions, "client_files": _files}
# The reference date of a session or file row (clients: see _client_page).
_REFERENCE = {"therapy_sessions": _sessions.c.starts_at, "client_files": _files.c.created_at}


@dataclass(frozen=True)
class Due:
    """One row an action is (or will be) due for; ids and dates only, never values."""

    table: str
    action: str
    row_id: uuid.UUID
    practice_id: uuid.UUID
    client_id: uuid.UUID
    due_at: datetime
    reason: str              # age | inactive | expiry_date
    policy_id: uuid.UUID
    blocked_by: uuid.UUID | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _days(n: int | None) -> timedelta:
    return timedelta(days=n or 0)


def _gap(policy: Policy) -> timedelta:
    """The least time a row stays archived, on our clock, before it is deleted."""
    return _days(policy.delete_after_days) - _days(policy.archive_after_days)


def _ledger_join(table_name: str, table):
    return and_(_ledger.c.table_name == table_name, _ledger.c.row_id == table.c.id)


def _keyset(query, table, after: uuid.UUID | None, ids: list[uuid.UUID] | None):
    """One keyset page from `after` (or only the rows `ids`, to re-check a batch)."""
    if after is not None:
        query = query.where(table.c.id > after)
    if ids is not None:
        query = query.where(table.c.id.in_(ids))
    return query


def _row_page(conn: Connection, policy: Policy, action: str, until: datetime, *,
              after: uuid.UUID | None, ids: list[uuid.UUID] | None, size: int) -> tuple[list[Due], uuid.UUID | None]:
    """Sessions or files: the filter is all SQL, so a page holds due rows only."""
    table, name = _TABLES[policy.table_name], policy.table_name
    reference = _REFERENCE[name]
    query = (select(table.c.id, table.c.practice_id, table.c.client_id, reference.label("reference"),
                    _ledger.c.archived_at)
             .select_from(table.outerjoin(_ledger, _ledger_join(name, table)))
             .where(table.c.deleted_at.is_(None)).order_by(table.c.id).limit(size))
    if action == ARCHIVE:
        query = query.where(_ledger.c.id.is_(None), reference <= until - _days(policy.archive_after_days))
    else:
        query = query.where(_ledger.c.id.is_not(None), _ledger.c.deleted_at.is_(None),
                            reference <= until - _days(policy.delete_after_days),
                            _ledger.c.archived_at <= until - _gap(policy))
    rows = conn.execute(_keyset(query, table, after, ids)).all()
    dues = []
    for row in rows:
        if action == ARCHIVE:
            due = row.reference + _days(policy.archive_after_days)
        else:
            due = max(row.reference + _days(policy.delete_after_days), row.archived_at + _gap(policy))
        dues.append(Due(name, action, row.id, row.practice_id, row.client_id, due, "age", policy.id))
    return dues, (rows[-1].id if len(rows) == size else None)


def _midnight(day) -> datetime | None:
    return None if day is None else datetime.combine(day, time(), timezone.utc)


def _client_due(policy: Policy, action: str, row) -> tuple[datetime, str]:
    reference = max(row.created_at, row.last_session or row.created_at)
    expiry = _midnight(row.retention_expiry_date)
    if action == ARCHIVE:
        due, reason = reference + _days(policy.archive_after_days), "inactive"
        if expiry is not None and expiry < due:
            due, reason = expiry, "expiry_date"
        return due, reason
    due = max(reference + _days(policy.delete_after_days), row.archived_at + _gap(policy))
    if expiry is not None and expiry > due:
        return expiry, "expiry_date"
    return due, "inactive"


def _client_page(conn: Connection, policy: Policy, action: str, until: datetime, *,
                 after: uuid.UUID | None, ids: list[uuid.UUID] | None, size: int) -> tuple[list[Due], uuid.UUID | None]:
    """Clients: last activity needs their sessions, so a page is filtered here."""
    last = (select(_sessions.c.client_id, func.max(_sessions.c.starts_at).label("last_session"))
            .where(_sessions.c.deleted_at.is_(None)).group_by(_sessions.c.client_id).subquery())
    query = (select(_clients.c.id, _clients.c.practice_id, _clients.c.created_at,
                    _clients.c.retention_expiry_date, last.c.last_session, _ledger.c.archived_at)
             .select_from(_clients.outerjoin(last, last.c.client_id == _clients.c.id)
                          .outerjoin(_ledger, _ledger_join("clients", _clients)))
             .where(_clients.c.deleted_at.is_(None)).order_by(_clients.c.id).limit(size))
    if action == ARCHIVE:
        query = query.where(_ledger.c.id.is_(None))
    else:
        query = query.where(_ledger.c.id.is_not(None), _ledger.c.deleted_at.is_(None))
    rows = conn.execute(_keyset(query, _clients, after, ids)).all()
    dues = []
    for row in rows:
        due, reason = _client_due(policy, action, row)
        if due <= until:
            dues.append(Due("clients", action, row.id, row.practice_id, row.id, due, reason, policy.id))
    return dues, (rows[-1].id if len(rows) == size else None)


def due_page(conn: Connection, policy: Policy, action: str, until: datetime, *,
             after: uuid.UUID | None = None, ids: list[uuid.UUID] | None = None,
             size: int = BATCH) -> tuple[list[Due], uuid.UUID | None]:
    """Rows of `policy`'s table `action` is due for by `until`, one keyset page in id
    order from `after`; returns (dues, key to continue from or None at the end)."""
    if action == DELETE and policy.delete_after_days is None:
        return [], None
    page = _client_page if policy.table_name == "clients" else _row_page
    return page(conn, policy, action, until, after=after, ids=ids, size=size)


# --- the plan --------------------------------------------------------------------------

def plan(conn: Connection, *, now: datetime, horizon_days: int = 30, limit: int = 200,
         practice_id: uuid.UUID | None = None) -> dict[str, Any]:
    """What the job would archive and delete by `now` + `horizon_days` and why, with
    what a legal hold blocks (and which hold). Counts per table and action; the first
    `limit` rows by due date. Only `practice_id`'s rows and holds when given (a caller
    bound to one practice of several learns nothing of the others'). Changes nothing."""
    if not 0 <= horizon_days <= MAX_HORIZON_DAYS:
        raise ValidationError(f"retention plan: horizon_days must be between 0 and {MAX_HORIZON_DAYS}")
    until = now + timedelta(days=horizon_days)
    scope = holds.active_scope(conn)
    summary, soonest, counter = [], [], 0
    for policy in active_policies(conn):
        for action in (ARCHIVE, DELETE):
            if action == DELETE and policy.delete_after_days is None:
                continue
            counts = {"table": policy.table_name, "action": action, "due_now": 0, "upcoming": 0, "blocked": 0}
            after: uuid.UUID | None = None
            while True:
                dues, after = due_page(conn, policy, action, until, after=after)
                for due in dues:
                    if practice_id is not None and due.practice_id != practice_id:
                        continue
                    hold = scope.hold_for(due.practice_id, due.client_id)
                    if hold is not None:
                        counts["blocked"] += 1
                    counts["due_now" if due.due_at <= now else "upcoming"] += 1
                    counter += 1
                    item = (-due.due_at.timestamp(), counter, Due(**{**asdict(due), "blocked_by": hold}))
                    if len(soonest) < limit:
                        heapq.heappush(soonest, item)
                    else:
                        heapq.heappushpop(soonest, item)
                if after is None:
                    break
            summary.append(counts)
    actions = [item[2].as_dict() for item in sorted(soonest, key=lambda i: (-i[0], i[1]))]
    return {"now": now, "horizon_days": horizon_days, "summary": summary, "actions": actions,
            "truncated": counter > len(actions), "holds_in_force": scope.count(practice_id)}


# --- carrying it out --------------------------------------------------------------------

def _audit_ids(ids: list[uuid.UUID]) -> dict[str, Any]:
    out: dict[str, Any] = {"count": len(ids), "first_id": str(ids[0]), "last_id": str(ids[-1])}
    if len(ids) <= MAX_AUDIT_IDS:
        out["ids"] = [str(i) for i in ids]
    return out


def _archive(conn: Connection, policy: Policy, dues: list[Due], now: datetime, actor: str) -> dict[str, int]:
    version = next_change_version(conn)
    conn.execute(insert(_ledger), [{
        "id": new_id(), "table_name": d.table, "row_id": d.row_id, "practice_id": d.practice_id,
        "client_id": d.client_id, "policy_id": policy.id, "archived_at": now, "deleted_at": None,
        "sync_version": version} for d in dues])
    ids = [d.row_id for d in dues]
    inactive = 0
    if policy.table_name == "clients":
        rows = conn.execute(select(_clients).where(_clients.c.id.in_(ids),
                                                   _clients.c.status != ClientStatus.INACTIVE)).mappings().all()
        inactive = len(rewrite_rows(conn, _clients, rows, {"status": ClientStatus.INACTIVE, "updated_at": now,
                                                            "sync_version": version}))
    audit.append(conn, actor=actor, action="RETENTION_ARCHIVE", table_name=policy.table_name,
                 details={"policy_id": str(policy.id), **_audit_ids(ids),
                          **({"made_inactive": inactive} if policy.table_name == "clients" else {})})
    return {"archived": len(ids)}


def _delete(conn: Connection, ctx: Context, policy: Policy, dues: list[Due], now: datetime,
            actor: str, purge: Purge) -> dict[str, int]:
    """Tombstone `dues` (clients: crypto-shred them); the objects of every file that goes
    are collected into `purge`, which the caller runs once this transaction commits."""
    ids = [d.row_id for d in dues]
    totals: dict[str, int] = {}
    if policy.table_name == "clients":
        for client_id in ids:
            for key, n in erase_client(conn, ctx.keyring, client_id, now=now, purge=purge).items():
                totals[key] = totals.get(key, 0) + n
    else:
        if policy.table_name == "client_files":
            purge.collect_files(conn, ctx.keyring, ids)
        version = next_change_version(conn)
        gone = tombstone(conn, _TABLES[policy.table_name], ids, now=now, version=version)
        conn.execute(update(_ledger).where(_ledger.c.table_name == policy.table_name, _ledger.c.row_id.in_(gone))
                     .values(deleted_at=now, sync_version=version))
        totals[policy.table_name] = len(gone)
    audit.append(conn, actor=actor, action="RETENTION_DELETE", table_name=policy.table_name,
                 details={"policy_id": str(policy.id), **_audit_ids(ids), "tombstoned": totals})
    return {"deleted": len(ids), "keys_destroyed": totals.get("keys_destroyed", 0)}


def _current(conn: Connection, policy: Policy) -> Policy | None:
    """The policy as it stands now (it may have changed since the run began)."""
    return next((p for p in active_policies(conn) if p.id == policy.id), None)


def apply(ctx: Context, *, now: datetime, actor: str = "system",
          progress: Callable[[int, int | None, str], None] | None = None, batch: int = BATCH) -> dict[str, Any]:
    """Carry out every active policy as of `now`: deletes first (rows archived by earlier
    runs), then archives, so a row is never archived and deleted in one run. Tests pass
    `now`; the job passes this process's clock."""
    progress = progress or (lambda done, total, message: None)
    with transaction(ctx.engine, read_only=True) as conn:
        policies = active_policies(conn)
    result: dict[str, Any] = {"now": now, "tables": {}, "blocked": 0, "batches": 0}
    done = 0
    for action in (DELETE, ARCHIVE):
        for policy in policies:
            counts = result["tables"].setdefault(policy.table_name, {
                "archived": 0, "deleted": 0, "keys_destroyed": 0, "blocked": 0,
                **({"file_objects_deleted": 0, "file_objects_failed": 0}
                   if policy.table_name in ("clients", "client_files") else {})})
            after: uuid.UUID | None = None
            while True:
                with transaction(ctx.engine, read_only=True) as conn:
                    dues, after = due_page(conn, policy, action, now, after=after, size=batch)
                if dues:
                    progress(done, None, f"{action} {policy.table_name}")
                    outcome, blocked = _batch(ctx, policy, action, [d.row_id for d in dues], now, actor)
                    for key, n in outcome.items():
                        counts[key] += n
                    counts["blocked"] += blocked
                    result["blocked"] += blocked
                    result["batches"] += 1
                    done += len(dues)
                if after is None:
                    break
    if any(counts["keys_destroyed"] for counts in result["tables"].values()):
        # A client deleted by policy is crypto-shredded like an erased one: its keys leave
        # every repository's key bag now, not at the next backup.
        from strongroom.core.retention.certificate import reach_repositories

        result["repositories"] = reach_repositories(ctx)
    progress(done, done, "retention done")
    return result


def _batch(ctx: Context, policy: Policy, action: str, ids: list[uuid.UUID], now: datetime,
           actor: str) -> tuple[dict[str, int], int]:
    """One transaction: re-check under the lock, skip held rows, act on the rest; then,
    committed, delete the objects of the files it tombstoned (audited with counts)."""
    purge = Purge(open_files_target(ctx.settings)) if action == DELETE else None
    outcome, blocked = _decide(ctx, policy, action, ids, now, actor, purge)
    if purge is not None and purge.objects:
        purged = purge.run()
        with transaction(ctx.engine) as conn:
            record(conn, purged, actor=actor, action="RETENTION", table_name=policy.table_name, record_id=None,
                   details={"policy_id": str(policy.id)})
        outcome = {**outcome, "file_objects_deleted": purged.objects_deleted,
                   "file_objects_failed": purged.objects_failed}
    return outcome, blocked


def _decide(ctx: Context, policy: Policy, action: str, ids: list[uuid.UUID], now: datetime,
            actor: str, purge: Purge | None) -> tuple[dict[str, int], int]:
    with transaction(ctx.engine) as conn:
        lock(conn)
        current = _current(conn, policy)
        if current is None or (action == DELETE and current.delete_after_days is None):
            return {}, 0
        dues, _ = due_page(conn, current, action, now, ids=ids, size=len(ids))
        scope = holds.active_scope(conn)
        free = [d for d in dues if scope.hold_for(d.practice_id, d.client_id) is None]
        blocked = len(dues) - len(free)
        if not free:
            return {}, blocked
        if action == ARCHIVE:
            return _archive(conn, current, free, now, actor), blocked
        return _delete(conn, ctx, current, free, now, actor, purge), blocked


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Apply the records-retention policies now (this process's clock); with `dry_run`,
    return the plan of what is due now instead (`horizon_days` looks further ahead)."""
    asked = parse("retention", params)
    now = utcnow()
    if asked.dry_run:
        with transaction(ctx.engine, read_only=True) as conn:
            return {"dry_run": True, **plan(conn, now=now, horizon_days=asked.horizon_days)}
    return {"dry_run": False, **apply(ctx, now=now, actor=str(params.get("actor") or "system"), progress=progress)}
