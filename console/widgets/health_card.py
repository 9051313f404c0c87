"""A small bordered card: a title and one value line, with a state class for colour."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain


class HealthCard(Plain):
    """One health figure; `show(value, state)` with state ok / warn / bad / unknown."""

    STATES = ("ok", "warn", "bad", "unknown")

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__("…", id=id, classes="card -unknown")
        self.border_title = title

    def show(self, value: str, state: str = "ok") -> None:
        self.update(value)
        for name in self.STATES:
            self.set_class(name == state, f"-{name}")

    def set_title(self, title: str) -> None:
        self.border_title = title
