"""Merging a pair, and undoing a merge, each in the caller's one transaction.

A merge keeps everything: every therapy session and client file of the duplicate
(live or tombstoned) moves to the survivor, each moved row gets a new `sync_version`,
`updated_at` and checksum so sync and incremental backups carry it, and the duplicate
is tombstoned (`deleted_at` set; its row and data key stay, since the moved rows are
still sealed with that key). The pair records the survivor, the duplicate and the id of
every row moved; the audit entry carries the same ids (never a value). `undo` moves
exactly those rows back (those still on the survivor), brings the duplicate back and
reopens the pair.

Refused, naming why: a pair that is not open (merge) or not merged (undo); either
client gone or erased (its keys destroyed), or with an erasure request pending, since
moving rows in or out of an erasure would let data escape it or be shredded with the
wrong person. Legal holds do not stop a merge: nothing is deleted, every row stays.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, select, update

from strongroom.core import audit
from strongroom.core.db.models import Client, ClientFile, DataKey, ErasureRequest, KeyState, TherapySession
from strongroom.core.errors import ValidationError
from strongroom.core.principal import Principal
from strongroom.core.reconcile.repository import MERGED, OPEN, _pairs, get_pair, load_pair, pair_id, require
from strongroom.core.repository.changes import next_change_version
from strongroom.core.retention import rewrite_rows
from strongroom.core.retention.erasure import PENDING

_clients = Client.__table__
_sessions = TherapySession.__table__
_files = ClientFile.__table__
_keys = DataKey.__table__
_requests = ErasureRequest.__table__
_MOVED = (("therapy_sessions", _sessions), ("client_files", _files))


def _check_client(conn: Connection, client_id: uuid.UUID, role: str, *, live: bool) -> None:
    row = conn.execute(select(_clients.c.id, _clients.c.deleted_at).where(_clients.c.id == client_id)).first()
    if row is None or (live and row.deleted_at is not None):
        raise ValidationError(f"{role}: the client no longer exists (deleted or erased)")
    pending = conn.execute(select(_requests.c.id).where(_requests.c.client_id == client_id,
                                                        _requests.c.status == PENDING).limit(1)).first()
    if pending is not None:
        raise ValidationError(f"{role}: the client has a pending erasure request; decide it first")
    shredded = conn.execute(select(_keys.c.id).where(_keys.c.client_id == client_id,
                                                     _keys.c.state == KeyState.DESTROYED).limit(1)).first()
    if shredded is not None:
        raise ValidationError(f"{role}: the client was erased (its keys are destroyed)")


def _audit(conn: Connection, principal: Principal, pair, details: dict) -> None:
    audit.append(conn, actor=principal.actor, action="UPDATE", table_name="reconcile_pairs", record_id=pair,
                 details=details, session_id=principal.session_id, ip_address=principal.ip_address,
                 user_agent=principal.user_agent)


def _move(conn: Connection, table, ids: list[uuid.UUID] | None, source: uuid.UUID, target: uuid.UUID,
          now: datetime, version: int) -> list[str]:
    query = select(table).where(table.c.client_id == source)
    if ids is not None:
        query = query.where(table.c.id.in_(ids))
    rows = conn.execute(query.order_by(table.c.id)).mappings().all()
    moved = rewrite_rows(conn, table, rows, {"client_id": target, "updated_at": now, "sync_version": version})
    return [str(i) for i in moved]


def merge(conn: Connection, principal: Principal, value: object, now: datetime, *,
          survivor: object | None = None) -> dict:
    """Merge an open pair: `survivor` (client_a by default) keeps both clients' rows."""
    require(principal, "table:clients:write")
    pair = load_pair(conn, value, for_update=True)
    if pair.status != OPEN:
        raise ValidationError(f"pair_id: the pair is {pair.status}, only an open pair can be merged")
    keep = pair.client_a if survivor is None else pair_id(survivor, "survivor")
    if keep not in (pair.client_a, pair.client_b):
        raise ValidationError("survivor: must be one of the pair's two clients")
    gone = pair.client_b if keep == pair.client_a else pair.client_a
    _check_client(conn, keep, "survivor", live=True)
    _check_client(conn, gone, "duplicate", live=True)
    version = next_change_version(conn)
    record = {"survivor": str(keep), "duplicate": str(gone)}
    for name, table in _MOVED:
        record[name] = _move(conn, table, None, gone, keep, now, version)
    duplicate = conn.execute(select(_clients).where(_clients.c.id == gone)).mappings().all()
    rewrite_rows(conn, _clients, duplicate, {"deleted_at": now, "updated_at": now, "sync_version": version})
    conn.execute(update(_pairs).where(_pairs.c.id == pair.id).values(
        status=MERGED, decided_by=principal.actor, decided_at=now, merge_record=record))
    _audit(conn, principal, pair.id, {"decision": "merge", **record})
    return get_pair(conn, principal, pair.id)


def undo(conn: Connection, principal: Principal, value: object, now: datetime) -> dict:
    """Undo a merge: the recorded rows go back to the duplicate, which lives again; the pair reopens."""
    require(principal, "table:clients:write")
    pair = load_pair(conn, value, for_update=True)
    if pair.status != MERGED or not pair.merge_record:
        raise ValidationError(f"pair_id: the pair is {pair.status}, only a merged pair can be undone")
    record = pair.merge_record
    keep, gone = uuid.UUID(record["survivor"]), uuid.UUID(record["duplicate"])
    _check_client(conn, keep, "survivor", live=True)
    _check_client(conn, gone, "duplicate", live=False)
    version = next_change_version(conn)
    returned = {"survivor": str(keep), "duplicate": str(gone)}
    for name, table in _MOVED:
        ids = [uuid.UUID(i) for i in record.get(name, [])]
        returned[name] = _move(conn, table, ids, keep, gone, now, version) if ids else []
    duplicate = conn.execute(select(_clients).where(_clients.c.id == gone)).mappings().all()
    rewrite_rows(conn, _clients, duplicate, {"deleted_at": None, "updated_at": now, "sync_version": version})
    conn.execute(update(_pairs).where(_pairs.c.id == pair.id).values(
        status=OPEN, decided_by=principal.actor, decided_at=now, merge_record=None))
    _audit(conn, principal, pair.id, {"decision": "undo", **returned})
    return get_pair(conn, principal, pair.id)
