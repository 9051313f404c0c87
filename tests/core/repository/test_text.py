"""Dates and times printed in C (core/repository/_text.c) print as Python prints them:
the text of a bulk read does not depend on whether the extension was built."""
from __future__ import annotations

import os
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from strongroom.core.repository import records


def test_the_c_printer_is_built_in_ci():
    """CI builds core/repository/_text.c (`make install`); elsewhere its absence is
    allowed (records.py prints the same text through Python)."""
    if os.environ.get("CI"):
        assert records._text is not None, "core/repository/_text.c was not built"


_text = records._text
pytestmark = pytest.mark.skipif(_text is None and not os.environ.get("CI"),
                                reason="core/repository/_text.c was not built here")


class OwnDate(date):
    def isoformat(self) -> str:
        return "own"


times = st.one_of(st.none(), st.datetimes(), st.datetimes(timezones=st.just(timezone(timedelta(hours=5, minutes=45)))))


@given(st.lists(times, max_size=20), st.sampled_from(["T", " "]), st.sampled_from(["+00:00", ""]))
def test_times_print_as_isoformat_with_the_suffix(values, sep, suffix):
    assert _text.iso_times(values, sep, suffix) == [None if v is None else v.isoformat(sep) + suffix for v in values]


@given(st.lists(st.one_of(st.none(), st.dates(), st.datetimes()), max_size=20))
def test_dates_print_as_isoformat(values):
    assert _text.iso_dates(values) == [None if v is None else v.isoformat() for v in values]


def test_the_edges_of_the_calendar_and_of_a_second():
    values = [datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), datetime(987, 1, 2, 3, 4, 5, 120000),
              datetime(2026, 3, 29, 1, 30), datetime(2026, 3, 29, 1, 30, 0, 1)]
    assert _text.iso_times(values, "T", "+00:00") == [
        "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59.999999+00:00", "0987-01-02T03:04:05.120000+00:00",
        "2026-03-29T01:30:00+00:00", "2026-03-29T01:30:00.000001+00:00"]
    assert _text.iso_dates([date(5, 6, 7), OwnDate(2026, 1, 1), None]) == ["0005-06-07", "own", None]


def test_a_value_that_is_not_a_time_fails_as_python_fails():
    with pytest.raises(AttributeError):
        _text.iso_times([datetime(2026, 1, 1), 7], "T", "")
    with pytest.raises(ValueError, match="one ASCII character"):
        _text.iso_times([], "TT", "")
