"""Cron expressions mean what they mean in crontab(5): fire times come from croniter, and
the APScheduler trigger built on it agrees with croniter over any expression."""
from datetime import datetime, timedelta, timezone

import pytest
from croniter import croniter
from hypothesis import given, settings, strategies as st

from strongroom.core.schedule import cron_trigger

MONDAY = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
UTC = timezone.utc


def _days(expression: str, start: datetime, n: int = 8) -> list[str]:
    """The weekdays and dates of the next `n` fire times, e.g. ['Tue 24', ...]."""
    trigger, fires = cron_trigger(expression), []
    fire = trigger.get_next_fire_time(None, start)
    while len(fires) < n:
        fires.append(fire.strftime("%a %d"))
        fire = trigger.get_next_fire_time(fire, fire)
    return fires


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


def test_weekday_ranges_count_from_sunday():
    fire = cron_trigger("0 5 * * 1-5").get_next_fire_time(None, datetime(2026, 11, 28, tzinfo=UTC))
    assert fire.weekday() == 0  # Saturday 28th -> next weekday is Monday the 30th


def test_a_weekday_step_over_the_whole_week_is_sunday_tuesday_thursday_saturday():
    assert _days("0 5 * * */2", MONDAY, 4) == ["Tue 24", "Thu 26", "Sat 28", "Sun 29"]


def test_a_stepped_weekday_range_keeps_its_step():
    assert _days("0 5 * * 1-5/2", MONDAY, 4) == ["Wed 25", "Fri 27", "Mon 30", "Wed 02"]


def test_the_whole_week_as_a_range_from_sunday_is_accepted():
    assert len(set(_days("0 5 * * 0-6", MONDAY, 7))) == 7


def test_a_day_of_month_and_a_weekday_fire_on_either():
    # crontab(5): when both day fields are restricted, either one matching is enough.
    assert _days("0 5 1 * 1", MONDAY, 3) == ["Mon 30", "Tue 01", "Mon 07"]


def test_a_day_field_starting_with_a_star_counts_as_unrestricted():
    # As every Vixie-derived cron does: "*/2" in the day of month does not make the two
    # day fields an "either": the job fires on odd days that are Mondays.
    assert _days("0 5 */2 * 1", MONDAY, 3) == ["Mon 07", "Mon 21", "Mon 11"]


@pytest.mark.parametrize("nickname, first", [
    ("@daily", datetime(2026, 11, 24, 0, 0, tzinfo=UTC)),
    ("@hourly", MONDAY),                     # now is on the hour: it counts
    ("@weekly", datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
    ("@monthly", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
])
def test_crontab_nicknames_are_understood(nickname, first):
    assert cron_trigger(nickname).get_next_fire_time(None, MONDAY) == first


def test_fire_times_are_in_utc_and_include_the_current_minute():
    at_two = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    fire = cron_trigger("0 2 * * *").get_next_fire_time(None, at_two)
    assert fire == at_two and fire.utcoffset() == timedelta(0)
    assert cron_trigger("0 2 * * *").get_next_fire_time(at_two, at_two) == at_two + timedelta(days=1)


@pytest.mark.parametrize("expression, says", [
    ("0 5 * *", "5 fields"),
    ("0 5 * * 9", "weekday"),
    ("61 * * * *", "minute"),
    ("0 24 * * *", "hour"),
    ("0 0 0 * *", "day of month"),
    ("0 0 * 13 *", "month"),
    ("*/0 * * * *", "minute"),
    ("30-10 * * * *", "minute"),        # backwards
    ("0 0 * * 5-1", "weekday"),
    ("0 0 L * *", "day of month"),      # croniter extensions crontab(5) does not have
    ("0 0 * * 5#2", "weekday"),
    ("H * * * *", "minute"),
    ("0 0 1W * *", "day of month"),
    ("0 0 * * 1 2026", "5 fields"),
    ("@reboot", "@reboot"),
    ("0 0 30 2 *", "never"),
])
def test_bad_expressions_are_refused_with_the_field_named(expression, says):
    with pytest.raises(ValueError) as err:
        cron_trigger(expression)
    assert says in str(err.value) and "\n" not in str(err.value)


# -- property: the trigger agrees with croniter ----------------------------------------------

def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    value = st.one_of(
        st.just("*"),
        number.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(st.integers(1, high - low + 1)).map(lambda s: f"*/{s[0]}"),
        st.tuples(number, number, st.integers(1, high - low + 1))
          .map(lambda abs_: f"{min(abs_[:2])}-{max(abs_[:2])}/{abs_[2]}"),
    )
    return st.lists(value, min_size=1, max_size=3).map(",".join)


EXPRESSIONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12),
                        _field(0, 7)).map(" ".join)
STARTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS, STARTS)
def test_trigger_fires_when_croniter_says_crontab_fires(expression, start):
    trigger = cron_trigger(expression)
    reference = croniter(expression, start - timedelta(microseconds=1), implement_cron_bug=True)
    fire = trigger.get_next_fire_time(None, start)
    for _ in range(5):
        assert fire == reference.get_next(datetime)
        fire = trigger.get_next_fire_time(fire, fire)
