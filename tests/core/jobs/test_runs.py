"""job_runs: one row per run, never two active runs of a kind, crashes become interrupted."""
import uuid

import pytest

from strongroom.core import audit
from strongroom.core.db.models import JobStatus
from strongroom.core.errors import ConflictError, NotFoundError
from strongroom.core.jobs import runs


def test_run_lifecycle_is_recorded_and_audited(engine):
    run = runs.queue(engine, "integrity", trigger="manual", params={"x": 1}, requested_by="user:ops")
    assert run.status == "queued"
    runs.start(engine, run.id)
    runs.progress(engine, run.id, 5, 10, "halfway")
    assert (runs.get(engine, run.id).progress_done, runs.get(engine, run.id).message) == (5, "halfway")
    done = runs.finish(engine, run.id, JobStatus.SUCCEEDED, result={"checked": 10})
    assert done.status == "succeeded" and done.result == {"checked": 10} and done.duration_seconds >= 0
    with engine.connect() as conn:
        entry = audit.tail(conn, limit=1)[0]
    assert (entry.action, entry.record_id, entry.outcome) == ("INTEGRITY", str(run.id), "success")
    assert runs.last_success(engine)["integrity"] == done.finished_at


def test_second_active_run_of_the_same_kind_is_refused(engine):
    runs.queue(engine, "backup", trigger="schedule")
    with pytest.raises(ConflictError, match="already in progress"):
        runs.queue(engine, "backup", trigger="manual")
    assert runs.queue(engine, "integrity", trigger="manual").status == "queued"


def test_runs_left_running_by_a_crash_become_interrupted(engine):
    crashed = runs.queue(engine, "backup", trigger="schedule")
    runs.start(engine, crashed.id)
    assert runs.mark_interrupted(engine) == [crashed.id]
    after = runs.get(engine, crashed.id)
    assert after.status == "interrupted" and "stopped" in after.error
    assert runs.queue(engine, "backup", trigger="manual").status == "queued"


def test_finish_refuses_a_non_final_state(engine):
    run = runs.queue(engine, "backup", trigger="manual")
    with pytest.raises(ValueError):
        runs.finish(engine, run.id, JobStatus.RUNNING)


def test_unknown_run_is_not_found(engine):
    with pytest.raises(NotFoundError):
        runs.get(engine, uuid.uuid4())


def test_recent_filters_by_kind_and_status(engine):
    a = runs.queue(engine, "backup", trigger="manual")
    runs.finish(engine, a.id, JobStatus.FAILED, error="disk full")
    runs.queue(engine, "integrity", trigger="manual")
    assert [r.id for r in runs.recent(engine, job_kind="backup", status="failed")] == [a.id]
    assert len(runs.recent(engine)) == 2


def test_runs_on_different_backup_configurations_do_not_shut_each_other_out(engine):
    runs.queue(engine, "backup", trigger="schedule")
    offsite = runs.queue(engine, "backup", trigger="schedule", params={"configuration": "offsite"})
    assert offsite.status == "queued"
    with pytest.raises(ConflictError, match="backup configuration 'offsite'"):
        runs.queue(engine, "backup", trigger="manual", params={"configuration": "offsite"})
    with pytest.raises(ConflictError, match="backup configuration 'default'"):
        runs.queue(engine, "backup", trigger="manual", params={"configuration": "default"})


def test_newest_first_reads_every_run_in_pages_ties_included(engine):
    """Keyset paging on (queued time, id): runs queued in the same instant are neither
    skipped nor repeated at a page boundary."""
    from datetime import datetime, timezone
    from sqlalchemy import update
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import JobRun
    made = []
    for _ in range(5):      # one at a time: a second active run of a kind is refused
        made.append(runs.queue(engine, "reconcile", trigger="manual").id)
        runs.finish(engine, made[-1], JobStatus.SUCCEEDED)
    table = JobRun.__table__
    same = datetime(2031, 1, 1, tzinfo=timezone.utc)
    with transaction(engine) as conn:
        conn.execute(update(table).where(table.c.id == made[0]).values(queued_at=datetime(2030, 1, 1, tzinfo=timezone.utc)))
        conn.execute(update(table).where(table.c.id == made[4]).values(queued_at=datetime(2030, 6, 1, tzinfo=timezone.utc)))
        conn.execute(update(table).where(table.c.id.in_(made[1:4])).values(queued_at=same))
        seen = [r.id for r in runs.newest_first(conn, job_kind="reconcile", page=2)]
    # the three of one instant by id, newest first, then the two older ones
    assert seen == sorted(made[1:4], reverse=True) + [made[4], made[0]]
