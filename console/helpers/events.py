"""Messages the main screen's event worker posts; the screen applies them in one place."""
from __future__ import annotations

from textual.message import Message


class DaemonEvent(Message):
    """One event from the daemon's PUB socket."""

    def __init__(self, topic: str, data: dict) -> None:
        super().__init__()
        self.topic = topic
        self.data = data


class ConnectionLost(Message):
    def __init__(self, reason: str, retry_in: float) -> None:
        super().__init__()
        self.reason = reason
        self.retry_in = retry_in


class Reconnected(Message):
    """The daemon answers again (after a loss, or for the first time)."""
