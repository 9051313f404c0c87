"""A list filtered with `/` holds back the rows that do not match and loses none of them:
live updates reach hidden rows, a row an update makes match shows up, the cursor stays
on its row, and clearing the filter shows every row again in its order."""
from __future__ import annotations

import pytest
from rich.text import Text
from strongroom.console.widgets.list_table import ListTable, plain
from textual.app import App, ComposeResult
from textual.widgets.data_table import RowDoesNotExist

from tests.console.tui.conftest import drive


class Host(App):
    def compose(self) -> ComposeResult:
        table = ListTable(id="t", cursor_type="row")
        table.add_column("Kind", key="kind")
        table.add_column("Status", key="status")
        yield table


def shown(table: ListTable) -> list[str]:
    return [key.value for key in table.rows]


def fill(table: ListTable) -> None:
    table.add_row("backup", Text("succeeded", style="green"), key="r1")
    table.add_row("export", "failed", key="r2")
    table.add_row("backup", "failed", key="r3")
    table.add_row("integrity", "running", key="r4")


def test_terms_match_fuzzily_across_columns_in_any_order():
    async def scenario():
        app = Host()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(ListTable)
            fill(table)
            table.set_filter("fail bkp")          # a term per column, given in the other order
            await pilot.pause()
            assert shown(table) == ["r3"]
            table.set_filter("SUCC")              # styled cells match by their text; no case
            assert shown(table) == ["r1"]
            table.set_filter("nothing-like-it")
            assert shown(table) == [] and table.total_rows == 4
            table.set_filter("")
            assert shown(table) == ["r1", "r2", "r3", "r4"]
    drive(scenario)


def test_updates_reach_hidden_rows_and_a_row_made_to_match_shows():
    async def scenario():
        app = Host()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(ListTable)
            fill(table)
            table.set_filter("failed")
            assert shown(table) == ["r2", "r3"]
            table.update_cell("r1", "status", "renamed")          # hidden: kept, still hidden
            table.update_cell("r4", "status", "failed")           # now matches: shown in its place
            assert shown(table) == ["r2", "r3", "r4"]
            table.remove_row("r1")
            table.add_row("sync", "ok", key="r5")                 # new and not matching: held back
            table.set_filter("")
            await pilot.pause()
            assert shown(table) == ["r2", "r3", "r4", "r5"]
            assert [plain(c) for c in table.get_row("r4")] == ["integrity", "failed"]
            with pytest.raises(RowDoesNotExist):              # as a DataTable says it
                table.update_cell("r1", "status", "gone")
            table.clear()
            assert table.total_rows == 0 and shown(table) == []
    drive(scenario)


def test_the_cursor_stays_on_its_row_through_a_filter():
    async def scenario():
        app = Host()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(ListTable)
            fill(table)
            table.move_cursor(row=2)                # r3: backup failed
            await pilot.pause()
            table.set_filter("backup")
            await pilot.pause()
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "r3"
            table.set_filter("")
            await pilot.pause()
            assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "r3"
    drive(scenario)


class Narrow(App):
    def compose(self) -> ComposeResult:
        table = ListTable(id="t", cursor_type="row")
        table.add_column("Actor", key="actor", width=8)
        table.add_column("Note", key="note")              # sized to its content: never cut
        yield table


def drawn(app, line: int) -> str:
    """Screen line `line` as drawn."""
    return "".join(s.text for s in app.screen._compositor.render_strips()[line])


def test_a_value_wider_than_its_column_ends_in_an_ellipsis_and_still_matches_whole():
    async def scenario():
        app = Narrow()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(ListTable)
            table.add_row("user:demo-manager", "a long note stays whole", key="r1")
            table.add_row("user:ann", "short", key="r2")
            await pilot.pause()
            assert drawn(app, 1).startswith(" user:de…  a long note stays whole")
            assert drawn(app, 2).startswith(" user:ann  short")                  # fits: untouched
            assert table.get_cell("r1", "actor") == "user:demo-manager"        # the data: whole
            table.set_filter("manager")                                  # the cut part still matches
            assert [k.value for k in table.rows] == ["r1"]
            table.update_cell("r1", "actor", "system:scheduler")
            await pilot.pause()
            assert drawn(app, 1).startswith(" system:…")
            assert table.get_cell("r1", "actor") == "system:scheduler"
    drive(scenario)


def test_brackets_in_a_value_are_shown_as_typed_never_read_as_markup():
    """A str cell of a plain DataTable is Rich markup: `[/x]` raised MarkupError and took
    the console down. Data is text here."""
    async def scenario():
        app = Narrow()
        async with app.run_test(size=(60, 10)) as pilot:
            table = app.query_one(ListTable)
            table.add_row("[b]x", "Intake [/x] [red]", key="r1")
            await pilot.pause()
            assert drawn(app, 1).startswith(" [b]x      Intake [/x] [red]")
    drive(scenario)
