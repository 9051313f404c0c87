"""Reading clients for matching, and the pairs table.

Matching needs names, dates of birth, phones and emails in the clear: they are read a
batch at a time through the records layer (core.repository.records: each row opened
with its own key, the same checks as every bulk read), reduced to normalised `Person`s
in memory and audited as one READ (count only). Nothing decrypted is written anywhere:
a pair row holds two client ids, a score and reason codes.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, and_, insert, or_, select, update

from strongroom.core import audit
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import Client, ReconcilePair
from strongroom.core.db.paging import stream
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.principal import Principal
from strongroom.core.reconcile.score import Person, person
from strongroom.core.repository.records import layout, open_columns

OPEN, MERGED, DISMISSED = "open", "merged", "dismissed"
STATUSES = (OPEN, MERGED, DISMISSED)
_pairs = ReconcilePair.__table__
_clients = Client.__table__
_FIELDS = ("id", "first_name", "last_name", "date_of_birth", "phone", "email",
           "email_bidx", "ssn_last4_bidx", "last_name_bidx")
_SHAPE = layout("clients", _FIELDS, own_key=True,
                convert={"id": None, "email_bidx": None, "ssn_last4_bidx": None, "last_name_bidx": None})
BATCH = 2000


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def pair_id(value: object, field: str = "pair_id") -> uuid.UUID:
    """A pair id from a request; a clear error naming `field` (never the value) if it is not a UUID."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        raise ValidationError(f"{field}: must be a UUID") from None


def audit_read(conn: Connection, principal: Principal, practice_id: uuid.UUID, *,
               requested_by: str | None = None) -> None:
    """The READ entry for a matching pass over a practice's clients, written (and
    committed) before the pass reads them: why, which practice, and who asked for the
    pass when it was not the reader itself (a person's `reconcile run` is read by the
    daemon's job); no ids, no values."""
    require(principal, "table:clients:read")
    require(principal, "phi:read")
    asked = {"requested_by": requested_by} if requested_by and requested_by != principal.actor else {}
    audit.append(conn, actor=principal.actor, action="READ", table_name="clients",
                 details={"phi": True, "via": "reconcile", "practice_id": str(practice_id),
                          "fields": ["first_name", "last_name", "date_of_birth", "phone", "email"], **asked},
                 session_id=principal.session_id, ip_address=principal.ip_address,
                 user_agent=principal.user_agent)


def load_people(conn: Connection, keyring: Keyring, principal: Principal,
                practice_id: uuid.UUID) -> tuple[list[Person], list[tuple]]:
    """Every live client of the practice as a `Person`, with its three blind indexes.
    The caller has audited the read (`audit_read`) in a transaction of its own, so this
    one may be read-only and hold no write lock for the length of the pass."""
    require(principal, "table:clients:read")
    require(principal, "phi:read")
    query = _SHAPE.select().where(_clients.c.practice_id == practice_id,
                                  _clients.c.deleted_at.is_(None)).order_by(_clients.c.id)
    people: list[Person] = []
    blind: list[tuple] = []
    for rows in stream(conn, query, size=BATCH):
        ids, first, last, dob, phone, email, b_email, b_ssn, b_last = open_columns(conn, keyring, _SHAPE, rows)
        people.extend(map(person, ids, first, last, dob, phone, email))
        blind.extend(zip(b_email, b_ssn, b_last))
    return people, blind


def merged_with(conn: Connection, client_id: uuid.UUID) -> list[uuid.UUID]:
    """The clients a merged pair links to `client_id` (whose moved rows may still be
    sealed with their keys)."""
    rows = conn.execute(select(_pairs.c.client_a, _pairs.c.client_b).where(
        _pairs.c.status == MERGED, (_pairs.c.client_a == client_id) | (_pairs.c.client_b == client_id)))
    return [b if a == client_id else a for a, b in rows]


def ordered(a: uuid.UUID, b: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    return (a, b) if str(a) < str(b) else (b, a)


def save_pairs(conn: Connection, practice_id: uuid.UUID, found: list[tuple[uuid.UUID, uuid.UUID, float, list[str]]],
               now: datetime) -> dict[str, int]:
    """Record the pairs found: new ones open, open ones rescored; merged and dismissed
    ones left as decided (a re-run never resurrects a dismissed pair)."""
    existing = {(row.client_a, row.client_b): (row.id, row.status) for row in conn.execute(
        select(_pairs.c.id, _pairs.c.client_a, _pairs.c.client_b, _pairs.c.status)
        .where(_pairs.c.practice_id == practice_id))}
    new, rescored, decided = [], [], 0
    for a, b, value, reasons in found:
        a, b = ordered(a, b)
        text = ",".join(reasons)
        known = existing.get((a, b))
        if known is None:
            new.append({"id": uuid.uuid4(), "practice_id": practice_id, "client_a": a, "client_b": b,
                        "score": value, "reasons": text, "status": OPEN, "found_at": now})
        elif known[1] == OPEN:
            rescored.append((known[0], value, text))
        else:
            decided += 1
    for start in range(0, len(new), 1000):
        conn.execute(insert(_pairs), new[start:start + 1000])
    for row_id, value, text in rescored:
        conn.execute(update(_pairs).where(_pairs.c.id == row_id).values(score=value, reasons=text))
    return {"new": len(new), "still_open": len(rescored), "already_decided": decided}


def _record(row) -> dict:
    return {"pair_id": str(row.id), "practice_id": str(row.practice_id), "client_a": str(row.client_a),
            "client_b": str(row.client_b), "score": round(row.score, 4),
            "reasons": row.reasons.split(",") if row.reasons else [], "status": row.status,
            "found_at": row.found_at.isoformat(), "decided_by": row.decided_by,
            "decided_at": row.decided_at.isoformat() if row.decided_at else None,
            "merge_record": row.merge_record}


def list_pairs(conn: Connection, principal: Principal, *, practice_id: uuid.UUID | None = None,
               status: str | None = OPEN, limit: int = 100,
               after: object = None) -> tuple[list[dict], str | None]:
    """A page of pairs, best score first (ids, scores, reasons only: nothing to mask), and
    the `after` that continues it (None on the last page).

    `after` is the id of the last pair of the previous page: the page continues after it in
    (score descending, id) order. Keyset rather than offset paging, because pairs change
    status while someone pages (a merge takes a pair out of the open list) and an offset
    would then skip the pair that moved up into its place."""
    require(principal, "table:clients:read")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"status: must be one of {', '.join(STATUSES)}")
    if not 1 <= limit <= 10_000:
        raise ValidationError("limit: must be between 1 and 10000")
    query = select(_pairs)
    if practice_id is not None:
        query = query.where(_pairs.c.practice_id == practice_id)
    if status is not None:
        query = query.where(_pairs.c.status == status)
    if after is not None:
        # Looked up within the same practice: another practice's pair is as unknown here
        # as one that does not exist (strongroom.daemon.tenancy).
        last = conn.execute(select(_pairs.c.id, _pairs.c.score).where(
            _pairs.c.id == pair_id(after, "after"),
            *([_pairs.c.practice_id == practice_id] if practice_id is not None else []))).first()
        if last is None:
            raise NotFoundError("after: no such reconcile pair")
        query = query.where(or_(_pairs.c.score < last.score,
                                and_(_pairs.c.score == last.score, _pairs.c.id > last.id)))
    rows = conn.execute(query.order_by(_pairs.c.score.desc(), _pairs.c.id).limit(limit + 1)).all()
    return [_record(row) for row in rows[:limit]], (str(rows[limit - 1].id) if len(rows) > limit else None)


def load_pair(conn: Connection, value: object, *, for_update: bool = False):
    query = select(_pairs).where(_pairs.c.id == pair_id(value))
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError("pair_id: no such reconcile pair")
    return row


def get_pair(conn: Connection, principal: Principal, value: object) -> dict:
    require(principal, "table:clients:read")
    return _record(load_pair(conn, value))


def dismiss(conn: Connection, principal: Principal, value: object, now: datetime) -> dict:
    """Mark an open pair as not one person; re-runs leave it dismissed."""
    require(principal, "table:clients:write")
    row = load_pair(conn, value, for_update=True)
    if row.status != OPEN:
        raise ValidationError(f"pair_id: the pair is {row.status}, only an open pair can be dismissed")
    conn.execute(update(_pairs).where(_pairs.c.id == row.id)
                 .values(status=DISMISSED, decided_by=principal.actor, decided_at=now))
    audit.append(conn, actor=principal.actor, action="UPDATE", table_name="reconcile_pairs", record_id=row.id,
                 details={"decision": DISMISSED, "client_a": str(row.client_a), "client_b": str(row.client_b)},
                 session_id=principal.session_id, ip_address=principal.ip_address,
                 user_agent=principal.user_agent)
    return _record(load_pair(conn, row.id))
