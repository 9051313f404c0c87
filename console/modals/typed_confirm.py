"""A confirmation that needs a word typed, for actions that cannot be taken back (restore).

The dialog says what will happen and names the word; the action button stays disabled
until the input matches it exactly. Dismisses with the extra field values (a dict) on
confirmation, None otherwise. Focus starts in the first field there is (a restore's
target before the word). Given `send`, the dialog carries the action out itself, as
form.FormScreen does: it closes once `send` returns None, and otherwise shows the
refusal it returns (the daemon's words) with everything typed kept.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from strongroom.console.modals.form import send_then_close
from strongroom.console.widgets.plain import Plain
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class TypedConfirmScreen(ModalScreen[dict | None]):
    # Room for a refusal under the inputs without pushing the buttons out of the dialog.
    DEFAULT_CSS = """
    TypedConfirmScreen .dialog.wide { max-height: 95%; }
    TypedConfirmScreen #typed-error { height: auto; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, title: str, consequence: str, word: str, *, yes: str,
                 fields: tuple[tuple[str, str, str], ...] = (),
                 send: Callable[[dict], Awaitable[str | None]] | None = None) -> None:
        """`fields`: extra inputs as (id, placeholder, initial value), returned by id.
        `send`: see the module docstring."""
        super().__init__()
        self.title_text = title
        self.consequence = consequence
        self.word = word
        self.yes = yes
        self.fields = fields
        self.send = send

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Plain(self.title_text, classes="dialog-title")
            yield Plain(self.consequence, id="consequence")
            for field_id, placeholder, value in self.fields:
                yield Input(value=value, placeholder=placeholder, id=field_id)
            yield Plain(f"Type [b]{self.word}[/b] to confirm:", markup=True, id="typed-prompt")   # the word is ours
            yield Input(placeholder=self.word, id="typed")
            yield Plain("", id="typed-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="error", id="yes", disabled=True)
                yield Button("Cancel (esc)", id="no")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#yes", Button).disabled = not self._matches()

    def _matches(self) -> bool:
        return self.query_one("#typed", Input).value.strip() == self.word and all(
            self.query_one(f"#{field_id}", Input).value.strip() for field_id, _, _ in self.fields)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._matches():
            self._confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes" and self._matches():
            self._confirm()
        elif event.button.id == "no":
            self.dismiss(None)

    def _confirm(self) -> None:
        values = {field_id: self.query_one(f"#{field_id}", Input).value.strip() for field_id, _, _ in self.fields}
        if self.send is None:
            self.dismiss(values)
        else:
            self._send(values)

    @work(exclusive=True, group="typed-confirm-send")
    async def _send(self, values: dict) -> None:
        note = self.query_one("#typed-error", Static)
        note.update("Sending…")
        await send_then_close(self, self.send, values, note.update)
