"""Cron expressions mean what they mean in crontab(5), whatever APScheduler numbers."""
from datetime import datetime, timezone

import pytest

from strongroom.core.schedule import cron_trigger

MONDAY = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression, weekday", [
    ("0 5 * * 0", 6),   # Sunday
    ("0 5 * * 7", 6),   # Sunday too
    ("0 5 * * 1", 0),   # Monday
    ("0 5 * * 6", 5),   # Saturday
    ("0 5 * * sun", 6),
])
def test_weekday_numbers_follow_crontab(expression, weekday):
    fire = cron_trigger(expression).get_next_fire_time(None, MONDAY)
    assert fire.weekday() == weekday and fire.hour == 5


def test_weekday_ranges_and_steps_are_translated():
    fire = cron_trigger("0 5 * * 1-5").get_next_fire_time(None, datetime(2026, 11, 28, tzinfo=timezone.utc))
    assert fire.weekday() == 0  # Saturday 28th -> next weekday is Monday the 30th


@pytest.mark.parametrize("expression", ["0 5 * *", "0 5 * * 9", "61 * * * *"])
def test_bad_expressions_are_refused(expression):
    with pytest.raises(ValueError):
        cron_trigger(expression)
