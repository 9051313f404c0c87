"""`!`: the console's recent messages, newest first. A burst of toasts (refusals, several
jobs ending together) shows only the newest few, the newest marked "+N more"; what was
collapsed is read here, so no refusal or job outcome is lost to the screen's height."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.notifications import Notification
from textual.screen import ModalScreen

SEVERITY_MARK = {"information": "·", "warning": "!", "error": "✗"}


def message_lines(notifications: Iterable[Notification]) -> list[str]:
    """One entry per message, newest first: time, a severity glyph (not colour alone),
    the title if any, then the message."""
    lines: list[str] = []
    for note in sorted(notifications, key=lambda n: n.raised_at, reverse=True):
        stamp = datetime.fromtimestamp(note.raised_at).strftime("%H:%M:%S")
        head = f"{stamp} {SEVERITY_MARK.get(note.severity, '·')} "
        lines.append(head + (note.title or str(note.message)))
        if note.title:
            lines.append(" " * len(head) + str(note.message))
    return lines or ["No messages yet."]


class MessagesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,exclamation_mark,q", "dismiss(None)", "Close")]

    def __init__(self, notifications: Iterable[Notification]) -> None:
        super().__init__()
        self.lines = message_lines(notifications)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Plain("Recent messages", classes="dialog-title")
            with VerticalScroll():
                yield Plain("\n".join(self.lines), markup=False, id="messages-body")
            yield Plain("esc: close", classes="hint")
