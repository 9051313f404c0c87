"""Checkboxes, radio buttons and selection lists whose state is a glyph, not a colour.

Textual draws every toggle as the same `X` and tells on from off by colour alone: on a
monochrome terminal, through a screen reader, or to a colour-blind sysadmin, a "full
(PHI in clear)" export looks exactly as chosen as a masked one. These draw a tick (✓)
for a checked box or selected list entry and a dot (●) for the chosen radio button, and
a blank for off, keeping Textual's colours as well.
"""
from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import Checkbox, RadioButton, SelectionList
from textual.widgets._toggle_button import ToggleButton
from textual.widgets.option_list import OptionDoesNotExist
from textual.widgets.selection_list import SelectionType

CHECKED = "✓"
CHOSEN = "●"
OFF = " "


class Check(Checkbox):
    """A Checkbox showing ✓ when checked."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802 - Textual reads the class constant's name
        return CHECKED if self.value else OFF


class Radio(RadioButton):
    """A RadioButton showing ● when chosen."""

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802
        return CHOSEN if self.value else OFF


class PickList(SelectionList[SelectionType]):
    """A SelectionList showing ✓ beside each selected entry."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        # SelectionList draws [left, inner, right, " ", prompt...]; only the inner changes.
        if len(segments) >= 3 and segments[1].text == ToggleButton.BUTTON_INNER:
            _, scroll_y = self.scroll_offset
            try:
                option = self.get_option_at_index(scroll_y + y)
            except OptionDoesNotExist:   # a blank line below the last entry
                return strip
            glyph = CHECKED if option.value in self._selected else OFF
            segments[1] = Segment(glyph, segments[1].style, segments[1].control)
            return Strip(segments, strip.cell_length)
        return strip
