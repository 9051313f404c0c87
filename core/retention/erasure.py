"""Erasure ("right to be forgotten") with four eyes, by crypto-shredding.

One person files a request naming a client and why; a different person approves it,
within APPROVAL_WINDOW of the filing, and approval carries it out at once in one
transaction: every data key of the client is destroyed (the wrapped key wiped, state
`destroyed`, `destroyed_at` set; the key record stays as evidence of the erasure), and
the client, its therapy sessions and files are tombstoned so the delete reaches sync
peers and incremental backups. With the keys gone the client's ciphertext is unreadable
in the database; snapshots carry no data key (the repositories' key bags hold them), and
`certificate.complete`, run by the daemon right after approval, rewrites every key bag
without the client's keys and issues the signed certificate, so snapshots taken before
the erasure restore the client unreadable too. The objects of the client's files are
deleted from the live files store once the erasure has committed (core/files/purge.py).
Nobody approves their own request, the scheduler
("system") approves nothing, and a legal hold covering the client refuses the erasure.
A refusal changes nothing but is itself audited.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, insert, or_, select, update

from strongroom.core import audit
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import transaction
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import (Client, ClientFile, DataKey, ErasureRequest, KeyState, RetentionArchive,
                                       TherapySession)
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.files.purge import Purge, Purged, record
from strongroom.core.ids import new_id
from strongroom.core.principal import NOT_A_PERSON, is_person
from strongroom.core.repository.changes import next_change_version
from strongroom.core.retention import holds, lock, rewrite_rows
from strongroom.core.storage.base import Target

# A request left unapproved this long expires: approving a stale request would be
# approving something nobody is looking at any more.
APPROVAL_WINDOW = timedelta(days=7)

PENDING, EXECUTED, REJECTED, EXPIRED = "pending", "executed", "rejected", "expired"

_requests = ErasureRequest.__table__
_clients = Client.__table__
_sessions = TherapySession.__table__
_files = ClientFile.__table__
_keys = DataKey.__table__
_ledger = RetentionArchive.__table__

# Ciphertext columns a delete clears outright (nullable ones; the rest become unreadable
# when the client's keys are destroyed).
_WIPED_ON_DELETE = {"therapy_sessions": tuple(f"{f}_enc" for f in CLIENT_KEYED["therapy_sessions"])}
# A client's blind indexes are keyed hashes of its email, SSN's last four and last name
# under the practice's blind-index key, which an erasure does not destroy: left on the
# tombstone, anyone holding that key could still test "was this email ever a client?".
_BLIND_INDEXES = ("email_bidx", "ssn_last4_bidx", "last_name_bidx")


def tombstone(conn: Connection, table: Table, ids: Iterable[uuid.UUID], *, now: datetime,
              version: int) -> list[uuid.UUID]:
    """Tombstone the live rows among `ids`: `deleted_at` set, `sync_version` moved (so
    sync peers and incremental backups see the delete), checksum kept right, nullable
    ciphertext cleared. Returns the ids tombstoned."""
    ids = list(ids)
    if not ids:
        return []
    rows = conn.execute(select(table).where(table.c.id.in_(ids), table.c.deleted_at.is_(None))).mappings().all()
    wiped = {column: None for column in _WIPED_ON_DELETE.get(table.name, ())}
    return rewrite_rows(conn, table, rows, {"deleted_at": now, "updated_at": now, "sync_version": version, **wiped})


def erase_client(conn: Connection, keyring: Keyring, client_id: uuid.UUID, *, now: datetime,
                 purge: Purge | None = None) -> dict[str, int]:
    """Crypto-shred one client inside the caller's transaction (which holds the lock):
    destroy its keys, tombstone it with its sessions and files, close its ledger rows.
    Returns counts per table and keys destroyed.

    `purge` collects the objects of the client's files in the live files store (their
    names are in manifests its keys open, so before the keys go); the caller runs it
    after this transaction commits. None only where this database has no live files
    store of its own: a restored copy (core/backup/keybag.py)."""
    if purge is not None:
        purge.collect_client(conn, keyring, client_id)
    version = next_change_version(conn)
    counts = {"clients": len(tombstone(conn, _clients, [client_id], now=now, version=version))}
    for table in (_sessions, _files):
        ids = conn.execute(select(table.c.id).where(table.c.client_id == client_id,
                                                    table.c.deleted_at.is_(None))).scalars().all()
        counts[table.name] = len(tombstone(conn, table, ids, now=now, version=version))
    counts["keys_destroyed"] = keyring.destroy_client_keys(conn, client_id)
    # A duplicate record merged into this client (core.reconcile.merge) is the same
    # person: its row stays (tombstoned, for undo) and the rows moved here may still be
    # sealed with its key, so its keys go too, or the erasure would leave them readable.
    from strongroom.core.reconcile.repository import merged_with
    duplicates = merged_with(conn, client_id)
    for duplicate in duplicates:
        counts["keys_destroyed"] += keyring.destroy_client_keys(conn, duplicate)
    forget_blind_indexes(conn, [client_id, *duplicates], now=now, version=version)
    conn.execute(update(_ledger).where(_ledger.c.client_id == client_id, _ledger.c.deleted_at.is_(None))
                 .values(deleted_at=now, sync_version=version))
    from strongroom.core.sync.passes import settle_erased   # sync conflicts on the client end with it
    settle_erased(conn)
    return counts


def forget_blind_indexes(conn: Connection, client_ids: Iterable[uuid.UUID], *, now: datetime,
                         version: int) -> int:
    """Clear the blind indexes of erased clients, live or already tombstoned (an
    erasure applied again to a restored copy, or to a merged duplicate, reaches rows
    deleted before), checksum kept right and `sync_version` moved so peers and the next
    backup carry the cleared row. Returns how many rows changed."""
    ids = list(client_ids)
    if not ids:
        return 0
    indexed = or_(*(_clients.c[name].is_not(None) for name in _BLIND_INDEXES))
    rows = conn.execute(select(_clients).where(_clients.c.id.in_(ids), indexed)).mappings().all()
    return len(rewrite_rows(conn, _clients, rows, {"updated_at": now, "sync_version": version,
                                                   **{name: None for name in _BLIND_INDEXES}}))


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not 1 <= len(reason) <= 500:
        raise ValidationError("erasure request: a reason of 1 to 500 characters is required (e.g. the "
                              "reference of the client's written request; no clinical details)")
    return reason


def _client_key_state(conn: Connection, client_id: uuid.UUID) -> tuple[bool, bool]:
    """(client row exists, client still has a key not destroyed)."""
    exists = conn.execute(select(_clients.c.id).where(_clients.c.id == client_id)).first() is not None
    live_key = conn.execute(select(_keys.c.id).where(_keys.c.client_id == client_id,
                                                     _keys.c.state != KeyState.DESTROYED).limit(1)).first()
    return exists, live_key is not None


def expire_requests(conn: Connection, now: datetime) -> int:
    """Pending requests past their window become `expired` (audited); returns how many."""
    stale = conn.execute(select(_requests.c.id).where(_requests.c.status == PENDING,
                                                      _requests.c.expires_at < now)).scalars().all()
    for request_id in stale:
        conn.execute(update(_requests).where(_requests.c.id == request_id).values(status=EXPIRED, decided_at=now))
        audit.append(conn, actor="system", action="ERASURE", table_name="erasure_requests",
                     record_id=request_id, details={"event": "request_expired"})
    return len(stale)


def request_erasure(conn: Connection, *, client_id: uuid.UUID, actor: str, reason: str,
                    session_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """File a request to erase `client_id`; audited ERASURE_REQUEST. Refused (nothing
    written) for an unknown or already erased client, or when one is already pending,
    and for anyone but a named, logged-in person (the four eyes are two people)."""
    if not is_person(actor):
        raise PermissionDenied(f"erasure request: filing one {NOT_A_PERSON}")
    reason = _reason(reason)
    now = now or utcnow()
    lock(conn)
    expire_requests(conn, now)
    exists, live_key = _client_key_state(conn, client_id)
    if not exists:
        raise NotFoundError(f"erasure request: client {client_id} not found")
    if not live_key:
        raise ConflictError(f"erasure request: client {client_id} is already erased (its keys are destroyed)")
    pending = conn.execute(select(_requests.c.id).where(_requests.c.client_id == client_id,
                                                        _requests.c.status == PENDING)).scalar()
    if pending is not None:
        raise ConflictError(f"erasure request: request {pending} for client {client_id} is already pending")
    row = {"id": new_id(), "client_id": client_id, "requested_by": actor[:120], "approved_by": None,
           "status": PENDING, "reason": reason, "created_at": now, "executed_at": None,
           "expires_at": now + APPROVAL_WINDOW, "decided_at": None, "rejected_by": None}
    conn.execute(insert(_requests), [row])
    audit.append(conn, actor=actor, action="ERASURE_REQUEST", table_name="erasure_requests",
                 record_id=row["id"], session_id=session_id,
                 details={"client_id": str(client_id), "expires_at": row["expires_at"].isoformat()})
    return row


def list_requests(conn: Connection, *, include_closed: bool = False, limit: int = 100,
                  now: datetime | None = None, practice_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    """Requests newest first (pending only unless `include_closed`), each with the hold
    that would refuse it now (`held_by`); only those about `practice_id`'s clients when
    given. Read-only: expiry shows as `expired` here and is recorded by the next write."""
    now = now or utcnow()
    query = select(_requests).order_by(_requests.c.created_at.desc()).limit(limit)
    if practice_id is not None:
        query = query.where(_requests.c.client_id.in_(
            select(_clients.c.id).where(_clients.c.practice_id == practice_id)))
    if not include_closed:
        query = query.where(_requests.c.status == PENDING)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    scope = holds.active_scope(conn)
    practices = dict(conn.execute(select(_clients.c.id, _clients.c.practice_id).where(
        _clients.c.id.in_([r["client_id"] for r in rows]))).all()) if rows else {}
    for row in rows:
        if row["status"] == PENDING and row["expires_at"] is not None and row["expires_at"] < now:
            row["status"] = EXPIRED
        row["held_by"] = scope.hold_for(practices.get(row["client_id"]), row["client_id"])
    return rows


def _load_pending(conn: Connection, request_id: uuid.UUID, now: datetime) -> dict:
    expire_requests(conn, now)
    row = conn.execute(select(_requests).where(_requests.c.id == request_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"erasure request {request_id} not found")
    if row["status"] != PENDING:
        raise ConflictError(f"erasure request {request_id} is {row['status']}, not pending")
    return dict(row)


def _four_eyes(conn: Connection, row: dict, actor: str, action: str, session_id: str | None) -> PermissionDenied | None:
    if is_person(actor) and actor != row["requested_by"]:
        return None
    own = actor == row["requested_by"]
    audit.append(conn, actor=actor, action=action, table_name="erasure_requests", record_id=row["id"],
                 outcome="denied", session_id=session_id,
                 details={"event": "self_decision_refused" if own else "not_a_person_refused"})
    if not own:
        return PermissionDenied(f"erasure request {row['id']}: deciding it {NOT_A_PERSON}")
    return PermissionDenied(f"erasure request {row['id']} was filed by {row['requested_by']}; a different "
                            "person must decide it (four-eyes rule)")


def approve(engine: Engine, keyring: Keyring, request_id: uuid.UUID, *, approver: str, files: Target,
            session_id: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Approve a pending request and carry it out at once (see the module docstring).

    After the erasure has committed, the objects of the client's files are deleted from
    `files` (the live files store) and that is audited with counts (core/files/purge.py;
    the certificate reports them); a failed delete is recorded, never undoes the erasure.

    Refusals, each with nothing erased: unknown request (NotFoundError); not pending or
    expired, or a legal hold covering the client (ConflictError); the requester or the
    scheduler approving (PermissionDenied). Refusals after the request was found are
    audited."""
    now = now or utcnow()
    refusal: Exception | None = None
    purge = Purge(files)
    with transaction(engine) as conn:
        lock(conn)
        row = _load_pending(conn, request_id, now)
        refusal = _four_eyes(conn, row, approver, "ERASURE_APPROVE", session_id)
        if refusal is None:
            practice_id = conn.execute(select(_clients.c.practice_id).where(
                _clients.c.id == row["client_id"])).scalar()
            hold = holds.active_scope(conn).hold_for(practice_id, row["client_id"])
            if hold is not None:
                audit.append(conn, actor=approver, action="ERASURE_APPROVE", table_name="erasure_requests",
                             record_id=request_id, outcome="denied", session_id=session_id,
                             details={"event": "legal_hold", "hold_id": str(hold)})
                refusal = ConflictError(f"erasure request {request_id}: client {row['client_id']} is under "
                                        f"legal hold {hold}; release the hold first")
        if refusal is None:
            counts = erase_client(conn, keyring, row["client_id"], now=now, purge=purge)
            conn.execute(update(_requests).where(_requests.c.id == request_id).values(
                status=EXECUTED, approved_by=approver[:120], decided_at=now, executed_at=now))
            audit.append(conn, actor=approver, action="ERASURE_APPROVE", table_name="erasure_requests",
                         record_id=request_id, session_id=session_id,
                         details={"client_id": str(row["client_id"]), "requested_by": row["requested_by"]})
            audit.append(conn, actor=approver, action="ERASURE_EXECUTE", table_name="clients",
                         record_id=row["client_id"], session_id=session_id,
                         details={"request_id": str(request_id), **counts})
    if refusal is not None:
        raise refusal
    purged = purge_files(engine, purge, request_id=request_id, actor=approver)
    return {**row, "status": EXECUTED, "approved_by": approver, "decided_at": now, "executed_at": now,
            "erased": counts, "file_objects": purged.evidence()}


def purge_files(engine: Engine, purge: Purge, *, request_id: uuid.UUID, actor: str) -> Purged:
    """Delete an executed erasure's file objects and audit the counts (ERASURE on its
    request, event file_objects_deleted; `certificate` reads them from there)."""
    purged = purge.run()
    with transaction(engine) as conn:
        record(conn, purged, actor=actor, action="ERASURE", table_name="erasure_requests", record_id=request_id,
               details={"request_id": str(request_id)})
    return purged


def reject(engine: Engine, request_id: uuid.UUID, *, actor: str, session_id: str | None = None,
           now: datetime | None = None) -> dict[str, Any]:
    """Reject a pending request (by anyone but its requester); audited ERASURE_REJECT."""
    now = now or utcnow()
    with transaction(engine) as conn:
        lock(conn)
        row = _load_pending(conn, request_id, now)
        refusal = _four_eyes(conn, row, actor, "ERASURE_REJECT", session_id)
        if refusal is None:
            conn.execute(update(_requests).where(_requests.c.id == request_id).values(
                status=REJECTED, rejected_by=actor[:120], decided_at=now))
            audit.append(conn, actor=actor, action="ERASURE_REJECT", table_name="erasure_requests",
                         record_id=request_id, session_id=session_id,
                         details={"client_id": str(row["client_id"]), "requested_by": row["requested_by"]})
    if refusal is not None:
        raise refusal
    return {**row, "status": REJECTED, "rejected_by": actor, "decided_at": now}
