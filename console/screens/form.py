"""A small modal form: labelled inputs, submitted with enter or ctrl+s, cancelled with
esc. Dismisses with {field id: value} or None; the daemon validates the values."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class FormScreen(ModalScreen[dict | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Submit")]

    def __init__(self, title: str, explanation: str, fields: tuple[tuple[str, str, str], ...], *,
                 submit: str = "OK") -> None:
        """`fields`: (id, label, placeholder); all but a field labelled '(optional)' are required."""
        super().__init__()
        self.title_text = title
        self.explanation = explanation
        self.fields = fields
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.explanation, id="form-explanation")
            for field_id, label, placeholder in self.fields:
                yield Label(label)
                yield Input(placeholder=placeholder, id=field_id)
            yield Static("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.submit} (ctrl+s)", variant="primary", id="submit")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = list(self.query(Input))
        position = inputs.index(event.input)
        if position + 1 < len(inputs):
            inputs[position + 1].focus()
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        values = {field_id: self.query_one(f"#{field_id}", Input).value.strip() for field_id, _, _ in self.fields}
        missing = [label for field_id, label, _ in self.fields if not values[field_id] and "(optional)" not in label]
        if missing:
            self.query_one("#form-error", Static).update(f"Required: {', '.join(missing)}")
            return
        self.dismiss(values)
