"""A modal showing one record's fields (an audit entry, a check) as the daemon sent them:
values, not Python reprs (no None, no raw dicts), and the full id, which y copies."""
from __future__ import annotations

from typing import Any

from rich.markup import escape
from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen

ID_FIELDS = ("id", "run_id")


def value_lines(value: Any, indent: int = 0) -> list[str]:
    """A value as text lines: — for nothing, yes/no, nested mappings one key a line."""
    pad = "  " * indent
    if value is None or value == "" or value == [] or value == {}:
        return [f"{pad}—"]
    if isinstance(value, bool):
        return [f"{pad}{'yes' if value else 'no'}"]
    if isinstance(value, dict):
        lines = []
        for key, inner in value.items():
            shown = value_lines(inner, indent + 1)
            if len(shown) == 1 and not isinstance(inner, dict):
                lines.append(f"{pad}{key}: {shown[0].strip()}")
            else:
                lines += [f"{pad}{key}:", *shown]
        return lines
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return [f"{pad}{', '.join(value_lines(v)[0] for v in value)}"]
        return [line for v in value for line in value_lines(v, indent)]
    return [f"{pad}{value}"]


class DetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss(None)", "Close"), Binding("y", "copy_id", "Copy id")]

    def __init__(self, title: str, record: dict) -> None:
        super().__init__()
        self.title_text = title
        self.record = record

    def record_id(self) -> str | None:
        for field in ID_FIELDS:
            if self.record.get(field) not in (None, ""):
                return str(self.record[field])
        return None

    def compose(self) -> ComposeResult:
        lines = []
        for key, value in self.record.items():
            shown = value_lines(value, 1)
            if len(shown) == 1 and not isinstance(value, dict):
                lines.append(f"[b]{escape(str(key))}[/b]: {escape(shown[0].strip())}")
            else:
                lines += [f"[b]{escape(str(key))}[/b]:", *(escape(line) for line in shown)]
        with Vertical(classes="dialog wide"):
            yield Plain(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Plain("\n".join(lines), markup=True, id="detail-body")
            yield Plain("y: copy id · esc: close" if self.record_id() else "esc: close", classes="hint")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return None if action == "copy_id" and self.record_id() is None else True

    def action_copy_id(self) -> None:
        record_id = self.record_id()
        if record_id is not None:
            self.app.copy_to_clipboard(record_id)
            self.notify(f"Copied id {record_id}")
