"""Sync commands: peers and their lag, the conflict queue, and resolving one field by field.

Seeing and resolving conflicts needs `sync:resolve` (operators hold it without
`phi:read`: they see PHI masked and resolve by choosing versions, never by sending
values). The peers overview needs `config:read`. A resolution is published on the
`sync.conflict` topic so every console showing the queue refreshes at once.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from strongroom.core.db.engine import transaction
from strongroom.core.sync import conflicts, peers
from strongroom.daemon.commands import Args, Call, command

if TYPE_CHECKING:
    from strongroom.daemon.main import Daemon


@command("sync.peers", permission="config:read")
def sync_peers_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Sync peers with their lag: time since the last sync, changes not yet sent, open conflicts."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        return peers.list_peers(conn)


class ConflictsArgs(Args):
    status: Literal["open", "resolved", "all"] = "open"
    limit: int = Field(default=50, ge=1, le=conflicts.MAX_PAGE)
    after_id: uuid.UUID | None = None


@command("sync.conflicts", permission="sync:resolve", args=ConflictsArgs)
def sync_conflicts_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Sync conflicts, oldest first, with the fields that differ (never their values); page with after_id."""
    a: ConflictsArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        return conflicts.list_conflicts(conn, d.ctx.keyring, call.principal,
                                        status=None if a.status == "all" else a.status,
                                        limit=a.limit, after_id=a.after_id)


class ConflictArgs(Args):
    conflict_id: uuid.UUID


@command("sync.conflict", permission="sync:resolve", args=ConflictArgs)
def sync_conflict_cmd(d: "Daemon", call: Call) -> dict:
    """One conflict with base, local and remote per field; PHI masked without phi:read."""
    with transaction(d.ctx.engine) as conn:   # writable: a plaintext view is audited
        return conflicts.get_conflict(conn, d.ctx.keyring, call.principal, call.args.conflict_id)


class ResolveArgs(Args):
    conflict_id: uuid.UUID
    # field name -> "local" | "remote" | "base"; checked (and explained) by the core
    choices: dict[str, str] = Field(min_length=1, max_length=64)


@command("sync.resolve", permission="sync:resolve", args=ResolveArgs)
def sync_resolve_cmd(d: "Daemon", call: Call) -> dict:
    """Resolve a conflict: choose local, remote or base for every differing field."""
    a: ResolveArgs = call.args
    with transaction(d.ctx.engine) as conn:
        result = conflicts.resolve_conflict(conn, d.ctx.keyring, call.principal, a.conflict_id, a.choices)
    d.publish("sync.conflict", {"event": "resolved", "conflict_id": str(result["id"]),
                                "table": result["table"], "row_id": str(result["row_id"]),
                                "by": call.principal.actor})
    return result
