"""`@tab_work`: Textual's `@work` for the screens' daemon calls.

A reply can arrive after the screen was torn down (the app closing, the session
expiring back to the login screen): Textual removes children before their parents, so
the worker finds its widget present but empty and `query_one` raises NoMatches, which
would end the whole app with a traceback. Such a late reply is dropped. A NoMatches
while the widget still has its children is a real bug and is raised as before.
"""
from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from textual import work
from textual.css.query import NoMatches


def tab_work(**options: Any) -> Callable:
    def decorate(method: Callable[..., Awaitable[Any]]) -> Callable:
        @functools.wraps(method)
        async def run(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except NoMatches:
                if self.is_attached and self.children:
                    raise
                return None
        return work(**options)(run)
    return decorate
