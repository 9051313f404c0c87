"""Export filters checked alone: each relative range's bounds from a frozen "now" in a
practice's time zone, status filters normalised, bad values refused by field name and
never echoed."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from strongroom.core.errors import ValidationError
from strongroom.core.export import spec

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("name, now, first, last", [
    ("last_30_days", datetime(2025, 4, 4, 12, tzinfo=timezone.utc), date(2025, 3, 6), date(2025, 4, 4)),
    ("last_90_days", datetime(2025, 4, 4, 12, tzinfo=timezone.utc), date(2025, 1, 5), date(2025, 4, 4)),
    ("this_month", datetime(2025, 2, 14, 12, tzinfo=timezone.utc), date(2025, 2, 1), date(2025, 2, 28)),
    ("this_month", datetime(2024, 12, 31, 12, tzinfo=timezone.utc), date(2024, 12, 1), date(2024, 12, 31)),
    ("last_quarter", datetime(2025, 5, 20, 12, tzinfo=timezone.utc), date(2025, 1, 1), date(2025, 3, 31)),
    ("last_quarter", datetime(2025, 2, 1, 12, tzinfo=timezone.utc), date(2024, 10, 1), date(2024, 12, 31)),
    ("last_quarter", datetime(2025, 12, 31, 12, tzinfo=timezone.utc), date(2025, 7, 1), date(2025, 9, 30)),
    # 02:00 UTC on 1 April is still 31 March in New York: "this month" is March there.
    ("this_month", datetime(2025, 4, 1, 2, tzinfo=timezone.utc), date(2025, 3, 1), date(2025, 3, 31)),
])
def test_each_range_is_whole_days_in_the_practice_time_zone(name, now, first, last):
    filters = spec.resolve_range(spec.check_filters({"range": name}), now, NEW_YORK)
    since, until = datetime.fromisoformat(filters["since"]), datetime.fromisoformat(filters["until"])
    assert since == datetime(first.year, first.month, first.day, tzinfo=NEW_YORK)
    assert until == datetime(last.year, last.month, last.day, 23, 59, 59, 999999, tzinfo=NEW_YORK)
    assert filters["range"] == name and filters["time_zone"] == "America/New_York"


def test_a_range_bound_carries_its_offset_across_a_dst_change():
    # 30 days to 4 April 2025 start on 6 March, before New York's clocks went forward.
    filters = spec.resolve_range({"range": "last_30_days"}, datetime(2025, 4, 4, 12, tzinfo=timezone.utc), NEW_YORK)
    assert filters["since"] == "2025-03-06T00:00:00-05:00"
    assert filters["until"] == "2025-04-04T23:59:59.999999-04:00"


def test_filters_without_a_range_are_left_as_they_are():
    filters = spec.check_filters({"since": "2025-01-01"})
    assert spec.resolve_range(filters, datetime(2025, 4, 4, tzinfo=timezone.utc), NEW_YORK) is filters


def test_status_filters_are_upper_cased_deduplicated_and_in_declared_order():
    filters = spec.check_filters({"client_status": "vip, active,VIP", "session_status": ["completed"],
                                  "payment_status": "refunded,paid"}, ["clients", "therapy_sessions"])
    assert filters == {"client_status": ["ACTIVE", "VIP"], "session_status": ["COMPLETED"],
                       "payment_status": ["PAID", "REFUNDED"]}
    assert spec.check_filters(filters) == filters     # a saved configuration's filters check again


@pytest.mark.parametrize("filters, tables, words", [
    ({"range": "SECRET-yesterday"}, None, "filter range is not one of last_30_days"),
    ({"range": "this_month", "since": "2025-01-01"}, None, "range cannot be combined with since or until"),
    ({"range": "last_90_days", "until": "2025-01-01"}, None, "range cannot be combined"),
    ({"client_status": "ACTIVE,SECRET-GOLD"}, None, "filter client_status has 1 unknown value(s) "
                                                    "(known: ACTIVE, VIP, INACTIVE)"),
    ({"session_status": "SECRET-LATE"}, None, "filter session_status has 1 unknown value(s)"),
    ({"payment_status": "SECRET-OWED"}, None, "filter payment_status has 1 unknown value(s)"),
    ({"payment_status": [1]}, None, "filter payment_status must be a list"),
    ({"session_status": "COMPLETED"}, ["clients"], "applies to table therapy_sessions, which is not exported"),
    ({"client_status": "VIP"}, ["therapy_sessions"], "applies to table clients, which is not exported"),
])
def test_bad_range_or_status_is_refused_by_field_without_the_value(filters, tables, words):
    with pytest.raises(ValidationError) as err:
        spec.check_filters(filters, tables)
    assert words in str(err.value) and "SECRET" not in str(err.value)


def test_an_unknown_practice_time_zone_is_refused_without_the_value():
    with pytest.raises(ValidationError) as err:
        spec.check_zone("SECRET/Nowhere")
    assert "timezone is not a known IANA time zone" in str(err.value) and "SECRET" not in str(err.value)
