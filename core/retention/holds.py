"""Legal holds: while one is in force, nothing of the client it names (or, without a
client, of its whole practice) is archived, deleted or erased.

A hold is released, never deleted: the row with who placed and who released it, and
when, is the record. Several holds may cover one client (two matters, say); each is
released on its own, and the client is free only when none is left.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from strongroom.core import audit
from strongroom.core.db.models import Client, LegalHold, Practice
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.repository.practices import only_practice
from strongroom.core.retention import lock

_holds = LegalHold.__table__
_clients = Client.__table__
_practices = Practice.__table__


@dataclass(frozen=True)
class Hold:
    id: uuid.UUID
    practice_id: uuid.UUID
    client_id: uuid.UUID | None
    reason: str
    created_by: str
    created_at: datetime
    released_at: datetime | None
    released_by: str | None

    @property
    def scope(self) -> str:
        return "client" if self.client_id else "practice"

    def as_dict(self) -> dict:
        return {**asdict(self), "scope": self.scope, "active": self.released_at is None}


def _hold(row) -> Hold:
    return Hold(row["id"], row["practice_id"], row["client_id"], row["reason"], row["created_by"],
                row["created_at"], row["released_at"], row["released_by"])


@dataclass
class HeldScope:
    """The holds in force: which practices and clients they cover (the oldest hold each)."""

    practices: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    clients: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    practice_of_client: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)

    def count(self, practice_id: uuid.UUID | None = None) -> int:
        """Practices and clients held: every one, or `practice_id`'s only."""
        if practice_id is None:
            return len(self.clients) + len(self.practices)
        return (int(practice_id in self.practices)
                + sum(1 for client in self.clients if self.practice_of_client[client] == practice_id))

    def hold_for(self, practice_id: uuid.UUID | None, client_id: uuid.UUID | None) -> uuid.UUID | None:
        """The hold blocking a row of this practice and client, or None."""
        return self.clients.get(client_id) or self.practices.get(practice_id)


def active_scope(conn: Connection) -> HeldScope:
    scope = HeldScope()
    rows = conn.execute(select(_holds.c.id, _holds.c.practice_id, _holds.c.client_id)
                        .where(_holds.c.released_at.is_(None)).order_by(_holds.c.created_at.desc()))
    for row in rows:
        if row.client_id is None:
            scope.practices[row.practice_id] = row.id
        else:
            scope.clients[row.client_id] = row.id
            scope.practice_of_client[row.client_id] = row.practice_id
    return scope


def list_holds(conn: Connection, *, include_released: bool = False, limit: int = 200,
               practice_id: uuid.UUID | None = None) -> list[Hold]:
    """Holds, newest first; only those in force unless `include_released`; only
    `practice_id`'s when given (a caller bound to a practice sees no other's)."""
    query = select(_holds).order_by(_holds.c.created_at.desc()).limit(limit)
    if practice_id is not None:
        query = query.where(_holds.c.practice_id == practice_id)
    if not include_released:
        query = query.where(_holds.c.released_at.is_(None))
    return [_hold(r) for r in conn.execute(query).mappings()]


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not 1 <= len(reason) <= 500:
        raise ValidationError("legal hold: a reason of 1 to 500 characters is required (a matter or case "
                              "reference; it is shown to operators, so no clinical details)")
    return reason


def place_hold(conn: Connection, *, actor: str, reason: str, client_id: uuid.UUID | None = None,
               practice_id: uuid.UUID | None = None, session_id: str | None = None) -> Hold:
    """Place a hold on one client, or (no client) on a whole practice; audited LEGAL_HOLD.

    The client must exist (a tombstoned one too: its records may still be readable).
    Without a practice id, the client's practice, or the only practice there is."""
    reason = _reason(reason)
    lock(conn)
    if client_id is not None:
        owner = conn.execute(select(_clients.c.practice_id, _clients.c.deleted_at)
                             .where(_clients.c.id == client_id)).first()
        if owner is None:
            raise NotFoundError(f"legal hold: client {client_id} not found")
        if practice_id is not None and practice_id != owner.practice_id:
            raise ValidationError(f"legal hold: client {client_id} does not belong to practice {practice_id}")
        practice_id = owner.practice_id
    elif practice_id is None:
        practice_id = only_practice(conn)
    elif conn.execute(select(_practices.c.id).where(_practices.c.id == practice_id)).first() is None:
        raise NotFoundError(f"legal hold: practice {practice_id} not found")
    row = {"id": new_id(), "practice_id": practice_id, "client_id": client_id, "reason": reason,
           "created_by": actor[:120], "created_at": utcnow(), "released_at": None, "released_by": None}
    conn.execute(insert(_holds), [row])
    audit.append(conn, actor=actor, action="LEGAL_HOLD", table_name="legal_holds", record_id=row["id"],
                 session_id=session_id,
                 details={"scope": "client" if client_id else "practice", "practice_id": str(practice_id),
                          "client_id": None if client_id is None else str(client_id)})
    return _hold(row)


def release_hold(conn: Connection, hold_id: uuid.UUID, *, actor: str,
                 session_id: str | None = None) -> Hold:
    """Release a hold in force; audited LEGAL_HOLD_RELEASE. Unknown: NotFoundError;
    already released: ConflictError."""
    lock(conn)
    row = conn.execute(select(_holds).where(_holds.c.id == hold_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"legal hold {hold_id} not found")
    if row["released_at"] is not None:
        raise ConflictError(f"legal hold {hold_id} was already released by {row['released_by']} at "
                            f"{row['released_at'].isoformat(timespec='seconds')}")
    now = utcnow()
    conn.execute(update(_holds).where(_holds.c.id == hold_id).values(released_at=now, released_by=actor[:120]))
    audit.append(conn, actor=actor, action="LEGAL_HOLD_RELEASE", table_name="legal_holds", record_id=hold_id,
                 session_id=session_id,
                 details={"scope": "client" if row["client_id"] else "practice",
                          "practice_id": str(row["practice_id"]),
                          "client_id": None if row["client_id"] is None else str(row["client_id"])})
    return _hold({**row, "released_at": now, "released_by": actor[:120]})
