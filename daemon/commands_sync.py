"""Sync commands: peers, status, a pass, the quarantine, the conflict queue and resolving
one field by field.

Seeing peers and status needs `config:read`; adding, removing, pausing and resuming a
peer `config:write`; a pass `job:sync:run` (it is a `sync` job, like `job.run`). Seeing
and resolving conflicts, and the quarantine, needs `sync:resolve` (operators hold it
without `phi:read`: they see PHI masked and resolve by choosing versions, never by
sending values; the quarantine never shows a row's content). A conflict shows the fields
that differ; any other is opened only when asked for by name, one at a time. A resolution is published
on the `sync.conflict` topic so every console showing the queue refreshes at once.

Peer addresses are shown with any password masked, and no error repeats a name or an
address the caller sent: a peer name is the caller's text, and may be anything.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import select

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import SyncConflict
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.sync import conflicts, peers
from strongroom.core.sync import status as sync_status

from strongroom.core.protocol.models.jobs import JobRun
from strongroom.core.protocol.models.sync import ConflictArgs, ConflictField, ConflictFieldArgs, ConflictShown, ConflictSummary, ConflictsArgs, Peer, PeerAddArgs, PeerChanged, PeerNameArgs, QuarantineArgs, QuarantinedRow, ResolveArgs, SyncCheckArgs, SyncCheckResult, SyncRunArgs, SyncStatus
from strongroom.daemon import tenancy
from strongroom.daemon.commands import Call, command

_conflicts = SyncConflict.__table__

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon



@command("sync.peer.list", permission="config:read", result=list[Peer])
def sync_peers_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Sync peers with their lag: time since the last sync, changes not yet sent, open conflicts."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        return peers.list_peers(conn)


def _checked_url(url: str) -> str:
    """The address checked by the engine's rules; the error names the rule only."""
    try:
        return peers.check_url("", url)
    except ValidationError as exc:
        raise ValidationError(f"sync peer: {str(exc).split(': ', 1)[-1]}") from None


@command("sync.peer.add", permission="config:write", args=PeerAddArgs, result=Peer)
def sync_peer_add_cmd(d: "Daemon", call: Call) -> dict:
    """Add a sync peer by name and database URL (SQLite file, or PostgreSQL; off this
    machine only with sslmode=verify-full). The URL is never shown with its password."""
    a: PeerAddArgs = call.args
    url = _checked_url(a.url)
    with transaction(d.ctx.engine) as conn:
        if conn.execute(select(peers._peers.c.id).where(peers._peers.c.name == a.name)).first() is not None:
            raise ConflictError("a sync peer by that name already exists (see sync.peer.list)")
        peer_id = peers.add_peer(conn, a.name, url, direction=a.direction)
        audit.append(conn, actor=call.principal.actor, action="CONFIG", table_name="sync_peers",
                     record_id=peer_id, session_id=call.principal.session_id,
                     details={"event": "sync_peer_added", "peer": a.name, "direction": a.direction})
        return _one(conn, peer_id)


def _one(conn, peer_id: uuid.UUID) -> dict:
    return next(p for p in peers.list_peers(conn) if p["id"] == peer_id)


def _change(d: "Daemon", call: Call, event: str, change) -> dict:
    with transaction(d.ctx.engine) as conn:
        peer = change(conn, call.args.name)
        audit.append(conn, actor=call.principal.actor, action="CONFIG", table_name="sync_peers",
                     record_id=peer["id"], session_id=call.principal.session_id,
                     details={"event": event, "peer": call.args.name})
        return {"id": peer["id"], "name": call.args.name, "event": event}


@command("sync.peer.remove", permission="config:write", args=PeerNameArgs, result=PeerChanged)
def sync_peer_remove_cmd(d: "Daemon", call: Call) -> dict:
    """Forget a sync peer and its watermarks (refused while it has open conflicts); a peer
    still in the config file comes back on the next start or reload."""
    return _change(d, call, "sync_peer_removed", peers.remove_peer)


@command("sync.peer.pause", permission="config:write", args=PeerNameArgs, result=PeerChanged)
def sync_peer_pause_cmd(d: "Daemon", call: Call) -> dict:
    """Pause a sync peer: no pass with it, scheduled or asked for, until it is resumed."""
    return _change(d, call, "sync_peer_paused", lambda conn, name: peers.set_active(conn, name, False))


@command("sync.peer.resume", permission="config:write", args=PeerNameArgs, result=PeerChanged)
def sync_peer_resume_cmd(d: "Daemon", call: Call) -> dict:
    """Resume a paused sync peer (its retry backoff is cleared too)."""
    return _change(d, call, "sync_peer_resumed", lambda conn, name: peers.set_active(conn, name, True))


@command("sync.status.get", permission="config:read", result=SyncStatus)
def sync_status_cmd(d: "Daemon", call: Call) -> dict:
    """Per peer and table: push and pull watermarks, lag in time and rows, failures, last
    error, next attempt, clock skew, open conflicts and quarantined rows."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        return sync_status.status(conn, d.ctx.settings.sync)


@command("sync.check", permission="config:read", args=SyncCheckArgs, result=SyncCheckResult)
def sync_check_cmd(d: "Daemon", call: Call) -> dict:
    """Compare this site with a peer by ranges of rows (checksums only, nothing
    decrypted): per table the rows missing on either side or differing, with up to 50
    row ids; `consistent` when none."""
    from strongroom.core.sync.consistency import check_peer
    return check_peer(d.ctx, call.args.peer)


@command("sync.run", permission=None, args=SyncRunArgs, result=JobRun)
def sync_run_cmd(d: "Daemon", call: Call) -> dict:
    """Start a sync pass now with one peer or every active peer (needs job:sync:run);
    returns the run (follow it on job.<run id>, as for job.run)."""
    a: SyncRunArgs = call.args
    d.require(call.principal, "job:sync:run")
    if a.peer is not None:
        # Asked for a peer that is not there: answered now, and the name (the caller's
        # text) is not kept in a job record.
        with transaction(d.ctx.engine, read_only=True) as conn:
            if not peers.get_peer(conn, a.peer)["is_active"]:
                raise ConflictError("that sync peer is paused (strongroom sync peer resume NAME)")
    params = {"push": a.push, "pull": a.pull, **({"peer": a.peer} if a.peer else {})}
    run = d.submit_if_leader("sync", trigger="manual", params=params, requested_by=call.principal.actor)
    return run.as_dict()


@command("sync.quarantine.list", permission="sync:resolve", args=QuarantineArgs, result=list[QuarantinedRow])
def sync_quarantine_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Rows a peer sent that failed validation: peer, table, row id, reason and when,
    oldest first (page with after_id); never the row's content."""
    a: QuarantineArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        rows = sync_status.list_quarantine(conn, status=None if a.status == "all" else a.status,
                                           limit=a.limit, after_id=a.after_id)
        practice = tenancy.narrowed_to(conn, call.principal)
        return [r for r in rows if tenancy.row_shown(conn, practice, r["table"], r["row_id"])]


@command("sync.conflict.list", permission="sync:resolve", args=ConflictsArgs, result=list[ConflictSummary])
def sync_conflicts_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Sync conflicts, oldest first, with the fields that differ (never their values); page with after_id."""
    a: ConflictsArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        listed = conflicts.list_conflicts(conn, d.ctx.keyring, call.principal,
                                          status=None if a.status == "all" else a.status,
                                          limit=a.limit, after_id=a.after_id)
        practice = tenancy.narrowed_to(conn, call.principal)
        return [c for c in listed if tenancy.row_shown(conn, practice, c["table"], c["row_id"])]


def _conflict_shown(conn, call: Call, conflict_id) -> None:
    """A conflict over another practice's row is not_found, as one that does not exist."""
    practice = tenancy.narrowed_to(conn, call.principal)
    if practice is None:
        return
    row = conn.execute(select(_conflicts.c.table_name, _conflicts.c.row_id)
                       .where(_conflicts.c.id == conflict_id)).first()
    if row is not None and not tenancy.row_shown(conn, practice, row.table_name, row.row_id):
        raise NotFoundError(f"sync conflict {conflict_id} does not exist")    # conflicts._load's words


@command("sync.conflict.get", permission="sync:resolve", args=ConflictArgs, result=ConflictShown)
def sync_conflict_cmd(d: "Daemon", call: Call) -> dict:
    """One conflict: base, local and remote for the fields that differ (field_values),
    only the names of the others (other_fields; sync.conflict.field.get shows one); PHI
    masked without phi:read, a plaintext view audited as a READ of the differing fields."""
    with transaction(d.ctx.engine) as conn:   # writable: a plaintext view is audited
        _conflict_shown(conn, call, call.args.conflict_id)
        return conflicts.get_conflict(conn, d.ctx.keyring, call.principal, call.args.conflict_id)


@command("sync.conflict.field.get", permission="sync:resolve", args=ConflictFieldArgs, result=ConflictField)
def sync_conflict_field_cmd(d: "Daemon", call: Call) -> dict:
    """One field of a conflict, asked for by name (any field its versions carry): base,
    local and remote; PHI masked without phi:read, plaintext audited as a READ naming
    that one field."""
    a: ConflictFieldArgs = call.args
    with transaction(d.ctx.engine) as conn:   # writable: a plaintext field is audited
        _conflict_shown(conn, call, call.args.conflict_id)
        return conflicts.reveal_field(conn, d.ctx.keyring, call.principal, a.conflict_id, a.field)


@command("sync.conflict.resolve", permission="sync:resolve", args=ResolveArgs, result=ConflictSummary)
def sync_resolve_cmd(d: "Daemon", call: Call) -> dict:
    """Resolve a conflict: choose local, remote or base for every differing field."""
    a: ResolveArgs = call.args
    with transaction(d.ctx.engine) as conn:
        _conflict_shown(conn, call, call.args.conflict_id)
        result = conflicts.resolve_conflict(conn, d.ctx.keyring, call.principal, a.conflict_id, a.choices)
    # Not the row or who resolved it: every subscriber hears this (daemon/tailer.py).
    d.publish("sync.conflict", {"event": "resolved", "conflict_id": str(result["id"]), "table": result["table"]})
    return result
