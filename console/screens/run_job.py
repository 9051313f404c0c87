"""Choose a job kind to run now; kinds the user may not run are listed disabled with why."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class RunJobScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, kinds: list[tuple[str, str | None]]) -> None:
        """`kinds`: (kind, reason it is not allowed or None)."""
        super().__init__()
        self.kinds = kinds

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Run a job now", classes="dialog-title")
            yield OptionList(*[Option(kind if reason is None else f"{kind}  ({reason})", id=kind,
                                      disabled=reason is not None) for kind, reason in self.kinds],
                             id="kinds")
            yield Static("enter: choose · esc: close", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
