"""The `job_runs` table: one row per run of a job, whoever started it.

A run moves queued -> running -> succeeded | failed | cancelled; a run found `running`
when the daemon starts was cut off by a crash and becomes `interrupted`. Every state
change is its own short transaction, so the table tells the truth even while the job's
own work is still inside a long transaction, or after that transaction rolled back.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import JobRun, JobStatus
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError
from strongroom.core.ids import new_id
from strongroom.core.jobs.kinds import KINDS, per_configuration
from strongroom.core.validation import MAX_DEPTH, depth

_runs = JobRun.__table__
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.INTERRUPTED, JobStatus.CANCELLED)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Run:
    id: uuid.UUID
    job_kind: str
    trigger: str
    status: str
    params: dict
    requested_by: str | None
    progress_done: int
    progress_total: int | None
    message: str | None
    result: dict | None
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    @property
    def progress_unit(self) -> str | None:
        """What progress_done and progress_total count: the kind's one unit."""
        known = KINDS.get(self.job_kind)
        return known.progress_unit if known else None

    def as_dict(self) -> dict:
        data = dict(self.__dict__)
        data["duration_seconds"] = self.duration_seconds
        data["progress_unit"] = self.progress_unit
        return data


def configuration_of(job_kind: str, params: dict | None) -> str | None:
    """What a run works on, for keeping two runs of one kind apart: the backup
    configuration, or for sync the peer ("*": every peer); None for other kinds. Two
    passes with one pair of sites are refused by the pass's own lease."""
    if job_kind == "sync":
        return f"peer {(params or {}).get('peer') or '*'}"
    if job_kind not in per_configuration():
        return None
    return str((params or {}).get("configuration") or "default")


def _run(row) -> Run:
    data = {k: (v.value if k == "status" else v) for k, v in row.items()}
    for key in ("params", "result"):   # stored before params were checked: still listable
        if data[key] is not None and depth(data[key]) > MAX_DEPTH:
            data[key] = {"unreadable": f"nested deeper than {MAX_DEPTH} levels"}
    return Run(**data)


def queue(engine: Engine, job_kind: str, *, trigger: str, params: dict | None = None,
          requested_by: str | None = None) -> Run:
    """Record a new run; refuses when a run of the same kind is already queued or running
    (for backup-repository jobs: of the same kind on the same backup configuration, so
    two configurations' scheduled backups do not shut each other out)."""
    scope = configuration_of(job_kind, params)
    with transaction(engine) as conn:
        active = conn.execute(select(_runs.c.id, _runs.c.params).where(
            _runs.c.job_kind == job_kind, _runs.c.status.in_(ACTIVE))).all()
        busy = next((r.id for r in active if configuration_of(job_kind, r.params) == scope), None)
        if busy is not None:
            where = ("" if scope is None else f" with {scope}" if job_kind == "sync"
                     else f" on backup configuration {scope!r}")
            raise ConflictError(f"a {job_kind} run is already in progress{where} ({busy})")
        row = {"id": new_id(), "job_kind": job_kind, "trigger": trigger, "status": JobStatus.QUEUED,
               "params": params or {}, "requested_by": requested_by, "progress_done": 0,
               "queued_at": utcnow()}
        conn.execute(insert(_runs), [row])
        return _run(conn.execute(select(_runs).where(_runs.c.id == row["id"])).mappings().one())


def start(engine: Engine, run_id: uuid.UUID) -> None:
    with transaction(engine) as conn:
        conn.execute(update(_runs).where(_runs.c.id == run_id).values(
            status=JobStatus.RUNNING, started_at=utcnow()))


def progress(engine: Engine, run_id: uuid.UUID, done: int, total: int | None, message: str | None) -> None:
    with transaction(engine) as conn:
        conn.execute(update(_runs).where(_runs.c.id == run_id, _runs.c.status == JobStatus.RUNNING)
                     .values(progress_done=done, progress_total=total, message=(message or "")[:500]))


def finish(engine: Engine, run_id: uuid.UUID, status: JobStatus, *, result: dict | None = None,
           error: str | None = None, actor: str = "system", done: int | None = None,
           total: int | None = None) -> Run:
    """Close a run and audit it; the job's kind decides the audit action. `done` and
    `total`, the run's last progress, are kept with it (progress is written to the row
    at most every half second, so the last report was often not yet there)."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final state")
    with transaction(engine) as conn:
        last = {"progress_done": done, "progress_total": total} if done is not None else {}
        conn.execute(update(_runs).where(_runs.c.id == run_id).values(
            status=status, finished_at=utcnow(), result=result, error=error, **last))
        run = _run(conn.execute(select(_runs).where(_runs.c.id == run_id)).mappings().one())
        audit.append(conn, actor=actor, action=_audit_action(run.job_kind),
                     table_name="job_runs", record_id=run_id,
                     outcome="success" if status == JobStatus.SUCCEEDED else status.value,
                     details={"job": run.job_kind, "trigger": run.trigger,
                              "duration_seconds": run.duration_seconds, "error": error})
    return run


def _audit_action(job_kind: str) -> str:
    known = KINDS.get(job_kind)
    return known.audit_action if known else "INTEGRITY"


def mark_interrupted(engine: Engine) -> list[uuid.UUID]:
    """At start-up: runs left queued or running by a crash can never finish; say so."""
    with transaction(engine) as conn:
        ids = list(conn.execute(select(_runs.c.id).where(_runs.c.status.in_(ACTIVE))).scalars())
        if ids:
            conn.execute(update(_runs).where(_runs.c.id.in_(ids)).values(
                status=JobStatus.INTERRUPTED, finished_at=utcnow(),
                error="the daemon stopped while this run was in progress"))
            for run_id in ids:
                audit.append(conn, actor="system", action="INTEGRITY", table_name="job_runs",
                             record_id=run_id, outcome="interrupted", details={"event": "interrupted_at_start"})
    return ids


def get(engine: Engine, run_id: uuid.UUID) -> Run:
    with engine.connect() as conn:
        row = conn.execute(select(_runs).where(_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFoundError(f"job run {run_id} not found")
    return _run(row)


def recent(source: Engine | Connection, *, job_kind: str | None = None, status: str | None = None,
           limit: int = 50) -> list[Run]:
    """The newest runs first. `source` may be a connection already open (a caller that
    checks each run in the same transaction reads them there, not on a second one)."""
    query = select(_runs).order_by(_runs.c.queued_at.desc()).limit(limit)
    if job_kind:
        query = query.where(_runs.c.job_kind == job_kind)
    if status:
        query = query.where(_runs.c.status == JobStatus(status))
    if isinstance(source, Connection):
        return [_run(r) for r in source.execute(query).mappings()]
    with source.connect() as conn:
        return [_run(r) for r in conn.execute(query).mappings()]


def newest_first(conn: Connection, *, job_kind: str | None = None, status: str | None = None,
                 page: int = 500) -> Iterator[Run]:
    """Every run, newest first, read `page` at a time (keyset on queued time and id): for
    a caller that filters runs as it reads and needs a given number of those it keeps,
    however far back they lie."""
    query = select(_runs).order_by(_runs.c.queued_at.desc(), _runs.c.id.desc()).limit(page)
    if job_kind:
        query = query.where(_runs.c.job_kind == job_kind)
    if status:
        query = query.where(_runs.c.status == JobStatus(status))
    after: tuple | None = None
    while True:
        rows = conn.execute(query if after is None else query.where(
            or_(_runs.c.queued_at < after[0], and_(_runs.c.queued_at == after[0], _runs.c.id < after[1])))
        ).mappings().all()
        for row in rows:
            yield _run(row)
        if len(rows) < page:
            return
        after = (rows[-1]["queued_at"], rows[-1]["id"])


def last_success(engine: Engine) -> dict[str, datetime]:
    """Per job kind, when its newest successful run finished (for metrics and health)."""
    with engine.connect() as conn:
        rows = conn.execute(select(_runs.c.job_kind, func.max(_runs.c.finished_at))
                            .where(_runs.c.status == JobStatus.SUCCEEDED).group_by(_runs.c.job_kind)).all()
    return {kind: when for kind, when in rows if when is not None}
