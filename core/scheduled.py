"""Which schedules the configuration defines, and which of them have been missed.

Both the daemon (to schedule and to report misses after downtime) and the compliance
score (a missed scheduled job costs points) read this; it needs only the config and the
`job_runs` table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from strongroom.core.config import Settings
from strongroom.core.db.types import utcnow
from strongroom.core.jobs import runs
from strongroom.core.jobs.kinds import per_configuration
from strongroom.core.schedule import cron_trigger

MAX_COUNTED_MISSES = 1000


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
    for every configuration, since each has its own repository. Sync passes follow each
    peer's own `schedule` ("sync:NAME"), and [schedules] sync syncs every active peer."""
    names = ["default", *sorted(settings.backup.configurations)]
    found = []
    for kind, expression in settings.schedules.items():
        if kind in per_configuration() and kind != "backup":
            found += [Scheduled(_job_id(kind, name), kind, expression, _params(name)) for name in names]
        elif kind == "sync":
            # Every active peer; a peer waiting out its retry backoff is skipped.
            found.append(Scheduled(kind, kind, expression, {"scheduled": True}))
        else:
            found.append(Scheduled(kind, kind, expression, {}))
    for name, cfg in sorted(settings.backup.configurations.items()):
        if cfg.schedule:
            found.append(Scheduled(_job_id("backup", name), "backup", cfg.schedule, _params(name)))
    for name, peer in sorted(settings.sync.peers.items()):
        if peer.schedule:
            found.append(Scheduled(f"sync:{name}", "sync", peer.schedule, {"peer": name, "scheduled": True}))
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
        trig = cron_trigger(entry.expression)
        fire = trig.get_next_fire_time(None, last)
        count, first = 0, fire
        while fire is not None and fire <= now and count < MAX_COUNTED_MISSES:
            count += 1
            fire = trig.get_next_fire_time(fire, fire)
        if count:
            found.append(Missed(entry.kind, count, first, last, entry.params, entry.id))
    return found
