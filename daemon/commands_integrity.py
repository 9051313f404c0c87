"""`integrity.report.get`: what the integrity job checked last time, with its evidence.

The job (core/jobs/integrity.py) records each check twice: in its run's result (the
`checks` list, kept even when the run fails) and as a row of `integrity_checks` (with
the check's type, table and timing). The report joins the two for the newest finished
run, adds any run still in progress, a short history, and the audit chain's status
(its current head, and how the last verification of it ended). Evidence is counts and
row ids only, never values.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import IntegrityCheck
from strongroom.core.integrity import WARN, is_failure, is_ok
from strongroom.core.jobs import runs

from strongroom.core.protocol.models.integrity import IntegrityReport, ReportArgs
from strongroom.daemon import tenancy
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

KIND = "integrity"
_checks = IntegrityCheck.__table__


def _summary(run: runs.Run) -> dict:
    checks = (run.result or {}).get("checks") or []
    return {"id": run.id, "status": run.status, "trigger": run.trigger, "requested_by": run.requested_by,
            "queued_at": run.queued_at, "started_at": run.started_at, "finished_at": run.finished_at,
            "duration_seconds": run.duration_seconds, "error": run.error, "checks": len(checks),
            "failed": [c.get("name") for c in checks if is_failure(c.get("status"))],
            "warnings": [c.get("name") for c in checks if c.get("status") == WARN]}


def _recorded_checks(conn, run: runs.Run) -> dict[str, dict]:
    """integrity_checks rows written during the run, by check name."""
    if run.started_at is None or run.finished_at is None:
        return {}
    rows = conn.execute(select(_checks).where(_checks.c.started_at >= run.started_at,
                                              _checks.c.started_at <= run.finished_at)
                        .order_by(_checks.c.started_at)).mappings()
    return {r["name"]: dict(r) for r in rows}


def _checks_of(conn, run: runs.Run) -> list[dict]:
    recorded = _recorded_checks(conn, run)
    out = []
    for check in (run.result or {}).get("checks") or []:
        row = recorded.get(check.get("name"), {})
        out.append({"name": check.get("name"), "status": check.get("status"),
                    "expected": check.get("expected"), "actual": check.get("actual"),
                    "evidence": check.get("evidence") or {}, "check_type": row.get("check_type"),
                    "table_name": row.get("table_name"), "started_at": row.get("started_at"),
                    "completed_at": row.get("completed_at")})
    return out


def _chain(conn, d: "Daemon") -> dict:
    head_id, head_hash = audit.head(conn)
    last = conn.execute(select(_checks).where(_checks.c.check_type == "audit_chain")
                        .order_by(_checks.c.started_at.desc()).limit(1)).mappings().first()
    # Two witnesses: the daemon's last verification (health; also set by audit.verify) and
    # the newest integrity check row (the health loop picks it up only on its next tick).
    # Either one saying broken means broken.
    seen = {d.health_snapshot().get("audit_chain_ok"), None if last is None else is_ok(last["status"])}
    ok = False if False in seen else True if True in seen else None
    return {"ok": ok, "head_id": head_id, "head_hash": head_hash,
            "last_check": None if last is None else {
                "status": last["status"], "actual": last["actual"], "completed_at": last["completed_at"],
                "evidence": last["evidence"]}}


@command("integrity.report.get", permission="audit:read", args=ReportArgs, result=IntegrityReport)
def integrity_report_cmd(d: "Daemon", call: Call) -> dict:
    """The newest integrity run's checks with evidence, runs in progress, history, audit chain."""
    recent = runs.recent(d.ctx.engine, job_kind=KIND, limit=call.args.history + 1)
    finished = [r for r in recent if r.status not in ("queued", "running")]
    latest = finished[0] if finished else None
    with transaction(d.ctx.engine, read_only=True) as conn:
        checks = _checks_of(conn, latest) if latest else []
        chain = _chain(conn, d)
        if tenancy.narrowed_to(conn, call.principal) is not None:
            # The checks' evidence names rows of every practice (ids found broken or
            # missing): a caller bound to one practice of several sees verdicts and counts
            # only, as on the Overview.
            checks = [{**c, "evidence": {"withheld": "names rows of every practice"}} for c in checks]
            if chain.get("last_check"):
                chain = {**chain, "last_check": {**chain["last_check"], "evidence": None}}
    return {"latest": None if latest is None else _summary(latest), "checks": checks,
            "running": [job for job in d.runner.active() if job["kind"] == KIND],
            "history": [_summary(r) for r in finished[:call.args.history]], "audit_chain": chain}
