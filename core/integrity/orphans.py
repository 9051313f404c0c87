"""Referential orphans: rows pointing at rows that do not exist, or that are tombstoned
when the pointer says they must be live.

Foreign keys guard most of this while they are enforced, but not a restore with them
off, a sync from a peer that lost a row, or SQLite opened without `foreign_keys=ON`;
and no foreign key says that a legal hold on a deleted client is wrong. A pointer at a
missing row is a failure. A live row under a tombstoned parent is a failure where the
parent's deletion must not have happened (a held client) and a warning elsewhere (a
plain `clients delete` tombstones the client and leaves its sessions, which erasure
then tombstones with it).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, or_, select
from strongroom.core.context import Context
from strongroom.core.db.models import (
    AuthSession,
    Client,
    ClientFile,
    DataKey,
    KeyState,
    LegalHold,
    Practice,
    RoleGrant,
    TherapySession,
    User,
)
from strongroom.core.db.types import utcnow
from strongroom.core.integrity import FAIL, MAX_EVIDENCE_IDS, OK, WARN, record, worst


@dataclass(frozen=True)
class Pointer:
    """`child.column` points at `parent.id` for every child row `live` selects."""

    name: str
    child: Table
    column: str
    parent: Table
    live: Callable[[Table, datetime], ColumnElement[bool]]
    # Status of a live child whose parent is tombstoned (None: tombstones are fine).
    on_tombstone: str | None = WARN
    # Status of a live child whose parent does not exist.
    on_missing: str = FAIL


def _not_deleted(t: Table, now: datetime) -> ColumnElement[bool]:
    return t.c.deleted_at.is_(None)


def _unexpired(t: Table, now: datetime) -> ColumnElement[bool]:
    return and_(t.c.revoked_at.is_(None), or_(t.c.expires_at.is_(None), t.c.expires_at > now))


def _unreleased_client_hold(t: Table, now: datetime) -> ColumnElement[bool]:
    return and_(t.c.released_at.is_(None), t.c.client_id.is_not(None))


def _undestroyed_client_key(t: Table, now: datetime) -> ColumnElement[bool]:
    return and_(t.c.state != KeyState.DESTROYED, t.c.client_id.is_not(None))


_clients, _practices, _users, _keys = Client.__table__, Practice.__table__, User.__table__, DataKey.__table__
_sessions, _files = TherapySession.__table__, ClientFile.__table__

POINTERS = (
    Pointer("clients.practice_id", _clients, "practice_id", _practices, _not_deleted),
    Pointer("therapy_sessions.client_id", _sessions, "client_id", _clients, _not_deleted),
    Pointer("therapy_sessions.practice_id", _sessions, "practice_id", _practices, _not_deleted),
    Pointer("client_files.client_id", _files, "client_id", _clients, _not_deleted),
    Pointer("clients.key_id", _clients, "key_id", _keys, _not_deleted, on_tombstone=None),
    Pointer("therapy_sessions.key_id", _sessions, "key_id", _keys, _not_deleted, on_tombstone=None),
    Pointer("client_files.key_id", _files, "key_id", _keys, _not_deleted, on_tombstone=None),
    # A usable key left behind by a client that is gone: its data stays readable in
    # every backup, which erasure exists to prevent.
    Pointer("data_keys.client_id", _keys, "client_id", _clients, _undestroyed_client_key, on_tombstone=None),
    Pointer("auth_sessions.user_id", AuthSession.__table__, "user_id", _users, _unexpired, on_tombstone=FAIL),
    Pointer("role_grants.user_id", RoleGrant.__table__, "user_id", _users, _unexpired, on_tombstone=FAIL),
    # A hold blocks deletion, so a held client that is tombstoned is a failure.
    Pointer("legal_holds.client_id", LegalHold.__table__, "client_id", _clients, _unreleased_client_hold,
            on_tombstone=FAIL),
)


def _find(conn, pointer: Pointer, now: datetime) -> dict:
    child, parent = pointer.child, pointer.parent
    ref = child.c[pointer.column]
    tombstoned = parent.c.deleted_at.is_not(None) if "deleted_at" in parent.c else None
    broken = parent.c.id.is_(None) if tombstoned is None else or_(parent.c.id.is_(None), tombstoned)
    query = (select(child.c.id, parent.c.id.label("parent_id"))
             .select_from(child.outerjoin(parent, ref == parent.c.id))
             .where(pointer.live(child, now), ref.is_not(None), broken).order_by(child.c.id))
    missing, dead = [], []
    for row in conn.execute(query):
        (missing if row.parent_id is None else dead).append(str(row.id))
    return {"missing": missing, "tombstoned": dead}


def check_orphans(ctx: Context, progress) -> dict:
    """Every pointer in POINTERS, one query each; one recorded check with a finding per pointer."""
    started, now = utcnow(), utcnow()
    findings, status = {}, OK
    with ctx.engine.connect() as conn:
        for n, pointer in enumerate(POINTERS, 1):
            found = _find(conn, pointer, now)
            here = OK
            if found["missing"]:
                here = worst(here, pointer.on_missing)
            if found["tombstoned"] and pointer.on_tombstone:
                here = worst(here, pointer.on_tombstone)
            elif not pointer.on_tombstone:
                found["tombstoned"] = []
            if here != OK:
                findings[pointer.name] = {
                    "status": here, "missing_parent": len(found["missing"]),
                    "tombstoned_parent": len(found["tombstoned"]),
                    "ids": (found["missing"] + found["tombstoned"])[:MAX_EVIDENCE_IDS]}
            status = worst(status, here)
            progress(n, len(POINTERS), f"orphans: {pointer.name}")
    missing = sum(f["missing_parent"] for f in findings.values())
    dead = sum(f["tombstoned_parent"] for f in findings.values())
    return record(ctx, "orphans", "referential orphans", None, status,
                  "every live row points at a live row",
                  f"{missing} pointing at missing rows, {dead} at tombstoned rows",
                  {"pointers_checked": len(POINTERS), "missing_parent": missing, "tombstoned_parent": dead,
                   "findings": findings}, started)
