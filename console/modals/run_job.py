"""Choose a job kind to run now (or another choice of one thing to run, such as the peer a
sync runs with); choices the user may not take are listed disabled with why."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class RunJobScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, kinds: list[tuple[str, str | None]], *, title: str = "Run a job now",
                 labels: dict[str, str] | None = None) -> None:
        """`kinds`: (kind, reason it is not allowed or None); `labels`: what to show for
        a kind instead of its name."""
        super().__init__()
        self.kinds = kinds
        self.title_text = title
        self.labels = labels or {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain(self.title_text, classes="dialog-title")
            yield OptionList(*[Option(self.labels.get(kind, kind) if reason is None
                                      else f"{self.labels.get(kind, kind)}  ({reason})", id=kind,
                                      disabled=reason is not None) for kind, reason in self.kinds],
                             id="kinds", markup=False)
            yield Plain("enter: choose · esc: close", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
