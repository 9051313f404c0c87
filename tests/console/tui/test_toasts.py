"""Toasts never cover the shown tab's own hint line (issue 18: one stayed over Backups'
hints for 88 s), at 120x36 and 80x24, for every tab that has one, even when several
toasts are up at once: they stack above the hint line and the newest stays in view.
Against the fixed stand-in for the daemon (layout only)."""
from __future__ import annotations

import pytest
from strongroom.console.screens.main import TABS, MainScreen
from textual.geometry import Region
from textual.widgets._toast import Toast, ToastRack

from tests.console.tui.conftest import drive, settled, wait_for
from tests.console.tui.fixed import manage_app

WITH_HINT = [tab_id for _, tab_id, tab in TABS if tab.NOTE is not None]
# Long enough to wrap: a toast several rows high, as the daemon's refusals are.
MESSAGE = "Refused: the daemon's words about what went wrong, long enough to wrap over several rows"


def drawn(toast: Toast) -> Region:
    """The part of a toast that is on the screen (its region clipped by the rack, which
    scrolls, and by the screen): what could cover something."""
    return toast.screen.find_widget(toast).visible_region


@pytest.mark.parametrize("size", [(120, 36), (80, 24)], ids=["120x36", "80x24"])
def test_toasts_stay_off_every_tabs_hint_line(size):
    async def scenario():
        app = manage_app()
        async with app.run_test(size=size, notifications=True) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                           what="the main screen")
            screen = app.screen
            rack = screen.get_child_by_type(ToastRack)
            for tab_id in WITH_HINT:
                screen.action_show_tab(tab_id)
                await settled(pilot)
                tab = screen.query_one(f"#{tab_id}")
                hint = tab.query_one(f"#{tab.NOTE}").region
                assert hint.height, f"{tab_id}: its hint line is shown"
                for n in range(3):
                    app.notify(f"{MESSAGE} ({tab_id} {n})", timeout=60)
                await wait_for(pilot, lambda: len(rack.query(Toast)) >= 3, what="three toasts")
                await settled(pilot)
                toasts = list(rack.query(Toast))
                for toast in toasts:
                    assert not drawn(toast).overlaps(hint), (tab_id, size, toast.region, hint)
                newest = toasts[-1]
                assert drawn(newest) == newest.region, f"{tab_id}: the newest toast is in full view"
                app.clear_notifications()
                await wait_for(pilot, lambda: not rack.query(Toast), what="toasts cleared")

    drive(scenario, timeout=120)
