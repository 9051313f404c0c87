"""Control commands for records retention: policies, the plan, legal holds, erasure.

Reading (policies, plan, holds, erasure requests) needs `retention:read`; changing a
policy or a hold needs `retention:manage`; filing an erasure request `erasure:request`,
and approving or rejecting one `erasure:approve`, which the four-eyes rule in
core.retention.erasure further limits to someone other than the requester. Running the
retention job goes through `job.run` (kind `retention`, permission
`job:retention:run`) like every other job. Answers carry ids, dates and counts, never
PHI; the free-text reasons of holds and requests are shown to those who may read them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING


from strongroom.core.db.engine import transaction
from strongroom.core.db.types import utcnow
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import retention as retention_job
from strongroom.core.retention import certificate, erasure, holds, policies

from strongroom.core.protocol.models.retention import CertificateArgs, ErasureCertificate, ErasureExecuted, ErasureListArgs, ErasureListed, ErasureRequest, ErasureRequestArgs, Hold, HoldIdArgs, HoldPlaceArgs, HoldsListArgs, PlanArgs, PolicySetArgs, RequestIdArgs, RetentionPlan, RetentionPolicy
from strongroom.daemon.commands import Call, command
from strongroom.daemon.tenancy import narrowed_to, scope_of, whole_database

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

READ, MANAGE = "retention:read", "retention:manage"
REQUEST, APPROVE = "erasure:request", "erasure:approve"


@command("retention.policy.list", permission=READ, result=list[RetentionPolicy])
def policies_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Records-retention policies, one per clinical table, active or not."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        return [p.as_dict() for p in policies.list_policies(conn)]


@command("retention.policy.set", permission=MANAGE, args=PolicySetArgs, result=RetentionPolicy)
def policy_set_cmd(d: "Daemon", call: Call) -> dict:
    """Create or replace one table's policy (archive after N days, delete after M >= N).
    A policy covers every practice: refused to a caller bound to one practice of several."""
    a: PolicySetArgs = call.args
    with transaction(d.ctx.engine) as conn:
        whole_database(conn, call.principal, "a retention policy")
        policy = policies.set_policy(conn, table_name=a.table_name, archive_after_days=a.archive_after_days,
                                     delete_after_days=a.delete_after_days, active=a.active,
                                     actor=call.principal.actor, session_id=call.principal.session_id)
    return policy.as_dict()


@command("retention.plan.get", permission=READ, args=PlanArgs, result=RetentionPlan)
def plan_cmd(d: "Daemon", call: Call) -> dict:
    """What retention archives and deletes now and within horizon_days, and what holds
    block; a caller bound to one practice of several sees that practice's only."""
    a: PlanArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        return retention_job.plan(conn, now=utcnow(), horizon_days=a.horizon_days, limit=a.limit,
                                  practice_id=narrowed_to(conn, call.principal))


@command("hold.list", permission=READ, args=HoldsListArgs, result=list[Hold])
def holds_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Legal holds, newest first (in force only, unless include_released)."""
    a: HoldsListArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        return [h.as_dict() for h in holds.list_holds(conn, include_released=a.include_released, limit=a.limit,
                                                      practice_id=scope_of(call.principal))]


@command("hold.place", permission=MANAGE, args=HoldPlaceArgs, result=Hold)
def holds_place_cmd(d: "Daemon", call: Call) -> dict:
    """Place a legal hold on one client, or without client_id on a whole practice."""
    a: HoldPlaceArgs = call.args
    with transaction(d.ctx.engine) as conn:
        hold = holds.place_hold(conn, actor=call.principal.actor, reason=a.reason, client_id=a.client_id,
                                practice_id=a.practice_id if a.client_id else scope_of(call.principal, a.practice_id),
                                session_id=call.principal.session_id)
    return hold.as_dict()


@command("hold.release", permission=MANAGE, args=HoldIdArgs, result=Hold)
def holds_release_cmd(d: "Daemon", call: Call) -> dict:
    """Release a legal hold in force."""
    with transaction(d.ctx.engine) as conn:
        hold = holds.release_hold(conn, call.args.hold_id, actor=call.principal.actor,
                                  session_id=call.principal.session_id)
    return hold.as_dict()


@command("erasure.list", permission=READ, args=ErasureListArgs, result=list[ErasureListed])
def erasure_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Erasure requests, newest first (pending only unless include_closed), with blocking holds."""
    a: ErasureListArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        return erasure.list_requests(conn, include_closed=a.include_closed, limit=a.limit,
                                     practice_id=scope_of(call.principal))


@command("erasure.request", permission=REQUEST, args=ErasureRequestArgs, result=ErasureRequest)
def erasure_request_cmd(d: "Daemon", call: Call) -> dict:
    """File a request to erase one client; a different person must approve it."""
    a: ErasureRequestArgs = call.args
    with transaction(d.ctx.engine) as conn:
        return erasure.request_erasure(conn, client_id=a.client_id, actor=call.principal.actor, reason=a.reason,
                                       session_id=call.principal.session_id)


@command("erasure.approve", permission=APPROVE, args=RequestIdArgs, result=ErasureExecuted)
def erasure_approve_cmd(d: "Daemon", call: Call) -> dict:
    """Approve an erasure request and carry it out now: the client's keys are destroyed,
    then the objects of the client's files are deleted from the live files store, every
    backup repository's key bag is rewritten without the keys and the signed erasure
    certificate is issued (`certificate` in the reply, with the file objects deleted)."""
    row = erasure.approve(d.ctx.engine, d.ctx.keyring, call.args.request_id, approver=call.principal.actor,
                          files=open_files_target(d.ctx.settings), session_id=call.principal.session_id)
    return {**row, "certificate": certificate.complete(d.ctx, call.args.request_id, actor=call.principal.actor)}


@command("erasure.certificate.get", permission=READ, args=CertificateArgs, result=ErasureCertificate)
def erasure_certificate_cmd(d: "Daemon", call: Call) -> dict:
    """The newest signed certificate of an executed erasure. `reissue` (needs
    erasure:approve) first retries every repository not yet reached, then issues a new one."""
    a: CertificateArgs = call.args
    if a.reissue:
        d.require(call.principal, APPROVE)
        return certificate.complete(d.ctx, a.request_id, actor=call.principal.actor)
    return certificate.latest(d.ctx, a.request_id)


@command("erasure.reject", permission=APPROVE, args=RequestIdArgs, result=ErasureRequest)
def erasure_reject_cmd(d: "Daemon", call: Call) -> dict:
    """Reject a pending erasure request (not one's own)."""
    return erasure.reject(d.ctx.engine, call.args.request_id, actor=call.principal.actor,
                          session_id=call.principal.session_id)
