"""A saved export configuration run by name (`s` on the Exports tab): choose one, and give
its ZIP password when it makes one."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option


class SavedExportScreen(ModalScreen[dict | None]):
    """Choose a saved export configuration (and give its ZIP password, if it makes one);
    dismisses with the exports.run arguments or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, configurations: list[dict], min_password: int) -> None:
        super().__init__()
        self.configurations = {c["name"]: c for c in configurations}
        self.min_password = min_password
        self.chosen: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Plain("Run a saved export", classes="dialog-title")
            yield OptionList(*[Option(f"{c['name']}  ({c['format']}, {c['masking_profile']}"
                                      f"{', AES-256 ZIP' if c['encryption_enabled'] else ''}"
                                      f"{', ' + c['schedule'] + ' UTC' if c.get('schedule') else ''})", id=c["name"])
                               for c in self.configurations.values()], id="saved-exports", markup=False)
            yield Input(placeholder=f"ZIP password (≥{self.min_password} chars), enter to start", password=True,
                        id="saved-password")
            yield Plain("enter: run · esc: close", id="saved-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#saved-password", Input).display = False   # until a ZIP-making one is chosen
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.chosen = event.option.id
        if not self.configurations[self.chosen]["encryption_enabled"]:
            self.dismiss({"configuration": self.chosen})
            return
        password = self.query_one("#saved-password", Input)
        password.display = True
        password.focus()

    @on(Input.Submitted, "#saved-password")
    def _password(self, event: Input.Submitted) -> None:
        if len(event.value) < self.min_password:
            self.query_one("#saved-hint", Static).update(
                f"The ZIP password needs at least {self.min_password} characters.")
            return
        self.dismiss({"configuration": self.chosen, "password": event.value})
