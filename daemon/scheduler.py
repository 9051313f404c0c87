"""APScheduler wiring: cron schedules from the config, run through the Runner.

Coalescing and max_instances=1 mean a backlog becomes one run, never a pile; the
Runner's queue refuses a second active run of a kind anyway, whoever asks. After
downtime, `missed_runs` compares each schedule with the newest recorded run of its
kind: fire times that passed unseen are reported (metric, notification, audit) and,
with `catch_up_missed`, one catch-up run starts at once.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler

from strongroom.core.config import Settings
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, StrongroomError
from strongroom.core.jobs import runs
from strongroom.core.jobs.kinds import per_configuration
from strongroom.core.schedule import CrontabTrigger, cron_trigger

log = logging.getLogger("strongroom.scheduler")
MAX_COUNTED_MISSES = 1000


def trigger_for(expression: str) -> CrontabTrigger:
    """The trigger for a schedule from the config: crontab(5) semantics, UTC."""
    return cron_trigger(expression)


@dataclass(frozen=True)
class Scheduled:
    """One schedule: `id` names it ("backup", or "backup:offsite" for a named backup
    configuration), `params` go to the run."""

    id: str
    kind: str
    expression: str
    params: dict


def scheduled(settings: Settings) -> list[Scheduled]:
    """Every schedule in `settings`. Backups follow each configuration's own schedule
    ([schedules] backup for "default"); verify, prune and restore_drill schedules run
    for every configuration, since each has its own repository."""
    names = ["default", *sorted(settings.backup.configurations)]
    found = []
    for kind, expression in settings.schedules.items():
        if kind in per_configuration() and kind != "backup":
            found += [Scheduled(_job_id(kind, name), kind, expression, _params(name)) for name in names]
        else:
            found.append(Scheduled(kind, kind, expression, {}))
    for name, cfg in sorted(settings.backup.configurations.items()):
        if cfg.schedule:
            found.append(Scheduled(_job_id("backup", name), "backup", cfg.schedule, _params(name)))
    return found


def _job_id(kind: str, configuration: str) -> str:
    return kind if configuration == "default" else f"{kind}:{configuration}"


def _params(configuration: str) -> dict:
    return {} if configuration == "default" else {"configuration": configuration}


@dataclass(frozen=True)
class Missed:
    kind: str
    count: int
    first: datetime
    last_run: datetime | None
    params: dict = field(default_factory=dict)
    id: str = ""


def _last_run(engine, entry: Scheduled) -> datetime | None:
    scope = runs.configuration_of(entry.kind, entry.params)
    for run in runs.recent(engine, job_kind=entry.kind, limit=200):
        if runs.configuration_of(entry.kind, run.params) == scope:
            return run.queued_at
    return None


def missed_runs(settings: Settings, engine, now: datetime | None = None) -> list[Missed]:
    """Schedules that should have fired since their kind (on their configuration) last
    ran, and did not."""
    now = now or utcnow()
    found = []
    for entry in scheduled(settings):
        last = _last_run(engine, entry)
        if last is None:
            continue  # never ran: a new install has missed nothing yet
        trig = trigger_for(entry.expression)
        fire = trig.get_next_fire_time(None, last)
        count, first = 0, fire
        while fire is not None and fire <= now and count < MAX_COUNTED_MISSES:
            count += 1
            fire = trig.get_next_fire_time(fire, fire)
        if count:
            found.append(Missed(entry.kind, count, first, last, entry.params, entry.id))
    return found


class Scheduler:
    def __init__(self, settings: Settings, submit) -> None:
        self._submit = submit
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

    def start(self) -> None:
        self.apply(self._settings)
        self._scheduler.resume()

    def next_runs(self) -> dict[str, str | None]:
        """Each schedule's next fire time, ISO 8601 with its UTC offset; None if paused."""
        return {job.id: job.next_run_time.isoformat() if job.next_run_time else None
                for job in self._scheduler.get_jobs()}

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
