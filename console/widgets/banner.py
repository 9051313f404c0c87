"""The one-line connection banner shown above the tabs while the daemon is unreachable."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain


class ConnectionBanner(Plain):
    """Hidden while connected; says what is happening while the console reconnects."""

    DEFAULT_CSS = """
    ConnectionBanner { display: none; height: 1; }
    ConnectionBanner.-down { display: block; }
    """

    def show_down(self, reason: str, retry_in: float) -> None:
        self.update(f"⚠ reconnecting… daemon unreachable ({reason}); next try in {retry_in:.0f}s")
        self.add_class("-down")

    def show_up(self) -> None:
        self.update("")
        self.remove_class("-down")

    @property
    def is_down(self) -> bool:
        return self.has_class("-down")
