"""A toggle's state reads from its glyph alone: ✓ for a checked box or selected entry,
● for the chosen radio button, a blank for off (Textual draws `X` for both and leaves
the difference to colour)."""
from __future__ import annotations

from strongroom.console.widgets.toggles import Check, PickList, Radio
from textual.app import App, ComposeResult
from textual.widgets import RadioSet
from textual.widgets.selection_list import Selection

from tests.console.tui.conftest import drive


class Host(App):
    def compose(self) -> ComposeResult:
        yield Check("encrypt", id="box")
        with RadioSet(id="set"):
            yield Radio("masked", value=True, id="masked")
            yield Radio("full", id="full")
        yield PickList[str](Selection("clients", "clients", True), Selection("sessions", "sessions"), id="pick")


def inner(widget) -> str:
    """The glyph between the button's two half blocks, as drawn."""
    return widget.render().plain[1]


def lines(pick: PickList) -> list[str]:
    return [pick.render_line(y).text for y in range(2)]


def test_glyphs_follow_the_value_not_the_colour():
    async def scenario():
        app = Host()
        async with app.run_test(size=(40, 12)) as pilot:
            box, masked, full = app.query_one("#box", Check), app.query_one("#masked", Radio), app.query_one("#full", Radio)
            assert (inner(box), inner(masked), inner(full)) == (" ", "●", " ")
            box.value = True
            full.value = True            # the set moves the choice
            await pilot.pause()
            assert (inner(box), inner(masked), inner(full)) == ("✓", " ", "●")

            pick = app.query_one("#pick", PickList)
            assert [line[1] for line in lines(pick)] == ["✓", " "]
            pick.select("sessions")
            pick.deselect("clients")
            await pilot.pause()
            assert [line[1] for line in lines(pick)] == [" ", "✓"]
            assert "sessions" in lines(pick)[1]
    drive(scenario)
