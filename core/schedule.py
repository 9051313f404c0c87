"""Cron expressions as sysadmins write them, turned into APScheduler 3 triggers.

APScheduler 3's `CronTrigger.from_crontab` numbers weekdays from Monday (0 = Monday),
while crontab(5) numbers them from Sunday (0 and 7 = Sunday): "0 5 * * 0" would run on
Mondays. Numeric weekdays are translated to names here, so every expression in our
config means what it means in crontab.
"""
from __future__ import annotations

import re

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NUMBER = re.compile(r"\d+")


def _weekday_names(field: str) -> str:
    def name(match: re.Match) -> str:
        n = int(match.group())
        if n > 7:
            raise ValueError(f"day of week {n} is out of range (0-7, 0 and 7 are Sunday)")
        return _DAYS[n]
    # Step values (*/2, 1-5/2) keep their number: it counts days, it is not a day.
    head, slash, step = field.partition("/")
    return _NUMBER.sub(name, head) + slash + step


def cron_trigger(expression: str) -> CronTrigger:
    """A UTC trigger for a five-field crontab expression (minute hour day month weekday)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
