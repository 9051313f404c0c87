"""Four-eyes requests for forgetting backups: filed by one person, carried out by another.

A configuration with `require_approval` never deletes on one person's say: a prune or
forget files a request (what would be forgotten, who asked, timed by our clock), and a
different named person carries it out with its `request_id` before it expires. A request
the scheduler filed is first endorsed by one person and approved by another. Every step
is audited; so is every refusal.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from strongroom.core import audit
from strongroom.core.backup import configurations
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import BackupPruneRequest
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied
from strongroom.core.ids import new_id
from strongroom.core.principal import NOT_A_PERSON, is_person

_requests = BackupPruneRequest.__table__


def expire_requests(conn: Connection, now: datetime) -> int:
    """Mark pending requests past their expiry as expired (audited); returns how many."""
    stale = conn.execute(select(_requests.c.id).where(_requests.c.status == "pending",
                                                      _requests.c.expires_at < now)).scalars().all()
    for request_id in stale:
        conn.execute(update(_requests).where(_requests.c.id == request_id).values(status="expired"))
        audit.append(conn, actor="system", action="RETENTION", table_name="backup_prune_requests",
                     record_id=request_id, details={"event": "request_expired"})
    return len(stale)


def pending_requests(ctx: Context, *, include_closed: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    """Four-eyes requests, newest first (pending ones only unless `include_closed`)."""
    with transaction(ctx.engine) as conn:
        expire_requests(conn, utcnow())
        query = select(_requests).order_by(_requests.c.requested_at.desc()).limit(limit)
        if not include_closed:
            query = query.where(_requests.c.status == "pending")
        names = {r.id: r.name for r in conn.execute(select(configurations._table.c.id, configurations._table.c.name))}
        return [{**dict(r), "configuration": names.get(r["configuration_id"])}
                for r in conn.execute(query).mappings()]


def check_filer(actor: str, kind: str = "prune") -> None:
    """PermissionDenied unless `actor` may file a four-eyes request: a named, logged-in
    person, or the scheduler (whose requests then need two people: `_endorse`)."""
    if actor != SCHEDULER and not is_person(actor):
        raise PermissionDenied(f"a {kind} in four-eyes mode files a request, and filing one {NOT_A_PERSON}")


def file_request(ctx: Context, cfg: configurations.Configuration, the_plan, kind: str,
                 actor: str, now: datetime) -> dict[str, Any]:
    """File (or find the identical pending) request to carry `the_plan` (a prune.Plan)
    out; a newer plan replaces an older pending one of the same kind."""
    check_filer(actor, kind)
    wanted = sorted(str(i) for i in the_plan.forget)
    superseded = sorted(str(i) for i in the_plan.superseded)
    with transaction(ctx.engine) as conn:
        expire_requests(conn, now)
        configuration_id = configurations.sync_one(conn, ctx.settings, cfg.name, actor="system")
        for row in conn.execute(select(_requests).where(
                _requests.c.status == "pending", _requests.c.configuration_id == configuration_id,
                _requests.c.kind == kind)).mappings():
            if sorted(row["snapshot_ids"]) == wanted and sorted(row["plan"].get("superseded", [])) == superseded:
                return {"request_id": str(row["id"]), "expires_at": row["expires_at"].isoformat(), "new": False}
            # A newer plan replaces an older pending one of the same kind: approving a
            # stale list would be approving something nobody looks at any more.
            conn.execute(update(_requests).where(_requests.c.id == row["id"]).values(status="replaced"))
            audit.append(conn, actor="system", action="RETENTION", table_name="backup_prune_requests",
                         record_id=row["id"], details={"event": "request_replaced"})
        request_id = new_id()
        expires = now + timedelta(hours=cfg.approval_hours)
        conn.execute(insert(_requests), [{
            "id": request_id, "configuration_id": configuration_id, "kind": kind, "snapshot_ids": wanted,
            "plan": {"superseded": superseded, "compactions": [r.as_dict() for r in the_plan.rewrites],
                     "kept": the_plan.kept, "retention": cfg.retention.model_dump()},
            "status": "pending", "requested_by": actor, "requested_at": now, "expires_at": expires}])
        audit.append(conn, actor=actor, action="RETENTION", table_name="backup_prune_requests",
                     record_id=request_id, details={"event": "request_filed", "kind": kind,
                                                    "configuration": cfg.name, "forget": len(wanted),
                                                    "superseded": len(superseded)})
    return {"request_id": str(request_id), "expires_at": expires.isoformat(), "new": True}


# The actor of scheduled runs (daemon.runner): a request it files has no person behind it.
SCHEDULER = "system"


def endorse(ctx: Context, request: dict[str, Any], actor: str) -> dict[str, Any]:
    """The first person to approve a request the scheduler filed becomes its requester
    (an endorsement, audited); a second, different person must still approve it. Without
    this, a scheduled prune would need only one person's say to delete backups."""
    with transaction(ctx.engine) as conn:
        taken = conn.execute(update(_requests).where(
            _requests.c.id == request["id"], _requests.c.status == "pending",
            _requests.c.requested_by == SCHEDULER).values(requested_by=actor)).rowcount
        if taken != 1:
            raise ConflictError(f"request {request['id']} changed while being endorsed; look at it again")
        audit.append(conn, actor=actor, action="RETENTION", table_name="backup_prune_requests",
                     record_id=request["id"], details={"event": "request_endorsed", "filed_by": SCHEDULER})
    return {"request_id": str(request["id"]), "expires_at": request["expires_at"].isoformat(),
            "endorsed_by": actor, "new": False}


def check_approval(ctx: Context, request_id: uuid.UUID, approver: str, now: datetime) -> dict[str, Any]:
    """The pending request `approver` may approve now, or a clear refusal.

    Refusals: unknown request (NotFoundError); not pending or expired (ConflictError);
    the requester approving their own request, or the scheduler (PermissionDenied,
    recorded in the audit log in a transaction of its own)."""
    with transaction(ctx.engine) as conn:
        expire_requests(conn, now)
        row = conn.execute(select(_requests).where(_requests.c.id == request_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"no backup prune request {request_id}")
    if row["status"] != "pending":
        raise ConflictError(f"request {request_id} is {row['status']}, not pending")
    if not is_person(approver) and approver != SCHEDULER:
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=approver, action="RETENTION", table_name="backup_prune_requests",
                         record_id=request_id, outcome="denied", details={"event": "not_a_person_refused"})
        raise PermissionDenied(f"request {request_id}: approving it {NOT_A_PERSON}")
    if approver == row["requested_by"] or approver == SCHEDULER:
        with transaction(ctx.engine) as conn:
            audit.append(conn, actor=approver, action="RETENTION", table_name="backup_prune_requests",
                         record_id=request_id, outcome="denied", details={"event": "self_approval_refused"})
        raise PermissionDenied(f"request {request_id} was filed by {row['requested_by']}; a different person "
                               "must approve it (four-eyes rule)")
    return dict(row)


def close_request(ctx: Context, request_id: uuid.UUID, actor: str, status: str, error: str | None,
                   note: str | None = None) -> None:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "error": error}
    if status == "executed":
        values.update(approved_by=actor, approved_at=now, executed_at=now)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_requests).where(_requests.c.id == request_id).values(**values))
        event = {"executed": "request_approved_and_executed", "refused": "request_refused",
                 "pending": "request_approval_failed"}[status]
        audit.append(conn, actor=actor, action="RETENTION", table_name="backup_prune_requests",
                     record_id=request_id, outcome="success" if status == "executed" else "failure",
                     details={"event": event, **({"reason": error or note} if (error or note) else {})})
