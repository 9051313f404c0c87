"""APScheduler wiring: cron schedules from the config, run through the Runner.

Coalescing and max_instances=1 mean a backlog becomes one run, never a pile; the
Runner's queue refuses a second active run of a kind anyway, whoever asks. After
downtime, `missed_runs` (core/scheduled.py, shared with the compliance score) compares each schedule with the newest recorded run of its
kind: fire times that passed unseen are reported (metric, notification, audit) and,
with `catch_up_missed`, one catch-up run starts at once.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import SQLAlchemyError

from strongroom.core.config import Settings
from strongroom.core.errors import ConflictError, StrongroomError
from strongroom.core.jobs import export as export_job
from strongroom.core.schedule import CrontabTrigger, cron_trigger
from strongroom.core.scheduled import Missed, Scheduled, missed_runs, scheduled  # noqa: F401 (daemon API)

log = logging.getLogger("strongroom.scheduler")
# Saved export configurations with a schedule keep their next time in the database
# (core.jobs.export); the scheduler looks for due ones this often, and once at start, so
# a run missed while the daemon was down happens as soon as it is back (once).
EXPORTS_POLL_SECONDS = 30
_EXPORTS_JOB = "exports:scheduled"


def trigger_for(expression: str) -> CrontabTrigger:
    """The trigger for a schedule from the config: crontab(5) semantics, UTC."""
    return cron_trigger(expression)


class Scheduler:
    def __init__(self, settings: Settings, submit, ctx=None) -> None:
        self._submit = submit
        self._ctx = ctx
        self._scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1,
            "misfire_grace_time": settings.daemon.misfire_grace_seconds})
        self._settings = settings

    def _fire(self, kind: str, params: dict | None = None, job_id: str | None = None) -> None:
        try:
            self._submit(kind, trigger="schedule", params=params or {})
        except ConflictError:
            log.warning("scheduled run skipped: the previous run is still going",
                        extra={"job": job_id or kind})
        except StrongroomError as exc:
            log.error("scheduled run could not start", extra={"job": job_id or kind, "error": str(exc)})

    def run_due_exports(self) -> list[str]:
        """Queue each saved export configuration whose next_export_at has come (as the
        system, `scheduled` set); returns the names queued. A configuration is claimed
        (its next time moved on) before its run is queued, and put back if the runner
        refuses it (another export still running), so it is tried again next poll."""
        queued: list[str] = []
        try:
            due = export_job.due_configurations(self._ctx)
        except SQLAlchemyError as exc:
            log.error("scheduled exports: could not read the configurations", extra={"error": type(exc).__name__})
            return queued
        for name, at in due:
            if not export_job.claim_run(self._ctx, name, at):
                continue
            try:
                self._submit("export", trigger="schedule", params={"configuration": name, "scheduled": True})
                queued.append(name)
            except ConflictError:
                export_job.release_claim(self._ctx, name, at)
                log.warning("scheduled export waits: another export is running", extra={"configuration": name})
            except StrongroomError as exc:
                log.error("scheduled export could not start", extra={"configuration": name, "error": str(exc)})
        return queued

    def apply(self, settings: Settings) -> None:
        """Replace every schedule with the ones in `settings` (start-up and SIGHUP)."""
        self._settings = settings
        if not self._scheduler.running:
            # APScheduler gives a job its next run time only once it has started; until
            # then the job is "pending" and has no next_run_time at all, and a health
            # snapshot taken from another thread would fail on it. Started paused, nothing
            # fires before start().
            self._scheduler.start(paused=True)
        for job in self._scheduler.get_jobs():
            job.remove()
        for entry in scheduled(settings):
            self._scheduler.add_job(self._fire, trigger_for(entry.expression),
                                    args=[entry.kind, entry.params, entry.id], id=entry.id,
                                    name=entry.id, replace_existing=True)
        if self._ctx is not None:
            self._scheduler.add_job(self.run_due_exports, "interval", seconds=EXPORTS_POLL_SECONDS,
                                    id=_EXPORTS_JOB, name=_EXPORTS_JOB, replace_existing=True,
                                    next_run_time=datetime.now(timezone.utc))

    def start(self) -> None:
        self.apply(self._settings)
        self._scheduler.resume()

    def next_runs(self) -> dict[str, str | None]:
        """Each schedule's next fire time, ISO 8601 with its UTC offset; None if paused."""
        return {job.id: job.next_run_time.isoformat() if job.next_run_time else None
                for job in self._scheduler.get_jobs() if job.id != _EXPORTS_JOB}

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
