"""Where a widget is in its life, for code that runs after an await or from an event.

Textual composes and mounts a widget in steps and tears a subtree down in steps
(marked pruning first, then children removed before their parents). Code that touches a
widget's children at any other moment than "composed, mounted, not going" finds some of
them missing; `live` is the one test for that moment."""
from __future__ import annotations

from textual.dom import DOMNode


def live(node: DOMNode) -> bool:
    """The node is composed and mounted, in the app, and not being removed: the only
    state in which its widgets may be queried or changed."""
    return bool(node.is_attached and getattr(node, "is_mounted", True) and not going(node))


def going(node: DOMNode) -> bool:
    """The node, or a node above it (the app included), is being removed or closed:
    nothing applied to it will be seen. Ancestors count because a widget mounted into a
    subtree after its teardown began is not itself marked, and is torn down with it."""
    return any(n._pruning or n._closing or n._closed for n in node.ancestors_with_self)
