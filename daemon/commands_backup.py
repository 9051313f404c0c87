"""Control commands for backup configurations, snapshots and four-eyes retention.

Reading (configurations, show, requests) needs `audit:read`; forgetting and approving
need the prune job's permission, `job:prune:run`. Forget and approve check at once what
they can (so a refusal is an immediate error, not a failed run later) and then start a
prune run, which checks everything again under the repository lock.
"""
from __future__ import annotations

from typing import TYPE_CHECKING


from strongroom.core.backup import configurations
from strongroom.core.db.types import utcnow
from strongroom.core.backup import prune_requests
from strongroom.core.jobs import prune
from strongroom.core.backup.snapshots import describe_snapshot, open_configured

from strongroom.core.protocol.models.jobs import JobRun
from strongroom.core.protocol.models.backup import ApproveArgs, BackupConfiguration, ForgetArgs, ForgetResult, PruneRequest, RequestsArgs, SnapshotArgs, SnapshotInfo
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

PRUNE = "job:prune:run"


@command("backup.configuration.list", permission="audit:read", result=list[BackupConfiguration])
def configurations_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Backup configurations as recorded in the database (active first)."""
    with d.ctx.engine.connect() as conn:
        return configurations.listing(conn)


@command("backup.show", permission="audit:read", args=SnapshotArgs, result=SnapshotInfo)
def show_cmd(d: "Daemon", call: Call) -> dict:
    """One snapshot's manifest summary: tables, rows, bytes, chain parent, proof."""
    a: SnapshotArgs = call.args
    _, repo = open_configured(d.ctx, {"configuration": a.configuration})
    return describe_snapshot(d.ctx, repo, a.snapshot_id)


@command("backup.forget", permission=PRUNE, args=ForgetArgs, result=ForgetResult)
def forget_cmd(d: "Daemon", call: Call) -> dict:
    """Forget one snapshot (refused for the newest verified one or a needed link);
    with dry_run only say what would happen. In four-eyes mode this files a request."""
    a: ForgetArgs = call.args
    cfg, repo = open_configured(d.ctx, {"configuration": a.configuration})
    params = {"configuration": cfg.name, "snapshot_id": str(a.snapshot_id)}
    plan = prune.plan(d.ctx, repo, cfg, a.snapshot_id, utcnow())  # raises when it must stay
    if a.dry_run:
        return {"plan": plan.as_dict(), "requires_approval": cfg.require_approval,
                "snapshot": describe_snapshot(d.ctx, repo, a.snapshot_id)}
    if cfg.require_approval:
        prune_requests.check_filer(call.principal.actor, "forget")     # refused now, not as a failed run
    run = d.submit_if_leader("prune", trigger="manual", params=params, requested_by=call.principal.actor)
    return {**run.as_dict(), "requires_approval": cfg.require_approval}


@command("backup.request.list", permission="audit:read", args=RequestsArgs, result=list[PruneRequest])
def requests_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Four-eyes prune and forget requests, newest first (pending only by default)."""
    return prune_requests.pending_requests(d.ctx, include_closed=call.args.include_closed, limit=call.args.limit)


@command("backup.request.approve", permission=PRUNE, args=ApproveArgs, result=JobRun)
def approve_cmd(d: "Daemon", call: Call) -> dict:
    """Approve a pending request filed by someone else; starts the prune that carries
    it out (refused there if the plan has grown)."""
    a: ApproveArgs = call.args
    prune_requests.check_approval(d.ctx, a.request_id, call.principal.actor, utcnow())
    run = d.submit_if_leader("prune", trigger="manual", params={"request_id": str(a.request_id)},
                             requested_by=call.principal.actor)
    return run.as_dict()
