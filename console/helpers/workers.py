"""`@tab_work`, `fetch` and `ask`: how a screen's worker talks to the daemon without racing
the screen's own life.

A worker awaits the daemon; while it waits, the tab can be torn down (the app closing,
the session expiring back to the login screen, a reconnect reloading every tab).
Textual marks a subtree as pruning, then removes children before their parents, so a
worker resuming in between finds its tab still attached but half empty, and a
`query_one` there raises NoMatches, which Textual turns into WorkerFailed and a panic of
the whole app. Measured: one CI run in N died that way.

The rule that makes the race impossible: after every await, a worker looks at its tab
before touching a widget. `fetch` is that await: it returns the daemon's answer (or
raises its ClientError) only while the tab is `live` (composed, mounted, not being torn
down), and otherwise raises TabGone, which `tab_work` swallows: a late answer is
dropped, never applied. Between two awaits the event loop runs nothing else, so a tab
that was live when the answer arrived stays live until the worker's next await.
"""
from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from textual import work
from textual.dom import DOMNode

from strongroom.console.lifecycle import going, live

__all__ = ["Refused", "TabGone", "ask", "deliver", "fetch", "live", "tab_work"]


class TabGone(Exception):
    """The worker's tab was torn down while it awaited the daemon: drop what came back."""


async def fetch(node: DOMNode, cmd: str, args: dict | None = None, *, timeout: float | None = None) -> Any:
    """`app.call` for a worker of `node`: the answer, or the daemon's ClientError, only
    while `node` is still live; TabGone otherwise."""
    try:
        result = await node.app.call(cmd, args, timeout=timeout)
    except Exception:
        if not live(node):
            raise TabGone(cmd) from None
        raise
    if not live(node):
        raise TabGone(cmd)
    return result


class Refused(Exception):
    """The daemon refused a worker's command and `ask` has told the person so: the
    worker stops there, and `tab_work` ends it quietly."""


async def ask(node: DOMNode, cmd: str, args: dict | None = None, *, failing: str,
              timeout: float | None = None, notice_seconds: float | None = None) -> Any:
    """`fetch`, for a worker whose only answer to a refusal is to say so and stop: the
    daemon's words shown as a toast after `failing` ("Jobs", "Could not cancel"), then
    Refused, which `tab_work` swallows. One line where each call site had five."""
    from strongroom.console.client import ClientError

    try:
        return await fetch(node, cmd, args, timeout=timeout)
    except ClientError as err:
        extra = {} if notice_seconds is None else {"timeout": notice_seconds}
        node.notify(f"{failing}: {err.message}", severity="error", **extra)
        raise Refused(cmd) from None


def tab_work(**options: Any) -> Callable:
    """Textual's `@work` for a worker that ends quietly when its node is gone.

    TabGone and Refused end it. Any other exception while the node is no longer live is a side
    effect of the teardown (a widget already removed, a screen already popped) and is
    dropped too; while the node is live it is a real bug and is raised as before."""
    def decorate(method: Callable[..., Awaitable[Any]]) -> Callable:
        @functools.wraps(method)
        async def run(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except (TabGone, Refused):
                return None
            except Exception:
                if live(self):
                    raise
                return None
        return work(**options)(run)
    return decorate


def deliver(node: DOMNode, apply: Callable[..., Any], *args: Any) -> None:
    """Apply live data (a daemon event) to `node`: now if it is live, once it has been
    composed and mounted if it is not yet, and never if it is gone or going."""
    if live(node):
        apply(*args)
    elif node.is_attached and not going(node):
        node.call_later(lambda: deliver(node, apply, *args))
