"""APScheduler wiring: cron schedules from the config, run through the Runner.

Coalescing and max_instances=1 mean a backlog becomes one run, never a pile; the
Runner's queue refuses a second active run of a kind anyway, whoever asks. After
downtime, `missed_runs` compares each schedule with the newest recorded run of its
kind: fire times that passed unseen are reported (metric, notification, audit) and,
with `catch_up_missed`, one catch-up run starts at once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from strongroom.core.config import Settings
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, StrongroomError
from strongroom.core.jobs import runs
from strongroom.core.schedule import cron_trigger

log = logging.getLogger("strongroom.scheduler")
MAX_COUNTED_MISSES = 1000


def trigger_for(expression: str) -> CronTrigger:
    return cron_trigger(expression)


@dataclass(frozen=True)
class Missed:
    kind: str
    count: int
    first: datetime
    last_run: datetime | None


def missed_runs(settings: Settings, engine, now: datetime | None = None) -> list[Missed]:
    """Schedules that should have fired since their kind last ran, and did not."""
    now = now or utcnow()
    found = []
    for kind, expression in settings.schedules.items():
        recent = runs.recent(engine, job_kind=kind, limit=1)
        if not recent:
            continue  # never ran: a new install has missed nothing yet
        last = recent[0].queued_at
        trig = trigger_for(expression)
        fire = trig.get_next_fire_time(None, last)
        count, first = 0, fire
        while fire is not None and fire <= now and count < MAX_COUNTED_MISSES:
            count += 1
            fire = trig.get_next_fire_time(fire, fire)
        if count:
            found.append(Missed(kind, count, first, last))
    return found


class Scheduler:
    def __init__(self, settings: Settings, submit) -> None:
        self._submit = submit
        self._scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "coalesce": True, "max_instances": 1,
            "misfire_grace_time": settings.daemon.misfire_grace_seconds})
        self._settings = settings

    def _fire(self, kind: str) -> None:
        try:
            self._submit(kind, trigger="schedule")
        except ConflictError:
            log.warning("scheduled run skipped: the previous run is still going", extra={"job": kind})
        except StrongroomError as exc:
            log.error("scheduled run could not start", extra={"job": kind, "error": str(exc)})

    def apply(self, settings: Settings) -> None:
        """Replace every schedule with the ones in `settings` (start-up and SIGHUP)."""
        self._settings = settings
        for job in self._scheduler.get_jobs():
            job.remove()
        for kind, expression in settings.schedules.items():
            self._scheduler.add_job(self._fire, trigger_for(expression), args=[kind], id=kind,
                                    name=kind, replace_existing=True)

    def start(self) -> None:
        self.apply(self._settings)
        self._scheduler.start()

    def next_runs(self) -> dict[str, str | None]:
        return {job.id: job.next_run_time.isoformat() if job.next_run_time else None
                for job in self._scheduler.get_jobs()}

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
