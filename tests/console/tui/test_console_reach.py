"""Reach: the palette runs any tab's action from anywhere, every tab has a key, help
shows keys as they are typed, and at 80x24 the tabs, q and ? stay on screen."""
from __future__ import annotations

from strongroom.console.modals.help import HelpScreen
from strongroom.console.screens.main import TABS, MainScreen
from textual.command import CommandList
from textual.widgets import Static, TabbedContent, Tabs
from textual.widgets._footer import FooterKey

from tests.console.tui.conftest import SIZE, drive, showing, tab_key, wait_for
from tests.console.tui.fixed import fixed_app


async def _main(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="main")


def test_palette_runs_another_tabs_action_after_showing_that_tab():
    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            tabs = app.screen.query_one(TabbedContent)
            assert tabs.active == "tab-overview"
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert {"Audit: Verify chain", "Integrity: Reload", "Jobs: Reload"} <= titles
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"audit verify chain")
            await wait_for(pilot, lambda: any(c.option_count for c in app.screen.query(CommandList)),
                           what="the palette's match")
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and tabs.active == "tab-audit",
                           what="the Audit tab shown")
            status = app.screen.query_one("#audit-status", Static)
            await wait_for(pilot, lambda: "chain: intact (5 checked)" in str(status.render()), what="verified")
    drive(scenario, timeout=30)


def test_palette_leaves_out_actions_the_caller_may_not_run():
    async def scenario():
        app = fixed_app("fixed-token")       # an auditor: integrity runs are not allowed
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert "Integrity: Run check now" not in titles
            assert "Integrity: Reload" in titles
    drive(scenario, timeout=30)


def test_help_shows_brackets_and_the_jobs_key_as_typed():
    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            app.action_help()
            await wait_for(pilot, showing(app, HelpScreen), what="help")
            text = "\n".join(str(s.render()) for s in app.screen.query(Static))
            assert "square_bracket" not in text
            lines = {line.strip() for line in text.splitlines()}
            assert {"]  Next tab", "[  Previous tab", "-  Go to Jobs"} <= lines
    drive(scenario, timeout=30)


def test_at_80x24_every_tab_q_and_help_stay_on_screen():
    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=(80, 24)) as pilot:
            await _main(pilot)
            screen = app.screen.region
            for _, tab_id, _ in TABS:
                await pilot.press(tab_key(tab_id))
                await pilot.pause()
                tab_bar = app.screen.query_one(Tabs)
                active = tab_bar.active_tab
                assert active is not None and active.id.endswith(tab_id)
                assert screen.contains_region(active.region), f"{tab_id} tab off screen at 80x24"
                footer_keys = {k.key: k for k in app.screen.query(FooterKey)}
                for key in ("q", "question_mark"):
                    assert key in footer_keys, f"{key} missing from the footer on {tab_id}"
                    assert screen.contains_region(footer_keys[key].region), f"{key} off screen on {tab_id}"
    drive(scenario, timeout=40)


def test_copy_id_puts_the_selected_rows_full_id_on_the_clipboard():
    from strongroom.console.tabs.users import UsersTab
    from textual.widgets import DataTable

    from tests.console.tui.fixed import USER, manage_app

    async def scenario():
        app = manage_app()
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            await pilot.press(tab_key("users"))
            tab = app.screen.query_one("#users", UsersTab)
            await wait_for(pilot, lambda: len(tab.users) == 4, what="users listed")
            tab.query_one("#users-table", DataTable).focus()
            await pilot.press("down", "y")
            assert app.clipboard == USER.format(2)            # dr.hollis, the whole UUID
            titles = {c.title for c in app.get_system_commands(app.screen)}
            assert "Copy id" in titles
            await pilot.press(tab_key("integrity"))           # rows keyed by position: nothing copied
            await wait_for(pilot, lambda: app.screen.query_one("#integrity-table", DataTable).row_count == 5,
                           what="integrity checks")
            app.screen.query_one("#integrity-table", DataTable).focus()
            await pilot.press("y")
            assert app.clipboard == USER.format(2)
            assert any("no id to copy" in str(n.message) for n in app._notifications)
    drive(scenario, timeout=30)


def test_detail_view_shows_values_and_copies_the_full_id():
    from strongroom.console.modals.detail import DetailScreen

    record = {"id": "01a2061f-0000-7000-8000-000000000042", "error": None, "verified": True,
              "filters": {"client": None, "tables": ["clients", "therapy_sessions"]}}

    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            app.push_screen(DetailScreen("Export", record))
            await wait_for(pilot, showing(app, DetailScreen), what="detail")
            body = str(app.screen.query_one("#detail-body", Static).render())
            assert "None" not in body and "{" not in body and "True" not in body
            assert "id: 01a2061f-0000-7000-8000-000000000042" in body
            assert "error: —" in body and "verified: yes" in body
            assert "tables: clients, therapy_sessions" in body and "client: —" in body
            await pilot.press("y")
            assert app.clipboard == record["id"]
    drive(scenario, timeout=30)


def test_slash_filters_the_list_as_you_type_and_escape_brings_every_row_back():
    async def scenario():
        from strongroom.console.widgets.list_filter import ListFilter
        from strongroom.console.widgets.list_table import ListTable

        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await _main(pilot)
            await pilot.press("minus")                       # the Jobs tab
            table = app.screen.query_one("#jobs-table", ListTable)
            await wait_for(pilot, lambda: table.row_count == 8, what="the runs")
            await pilot.press("slash")
            bar = app.screen.query_one(ListFilter)
            assert bar.has_focus and bar.display
            await pilot.press(*"6.8")                       # fuzzy: the run that took 6.8 s
            await wait_for(pilot, lambda: table.row_count < 8, what="the list narrowed")
            shown = [k.value for k in table.rows]
            assert "run-4" in shown and "run-0" not in shown
            assert bar.border_title == f"{len(shown)} of 8 rows"
            await pilot.press("enter")                      # back to the list, filter kept
            assert table.has_focus and bar.display and table.row_count == len(shown)
            await pilot.press("right_square_bracket", "left_square_bracket")   # away and back: still there
            await wait_for(pilot, lambda: bar.display and bar.value == "6.8", what="the bar again")
            await pilot.press("slash", "escape")            # cleared: every row, the bar gone
            await wait_for(pilot, lambda: table.row_count == 8 and not bar.display, what="every row back")
            await pilot.press("1", "slash")                 # Overview has no list
            await pilot.pause()
            assert not bar.display
    drive(scenario, timeout=30)
