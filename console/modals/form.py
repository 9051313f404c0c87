"""A small modal form: labelled inputs, submitted with enter or ctrl+s, cancelled with
esc. Dismisses with {field id: value} or None; the daemon validates the values.

Given `send`, the form submits itself: it awaits `send(values)` and closes only when
that returns None; a refusal (the text `send` returns, e.g. the daemon's words naming
the field) is shown under the fields and everything typed stays, so a mistake costs
one correction, not the whole form. When the refusal names one of the form's fields
(`field: reason`, the daemon's way), the reason is also shown right under that field,
its input is marked and focused; a required field left empty is marked the same way."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from strongroom.console.widgets.plain import Plain, PlainLabel
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


def daemon_sender(node: DOMNode, cmd: str, build: Callable[[dict], dict],
                  done: Callable[[dict, Any], None]) -> Callable[[dict], Awaitable[str | None]]:
    """A `send` that calls `cmd` with build(values) through `node`'s app: what `build`
    cannot send (its ValueError) or the daemon refuses comes back for the form to show;
    on success `done(values, answer)` runs (a notice, a reload, following the run the
    answer names) and the form closes."""
    from strongroom.console.client import ClientError

    async def send(values: dict) -> str | None:
        try:
            args = build(values)
        except ValueError as err:
            return str(err)
        try:
            answer = await node.app.call(cmd, args)
        except ClientError as err:
            return f"Refused: {err.message}"
        done(values, answer)
        return None
    return send


def named_field(refusal: str, field_ids: list[str]) -> tuple[str, str] | None:
    """(field id, reason) when `refusal` names one of `field_ids` the daemon's way
    (`client_id: must be a UUID`, also after `Refused: ` or inside a dotted path such as
    `filters.since:`), else None."""
    for field_id in field_ids:
        found = re.search(rf"(?:^|[\s.(]){re.escape(field_id)}(?:\s*\([^)]*\))?\s*:\s*(.+)", refusal)
        if found:
            return field_id, found.group(1).strip()
    return None


async def send_then_close(screen: ModalScreen, send: Callable[[dict], Awaitable[str | None]], values: dict,
                          refused: Callable[[str], None]) -> None:
    """How a dialog given `send` carries its action out (FormScreen, TypedConfirmScreen,
    the export form): await send(values); close `screen` with `values` once it returns
    None, else hand the refusal it returned to `refused` to show, everything typed kept.
    Nothing more if the person closed the dialog meanwhile."""
    refusal = await send(values)
    if not screen.is_attached:
        return
    if refusal is None:
        screen.dismiss(values)
    else:
        refused(refusal)


def mark_fields(screen: ModalScreen, field_ids: list[str], reasons: dict[str, str]) -> None:
    """Each field's own error line (`#<id>-error`): `reasons[field id]` under the fields
    named, their widgets (`#<id>`: an input, a picker, a checkbox) marked `-refused` and
    the first focused; every other field's line cleared. One mechanism for every form,
    so a refusal looks and behaves the same wherever the daemon names a field."""
    for field_id in field_ids:
        reason = reasons.get(field_id)
        line = screen.query_one(f"#{field_id}-error", Static)
        line.update(f"↑ {reason}" if reason else "")
        line.set_class(reason is not None, "-shown")
        screen.query_one(f"#{field_id}").set_class(reason is not None, "-refused")
    first = next((field_id for field_id in field_ids if field_id in reasons), None)
    if first is not None:
        screen.query_one(f"#{first}").focus()


def refusal_shower(screen: ModalScreen, note: Static, field_ids: list[str]) -> Callable[[str], None]:
    """What a form does with a refusal: the whole text in `note`, and, when it names one
    of `field_ids` (named_field), the reason under that field too (mark_fields)."""
    def refused(refusal: str) -> None:
        note.update(refusal)
        named = named_field(refusal, field_ids)
        mark_fields(screen, field_ids, dict([named]) if named else {})
    return refused


class FormScreen(ModalScreen[dict | None]):
    DEFAULT_CSS = """
    FormScreen .field-error { display: none; height: auto; }
    FormScreen .field-error.-shown { display: block; }
    FormScreen Input.-refused { border: tall $error; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Submit"),
                Binding("ctrl+f", "find_client", "Find client")]

    def __init__(self, title: str, explanation: str, fields: tuple[tuple[str, str, str], ...], *,
                 submit: str = "OK", values: dict[str, str] | None = None,
                 send: Callable[[dict], Awaitable[str | None]] | None = None,
                 find_client: str | None = None) -> None:
        """`fields`: (id, label, placeholder); all but a field labelled '(optional)' are
        required. `values`: what the inputs start with (editing a record). `send`: see
        the module docstring. `find_client`: the id of the field ctrl+f fills from the
        client picker (client_picker), instead of a pasted id."""
        super().__init__()
        self.title_text = title
        self.explanation = explanation
        self.fields = fields
        self.submit = submit
        self.initial = values or {}
        self.send = send
        self.find_client = find_client

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.find_client is not None if action == "find_client" else True

    def action_find_client(self) -> None:
        from strongroom.console.modals.client_picker import fill_with_client
        fill_with_client(self.query_one(f"#{self.find_client}", Input), focus=True)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Plain(self.title_text, classes="dialog-title")
            yield Plain(self.explanation, id="form-explanation")
            for field_id, label, placeholder in self.fields:
                yield PlainLabel(label)
                yield Input(value=str(self.initial.get(field_id) or ""), placeholder=placeholder, id=field_id)
                yield Plain("", id=f"{field_id}-error", classes="error field-error")
            yield Plain("", id="form-error", classes="error")
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
        self.mark_fields({})
        if missing:
            self.query_one("#form-error", Static).update(f"Required: {', '.join(missing)}")
            self.mark_fields({field_id: "required" for field_id, label, _ in self.fields
                              if not values[field_id] and "(optional)" not in label})
            return
        if self.send is None:
            self.dismiss(values)
        else:
            self._send(values)

    @work(exclusive=True, group="form-send")
    async def _send(self, values: dict) -> None:
        note = self.query_one("#form-error", Static)
        note.update("Sending…")
        refused = refusal_shower(self, note, [field_id for field_id, _, _ in self.fields])
        await send_then_close(self, self.send, values, refused)

    def mark_fields(self, reasons: dict[str, str]) -> None:
        mark_fields(self, [field_id for field_id, _, _ in self.fields], reasons)
