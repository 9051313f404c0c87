"""Three inputs (actor, action, table) that post one FilterChanged message on enter."""
from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    table_name: str | None = None

    def as_args(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v}


class FilterBar(Horizontal):
    DEFAULT_CSS = """
    FilterBar { height: 3; }
    FilterBar > Input { width: 1fr; }
    """

    class FilterChanged(Message):
        def __init__(self, value: AuditFilter) -> None:
            super().__init__()
            self.value = value

    def compose(self) -> ComposeResult:
        yield Input(placeholder="actor", id="f-actor")
        yield Input(placeholder="action (CREATE, VERIFY…)", id="f-action")
        yield Input(placeholder="table", id="f-table")

    def current(self) -> AuditFilter:
        def value(name: str) -> str | None:
            return self.query_one(f"#f-{name}", Input).value.strip() or None
        action = value("action")
        return AuditFilter(value("actor"), action.upper() if action else None, value("table"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.FilterChanged(self.current()))
