"""Text widgets that show their text as it is, never as markup.

What the console shows comes from the daemon: client and user names, file names, backup
labels, refusals in the daemon's words. Textual reads a plain `Static` or `Label` as
markup, so a value like "Intake [/x]" raised MarkupError and took the console down, and
one like "[red]Ann" lost its brackets without a word. Every text widget of the console is
one of these (tests/console/tui/test_plain_text.py holds the tree to it); one that
really wants markup says `markup=True` and escapes what it puts in (modals/detail.py).
"""
from __future__ import annotations

from textual.widgets import Label, Static


class Plain(Static):
    """A Static whose content is plain text unless `markup=True` is asked for."""

    def __init__(self, content="", *, markup: bool = False, **kwargs) -> None:
        super().__init__(content, markup=markup, **kwargs)


class PlainLabel(Label):
    """A Label whose content is plain text unless `markup=True` is asked for."""

    def __init__(self, content="", *, markup: bool = False, **kwargs) -> None:
        super().__init__(content, markup=markup, **kwargs)
