"""Cron schedules as crontab(5) defines them: croniter computes every fire time, and
`CrontabTrigger` hands them to APScheduler 3, which only runs the job.

APScheduler 3's own CronTrigger is not crontab: it numbers weekdays from Monday (so
`*/2` in the weekday field is Mon/Wed/Fri/Sun and `0-6` is out of range) and it ANDs the
day of month with the day of week, where cron fires when either matches. Translating
expressions into its dialect lost steps and ranges, so nothing here parses cron itself.

Two choices keep us on crontab(5) rather than croniter's extensions:
- Only five-field expressions and the nicknames (@daily, ...) are accepted; croniter's
  seconds and year fields, `L`, `W`, `#`, `?` and `H` are refused, since a sysadmin
  reading the config would expect them to mean what crontab means, and they mean nothing.
- `implement_cron_bug`: Vixie cron and its descendants (cronie, Debian's cron) treat a day
  field that *starts with* `*` as unrestricted, so `0 5 */2 * 1` fires on odd days that
  are Mondays, not on odd days or Mondays. croniter calls this the cron bug; it is what
  crontab(5) does on the host, so it is what our schedules do.

All times are UTC: the daemon schedules in UTC and reports next runs with their offset.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger
from croniter import CroniterBadDateError, CroniterError, croniter

UTC = timezone.utc
NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_ONE_MICROSECOND = timedelta(microseconds=1)
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
_WEEKDAYS = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
# (name in messages, what it may hold, names allowed in it)
_FIELDS = (
    ("minute", "0-59", set()),
    ("hour", "0-23", set()),
    ("day of month", "1-31", set()),
    ("month", "1-12 or jan-dec", _MONTHS),
    ("weekday", "0-7 or sun-sat, 0 and 7 are Sunday", _WEEKDAYS),
)
_CRONTAB_FIELD = re.compile(r"[0-9a-z*,/-]+")
# Every croniter built here: datetimes back, and Vixie cron's day-field rule (module doc).
_CRONITER = {"ret_type": datetime, "implement_cron_bug": True}


def _check_field(index: int, written: str) -> None:
    name, allowed, names = _FIELDS[index]
    text = written.lower()
    if not _CRONTAB_FIELD.fullmatch(text) or not set(re.findall(r"[a-z]+", text)) <= names:
        raise ValueError(f"{name} field {written!r} is not crontab syntax (numbers {allowed}, "
                         "*, ranges a-b, steps /n, lists a,b)")
    for low, high in re.findall(r"(\d+)-(\d+)", text):
        if int(low) > int(high):  # croniter would wrap around; cron does not
            raise ValueError(f"{name} field {written!r}: range {low}-{high} runs backwards")
    alone = ["*"] * 5
    alone[index] = text
    try:
        croniter(" ".join(alone), datetime(2000, 1, 1, tzinfo=UTC), **_CRONITER)
    except CroniterError:
        raise ValueError(f"{name} field {written!r} is out of range or malformed ({allowed})") from None


def validate(expression: str) -> str:
    """The expression, normalised (lower case, single spaces), or ValueError with a
    one-line reason naming the field at fault."""
    fields = expression.split()
    text = " ".join(fields).lower()
    if text.startswith("@"):
        if text not in NICKNAMES:
            raise ValueError(f"{text} is not a schedule (nicknames: {', '.join(NICKNAMES)})")
        return text
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day-of-month month weekday) or a nickname "
                         f"such as @daily, got {len(fields)} fields")
    for index, field in enumerate(fields):
        _check_field(index, field)
    try:  # e.g. "0 0 30 2 *": every field valid, no such day
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC), **_CRONITER).get_next()
    except CroniterBadDateError:
        raise ValueError("the schedule never fires (no date matches its day and month)") from None
    return text


def next_fire_time(expression: str, start: datetime) -> datetime | None:
    """The first fire time at or after `start` (an aware datetime), in UTC."""
    try:
        # croniter answers strictly after its start time; one microsecond earlier makes
        # `start` itself count, as APScheduler's triggers expect.
        return croniter(expression, start.astimezone(UTC) - _ONE_MICROSECOND, **_CRONITER).get_next()
    except CroniterBadDateError:
        return None


class CrontabTrigger(BaseTrigger):
    """An APScheduler 3 trigger firing when crontab(5) would, in UTC."""

    def __init__(self, expression: str) -> None:
        self.expression = validate(expression)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        # As APScheduler's CronTrigger: after a fire, the next one strictly after it (even
        # if that is already past: the scheduler's misfire grace and coalescing decide).
        if previous_fire_time is not None:
            start = min(now, previous_fire_time + _ONE_MICROSECOND)
            if start == previous_fire_time:
                start += _ONE_MICROSECOND
        else:
            start = now
        return next_fire_time(self.expression, start)

    def __str__(self) -> str:
        return f"crontab[{self.expression}]"

    def __repr__(self) -> str:
        return f"<CrontabTrigger ({self.expression!r}, timezone='UTC')>"


def cron_trigger(expression: str) -> CrontabTrigger:
    """A UTC trigger for a crontab(5) expression; ValueError (one line) when it is not one."""
    return CrontabTrigger(expression)
