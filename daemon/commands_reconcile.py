"""Control commands for duplicate-client reconciliation (core.reconcile).

`reconcile.run` queues the `reconcile` job (needs job:reconcile:run). Listing and
showing pairs needs table:clients:read: a pair is ids, a score and reason codes;
`reconcile.show` adds both clients side by side through the clients repository, so
they come masked without phi:read and, revealed, are audited as a READ. Merging,
dismissing and undoing need table:clients:write; each is one transaction, audited.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING


from strongroom.core.db.engine import transaction
from strongroom.core.db.types import utcnow
from strongroom.core.reconcile import merge as merging
from strongroom.core.reconcile import repository as pairs
from strongroom.core.repository.clients import get_client

from strongroom.core.protocol.models.jobs import JobRun
from strongroom.core.protocol.models.reconcile import ListArgs, MergeArgs, Pair, PairArgs, PairPage, PairShown, RunArgs
from strongroom.daemon.commands import Call, command
from strongroom.daemon.tenancy import scope_of

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


@command("reconcile.run", permission="job:reconcile:run", args=RunArgs, result=JobRun)
def run_cmd(d: "Daemon", call: Call) -> dict:
    """Start the reconcile job (one practice, or every practice); returns the run, like job.run."""
    practice = scope_of(call.principal, call.args.practice_id)
    params = {"practice_id": str(practice)} if practice else {}
    return d.submit_if_leader("reconcile", trigger="manual", params=params,
                              requested_by=call.principal.actor).as_dict()


@command("reconcile.list", permission="table:clients:read", args=ListArgs, result=PairPage)
def list_cmd(d: "Daemon", call: Call) -> dict:
    """Candidate pairs, best score first (default: the open ones), a page at a time: `next`
    is the `after` that continues the list, None on its last page."""
    a: ListArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        items, following = pairs.list_pairs(conn, call.principal,
                                            practice_id=scope_of(call.principal, a.practice_id),
                                            status=a.status, limit=a.limit, after=a.after)
    return {"items": items, "next": following}


@command("reconcile.show", permission="table:clients:read", args=PairArgs, result=PairShown)
def show_cmd(d: "Daemon", call: Call) -> dict:
    """One pair with both clients side by side (masked without phi:read; audited when revealed)."""
    with transaction(d.ctx.engine) as conn:
        pair = pairs.get_pair(conn, call.principal, call.args.pair_id)
        clients = [get_client(conn, d.ctx.keyring, call.principal, uuid.UUID(pair[side]), include_deleted=True)
                   for side in ("client_a", "client_b")]
    return {**pair, "clients": clients}


@command("reconcile.merge", permission="table:clients:write", args=MergeArgs, result=Pair)
def merge_cmd(d: "Daemon", call: Call) -> dict:
    """Merge an open pair: the survivor (client_a unless named) keeps every session and file."""
    with transaction(d.ctx.engine) as conn:
        return merging.merge(conn, call.principal, call.args.pair_id, utcnow(), survivor=call.args.survivor)


@command("reconcile.dismiss", permission="table:clients:write", args=PairArgs, result=Pair)
def dismiss_cmd(d: "Daemon", call: Call) -> dict:
    """Mark an open pair as two people; later runs leave it dismissed."""
    with transaction(d.ctx.engine) as conn:
        return pairs.dismiss(conn, call.principal, call.args.pair_id, utcnow())


@command("reconcile.undo", permission="table:clients:write", args=PairArgs, result=Pair)
def undo_cmd(d: "Daemon", call: Call) -> dict:
    """Undo a merge: exactly the rows it moved go back; the pair reopens."""
    with transaction(d.ctx.engine) as conn:
        return merging.undo(conn, call.principal, call.args.pair_id, utcnow())
