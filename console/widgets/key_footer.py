"""The footer with ? and q pinned at its right end.

Textual's Footer lists the focused widget's keys first and the app's last, so on a tab
with many keys ? (help) and q (quit) ran off an 80-column terminal. Here they are kept
out of the Footer's list (their bindings are show=False) and drawn after it, always in
view; a click on one sends its key, as a Footer key does.
"""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

PINNED = (("question_mark", "?", "Help", "app.help"), ("q", "q", "Quit", "app.quit"))


class KeyFooter(Horizontal):
    DEFAULT_CSS = """
    KeyFooter { dock: bottom; height: 1; background: $footer-background; }
    KeyFooter > Footer { dock: none; width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Footer()
        for key, display, description, action in PINNED:
            pinned = FooterKey(key, display, description, action, classes="pinned")
            pinned.set_reactive(FooterKey.compact, False)    # spaced like the Footer's own keys
            yield pinned
