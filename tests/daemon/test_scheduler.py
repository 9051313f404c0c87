"""Which schedules the daemon keeps: one per job kind, and per backup configuration for
the jobs that work on a backup repository; missed runs are counted per configuration; next
runs can be read at any moment, with their timezone."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from strongroom.core.config import BackupConfigurationSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import JobRun
from strongroom.core.db.types import utcnow
from strongroom.core.jobs import runs
from strongroom.daemon.scheduler import Scheduler, missed_runs, scheduled


def _with(settings, schedules: dict, **configurations):
    backup = settings.backup.model_copy(update={"configurations": {
        name: BackupConfigurationSettings(**options) for name, options in configurations.items()}})
    return settings.model_copy(update={"schedules": schedules, "backup": backup})


def test_each_configuration_backs_up_on_its_own_schedule_and_is_pruned_on_the_shared_one(settings):
    s = _with(settings, {"backup": "0 2 * * *", "prune": "0 5 * * *", "integrity": "30 3 * * *"},
              offsite={"target": "/srv/offsite", "schedule": "0 4 * * 0"}, archive={"target": "/srv/archive"})
    got = {(e.id, e.kind, e.expression, tuple(e.params.items())) for e in scheduled(s)}
    assert got == {
        ("backup", "backup", "0 2 * * *", ()),
        ("backup:offsite", "backup", "0 4 * * 0", (("configuration", "offsite"),)),
        ("prune", "prune", "0 5 * * *", ()),
        ("prune:archive", "prune", "0 5 * * *", (("configuration", "archive"),)),
        ("prune:offsite", "prune", "0 5 * * *", (("configuration", "offsite"),)),
        ("integrity", "integrity", "30 3 * * *", ()),
    }


def test_missed_runs_are_counted_against_the_configurations_own_last_run(settings, engine):
    s = _with(settings, {"backup": "0 * * * *"}, offsite={"target": "/srv/offsite", "schedule": "0 * * * *"})
    now = utcnow()
    runs.queue(engine, "backup", trigger="schedule")                        # default: ran now
    old = runs.queue(engine, "backup", trigger="schedule", params={"configuration": "offsite"})
    with transaction(engine) as conn:                                       # offsite: 10 h ago
        conn.execute(update(JobRun.__table__).where(JobRun.__table__.c.id == old.id)
                     .values(queued_at=now - timedelta(hours=10)))
    by_id = {m.id: m for m in missed_runs(s, engine, now=now + timedelta(hours=5))}
    assert set(by_id) == {"backup", "backup:offsite"}
    assert by_id["backup"].params == {} and by_id["backup:offsite"].params == {"configuration": "offsite"}
    assert 4 <= by_id["backup"].count <= 5 and 14 <= by_id["backup:offsite"].count <= 15


def _never_submit(kind, **kw):
    raise AssertionError(f"nothing should run in this test ({kind})")


def test_schedules_applied_before_the_scheduler_starts_already_have_their_next_run(settings):
    # start() applies the schedules, then starts: a health snapshot (another thread) can
    # land in between, and used to fail on jobs APScheduler had not yet given a time.
    s = _with(settings, {"backup": "0 2 * * *", "integrity": "30 3 * * *"})
    scheduler = Scheduler(s, _never_submit)
    try:
        scheduler.apply(s)
        before_start = scheduler.next_runs()
        scheduler.start()
        after_start = scheduler.next_runs()
    finally:
        scheduler.shutdown()
    assert set(before_start) == {"backup", "integrity"}
    assert before_start == after_start


def test_next_runs_are_iso_times_with_their_utc_offset(settings):
    s = _with(settings, {"backup": "0 2 * * *"})
    scheduler = Scheduler(s, _never_submit)
    try:
        scheduler.start()
        when = scheduler.next_runs()["backup"]
    finally:
        scheduler.shutdown()
    assert when.endswith("T02:00:00+00:00")
