"""The `/` filter bar: narrows the active tab's list as you type (fuzzy, every visible
column; see widgets/list_table.py). Enter goes back to the list keeping the filter, and
the bar stays showing it; escape clears it and hides the bar. The bar's title says how
many rows show of how many."""
from __future__ import annotations

from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class ListFilter(Input):
    DEFAULT_CSS = """
    ListFilter { dock: bottom; display: none; border: tall $accent; height: 3; margin-bottom: 1; }
    ListFilter.-shown { display: block; }
    """
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter")]

    class Cleared(Message):
        """Escape: the filter is cleared and the bar hidden."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="filter: type to narrow the list (fuzzy, any column)", id=id)

    def show(self, text: str) -> None:
        self.value = text
        self.add_class("-shown")
        self.focus()

    def hide(self) -> None:
        self.remove_class("-shown")

    def action_clear_filter(self) -> None:
        self.value = ""
        self.hide()
        self.post_message(self.Cleared())
