"""A modal showing one record's fields (an audit entry, a check) as the daemon sent them."""
from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class DetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter,q", "dismiss(None)", "Close")]

    def __init__(self, title: str, record: dict) -> None:
        super().__init__()
        self.title_text = title
        self.record = record

    def compose(self) -> ComposeResult:
        lines = []
        for key, value in self.record.items():
            if isinstance(value, (dict, list)):
                value = json.dumps(value, indent=2, sort_keys=True, default=str)
            lines.append(f"[b]{key}[/b]: {value}")
        with Vertical(classes="dialog wide"):
            yield Static(self.title_text, classes="dialog-title")
            with VerticalScroll():
                yield Static("\n".join(lines), markup=True, id="detail-body")
            yield Static("esc: close", classes="hint")
