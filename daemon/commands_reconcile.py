"""Control commands for duplicate-client reconciliation (core.reconcile).

`reconcile.run` queues the `reconcile` job (needs job:reconcile:run). Listing and
showing pairs needs table:clients:read: a pair is ids, a score and reason codes;
`reconcile.show` adds both clients side by side through the clients repository, so
they come masked without phi:read and, revealed, are audited as a READ. Merging,
dismissing and undoing need table:clients:write; each is one transaction, audited.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from strongroom.core.db.engine import transaction
from strongroom.core.db.types import utcnow
from strongroom.core.reconcile import merge as merging
from strongroom.core.reconcile import repository as pairs
from strongroom.core.repository.clients import get_client
from strongroom.daemon.commands import Args, Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


class RunArgs(Args):
    practice_id: uuid.UUID | None = None


@command("reconcile.run", permission="job:reconcile:run", args=RunArgs)
def run_cmd(d: "Daemon", call: Call) -> dict:
    """Start the reconcile job (one practice, or every practice); returns the run, like job.run."""
    params = {"practice_id": str(call.args.practice_id)} if call.args.practice_id else {}
    return d.submit_if_leader("reconcile", trigger="manual", params=params,
                              requested_by=call.principal.actor).as_dict()


class ListArgs(Args):
    practice_id: uuid.UUID | None = None
    status: Literal["open", "merged", "dismissed"] | None = "open"
    limit: int = Field(default=100, ge=1, le=10_000)


@command("reconcile.list", permission="table:clients:read", args=ListArgs)
def list_cmd(d: "Daemon", call: Call) -> dict:
    """Candidate pairs, best score first (default: the open ones)."""
    a: ListArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        items = pairs.list_pairs(conn, call.principal, practice_id=a.practice_id, status=a.status, limit=a.limit)
    return {"items": items}


class PairArgs(Args):
    pair_id: uuid.UUID


@command("reconcile.show", permission="table:clients:read", args=PairArgs)
def show_cmd(d: "Daemon", call: Call) -> dict:
    """One pair with both clients side by side (masked without phi:read; audited when revealed)."""
    with transaction(d.ctx.engine) as conn:
        pair = pairs.get_pair(conn, call.principal, call.args.pair_id)
        clients = [get_client(conn, d.ctx.keyring, call.principal, uuid.UUID(pair[side]), include_deleted=True)
                   for side in ("client_a", "client_b")]
    return {**pair, "clients": clients}


class MergeArgs(PairArgs):
    survivor: uuid.UUID | None = None


@command("reconcile.merge", permission="table:clients:write", args=MergeArgs)
def merge_cmd(d: "Daemon", call: Call) -> dict:
    """Merge an open pair: the survivor (client_a unless named) keeps every session and file."""
    with transaction(d.ctx.engine) as conn:
        return merging.merge(conn, call.principal, call.args.pair_id, utcnow(), survivor=call.args.survivor)


@command("reconcile.dismiss", permission="table:clients:write", args=PairArgs)
def dismiss_cmd(d: "Daemon", call: Call) -> dict:
    """Mark an open pair as two people; later runs leave it dismissed."""
    with transaction(d.ctx.engine) as conn:
        return pairs.dismiss(conn, call.principal, call.args.pair_id, utcnow())


@command("reconcile.undo", permission="table:clients:write", args=PairArgs)
def undo_cmd(d: "Daemon", call: Call) -> dict:
    """Undo a merge: exactly the rows it moved go back; the pair reopens."""
    with transaction(d.ctx.engine) as conn:
        return merging.undo(conn, call.principal, call.args.pair_id, utcnow())
