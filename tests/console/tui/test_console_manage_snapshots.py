"""Layout snapshots of the Users and Integrity tabs and the practice screen at 80x24 and
120x40, from a fixed
stand-in for the daemon (as test_console_snapshots.py): no clock or random id reaches
the frame."""
from __future__ import annotations

import pytest
from strongroom.console.tabs.integrity import IntegrityTab
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.users import UsersTab

from tests.console.tui.conftest import settled, tab_key, wait_for
from tests.console.tui.fixed import manage_app

async def show_users(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(tab_key("users"))
    tab = app.screen.query_one("#users", UsersTab)
    await wait_for(pilot, lambda: len(tab.users) == 4 and len(tab.grants) == 2, what="len(tab.users) == 4 and len(tab.grants) == 2")
    await pilot.press("down")   # dr.hollis: unlock is offered (2 failed logins)
    await settled(pilot)


async def show_practice(pilot) -> None:
    from strongroom.console.modals.practice import PracticeScreen

    await show_users(pilot)
    await pilot.press("p")
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, PracticeScreen) and len(app.screen.services) == 2,
                   what="the practice screen loaded")
    await settled(pilot)


async def show_integrity(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(tab_key("integrity"))
    tab = app.screen.query_one("#integrity", IntegrityTab)
    await wait_for(pilot, lambda: len(tab.checks) == 5, what="len(tab.checks) == 5")
    await pilot.press("down", "down", "down")   # the failed check, its evidence under the table
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_users_tab_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_users)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_integrity_tab_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_integrity)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_practice_screen_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_practice)
