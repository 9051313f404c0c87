"""Layout snapshots at 80x24 and 120x40. The data source is a fixed stand-in for the
daemon (here only: every other console test talks to a real daemon), so no clock, uptime
or random id reaches the frame and the snapshots are stable."""
from __future__ import annotations

import asyncio

import pytest
from strongroom.console.screens.main import MainScreen

from tests.console.tui.conftest import settled, wait_for
from tests.console.tui.fixed import FIXED, fixed_app
from strongroom.console.widgets.health_card import HealthCard

async def overview_loaded(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and "84/100" in str(app.screen.query_one("#compliance-gauge").render()) and "leader" in str(app.screen.query_one("#card-role", HealthCard).render()), what="the overview loaded")
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_login_screen_layout(snap_compare, size):
    assert snap_compare(fixed_app(None), terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_overview_layout(snap_compare, size):
    assert snap_compare(fixed_app("fixed-token"), terminal_size=size, run_before=overview_loaded)


def test_overview_cards_turn_red_for_a_low_score_failed_backups_and_a_full_target():
    from strongroom.console.tabs.overview import OverviewTab

    async def go():
        app = fixed_app("fixed-token")
        async with app.run_test(size=(120, 40)) as pilot:
            await overview_loaded(pilot)
            tab = app.screen.query_one(OverviewTab)

            def card(name):
                found = app.screen.query_one(f"#card-{name}", HealthCard)
                return str(found.render()), found.has_class("-bad"), found.has_class("-ok")

            assert card("compliance") == ("84/100 (min 80) · 1 not configured", False, True)
            assert card("backups")[0] == "7 succeeded · 1 failed"
            assert "383 MiB of 477 MiB (80.4%)" in str(app.screen.query_one("#storage").render())
            health = FIXED["health"]
            tab.apply_health({**health, "compliance": {**health["compliance"], "score": 61, "status": "below threshold"},
                              "backups": {"window_days": 7, "succeeded": 0, "failed": 3},
                              "storage": {**health["storage"], "targets": [{**health["storage"]["targets"][0],
                                                                            "percent": 97.0}]}})
            await pilot.pause()
            assert card("compliance")[:2] == ("61/100 (min 80) · 1 not configured", True)
            assert card("backups")[:2] == ("0 succeeded · 3 failed", True)
            assert card("storage")[:2] == ("db 804 MiB · target 97% full", True)
            checked = {"status": "warn", "actual": "3 rows differ", "checked_at": "2026-12-02T10:00:00+00:00"}
            tab.apply_health({**health, "sync": {"consistency": {"central": checked}}})
            await pilot.pause()
            assert card("sync")[0] == "14m 0s (1 peers) · sites differ"
            assert app.screen.query_one("#card-sync", HealthCard).has_class("-warn")
            tab.apply_health({**health, "sync": {"consistency": {"central": {**checked, "status": "ok"}}}})
            await pilot.pause()
            assert card("sync")[0] == "14m 0s (1 peers) · consistent" and card("sync")[2]
            tab.apply_health({"role": "leader"})           # an older daemon: nothing to show, no crash
            await pilot.pause()
            assert card("storage")[0] == "not reported" and card("compliance")[0] == "not reported"
    asyncio.run(go())
