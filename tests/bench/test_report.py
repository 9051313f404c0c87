"""bench/report.py's rows: a ratio is shown to three decimals rounded up, so a run a
hair over its target never reads as exactly on it beside "miss"."""
from __future__ import annotations

import pytest

from bench.report import ratio_shown, row


@pytest.mark.parametrize("ratio, shown", [(2.0004, 2.001), (2.0, 2.0), (1.99951, 2.0), (1.1, 1.1),
                                          (0.0001, 0.001), (13.9, 13.9), (2.0000000001, 2.001)])
def test_a_ratio_is_shown_rounded_up_to_three_decimals(ratio, shown):
    assert ratio_shown(ratio) == shown


def test_a_row_a_hair_over_its_target_does_not_read_as_on_it():
    r = row("task", 2.0004, reference="ref", reference_seconds=1.0, target="<= 2x", met=2.0004 <= 2.0)
    assert r["ratio"] == 2.001 and r["met"] is False
    assert r["met"] is (r["ratio"] <= 2.0)


def test_the_summary_table_rounds_a_ratio_up_too():
    from bench.report import summary_table

    table = "\n".join(summary_table([row("t", 2.001, reference="r", reference_seconds=1.0, target="<= 2x",
                                          met=False)]))
    assert "| 2.01x | <= 2x | miss |" in table
