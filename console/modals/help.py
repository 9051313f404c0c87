"""`?`: the keys that work here, gathered from the active bindings (never a hand-kept list)."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss(None)", "Close")]

    def __init__(self, rows: list[tuple[str, str, bool]]) -> None:
        """`rows`: (key, description, enabled)."""
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        lines = [f"{key:>12}  {text}" + ("" if enabled else "  (not allowed)")
                 for key, text, enabled in self.rows]
        lines += ["", "     tab / ⇧tab  move between fields and tables",
                  "         ctrl+p  command palette (every action by name)"]
        with Vertical(classes="dialog wide"):
            yield Plain("Keys", classes="dialog-title")
            with VerticalScroll():
                yield Plain("\n".join(lines), markup=False)
            yield Plain("esc: close", classes="hint")
