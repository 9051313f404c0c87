"""The Strongroom console: a Textual app over the control protocol, never the database.

One `Client` serves every screen. Without a token the login screen comes first; with
one (a stored session or the local operator token) the main screen opens at once. Any
reply saying the session is gone (idle timeout, revoked) brings the login screen back
with the daemon's words.
"""
from __future__ import annotations

import copy
import gc
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

from strongroom.console.client import Client, ClientError
from strongroom.console.modals.help import HelpScreen
from strongroom.console.modals.messages import MessagesScreen
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import TABS, MainScreen
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.notifications import Notification, Notify
from textual.screen import Screen
from textual.widgets import TabbedContent

# Toasts shown at once: a burst (refusals, several jobs ending together) piled up over
# the tab bar and the banner; the newest MAX_TOASTS stay and older ones are collapsed
# into a "+N more" on the newest, read in full with `!` (the recent messages).
MAX_TOASTS = 3
RECENT_MESSAGES = 100
CALL_TIMEOUT = 15.0


class SessionEnded(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class StrongroomConsole(App):
    CSS_PATH = "strongroom.tcss"
    TITLE = "Strongroom"
    # Shown by KeyFooter at the footer's right end, not in the Footer's own list.
    BINDINGS = [Binding("q", "quit", "Quit", show=False),
                Binding("question_mark", "help", "Help", key_display="?", show=False),
                Binding("exclamation_mark", "messages", "Recent messages", key_display="!", show=False)]

    def __init__(self, endpoint: str, events_endpoint: str, token: str | None = None, *,
                 client: Any = None, clock: Callable[[], datetime] = datetime.now) -> None:
        """`client` and `clock` are replaced only in snapshot tests (a fixed data source,
        a fixed time for the status line's "updated" stamp)."""
        super().__init__()
        self.clock = clock
        # Every toast's text as raised (copies: the shown one may get a "+N more" title).
        self.messages: deque[Notification] = deque(maxlen=RECENT_MESSAGES)
        self.collapsed = 0                      # toasts hidden from the pile now shown
        self._titles: dict[str, str] = {}       # a shown toast's own title, by identity
        self.retitled: set[str] = set()         # shown toasts whose title changed since drawn
        self.client = client or Client(endpoint, events_endpoint=events_endpoint, token=token,
                                       timeout=CALL_TIMEOUT)

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every toast of the console (widgets' and screens' notify end here) is plain
        text: it carries the daemon's words and names from the data, and read as markup
        "Could not delete Intake [/x]" raised MarkupError. `markup` is ignored. The main
        screen first keeps the toasts above the shown tab's hint line."""
        screen = self.screen_stack[-1] if self.screen_stack else None
        keep_clear = getattr(screen, "keep_toasts_above_hint", None)
        if keep_clear is not None:
            keep_clear()
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def on_notify(self, event: Notify) -> None:
        """A toast is about to be added: Textual runs a subclass's handler before App's
        own `_on_notify` adds it, so the newest MAX_TOASTS - 1 stay beside it and older
        ones are collapsed into its "+N more". A burst (refusals, several jobs ending
        together) never piles up over the tab bar; the main screen then keeps only as
        many as fit below it. Every message stays readable in the recent messages (`!`)."""
        incoming = event.notification
        self.messages.append(copy.copy(incoming))
        if not self._notifications:
            self.collapsed = 0                  # a new pile: nothing of it is hidden yet
        self._titles[incoming.identity] = incoming.title
        for notification in list(self._notifications)[:-(MAX_TOASTS - 1) or None]:
            self._collapse(notification)
        self._mark(incoming)
        fit = getattr(self.screen_stack[-1] if self.screen_stack else None, "fit_toasts", None)
        if fit is not None:
            self.call_after_refresh(fit)

    def _collapse(self, notification: Notification) -> None:
        """Hide one toast, counted once (a rack not yet redrawn still holds the widgets of
        toasts already hidden, and fit_toasts may meet them)."""
        if notification in self._notifications:
            self._unnotify(notification, refresh=False)
            self.collapsed += 1

    def _mark(self, newest: Notification) -> None:
        """The newest toast says how many were hidden, and where to read them; the others
        carry their own titles again. Toasts whose title changed are listed in `retitled`
        for the main screen to redraw (a drawn toast is not re-rendered by itself)."""
        for shown in [*self._notifications, newest]:
            own = self._titles.get(shown.identity, shown.title)
            title = own
            if shown is newest and self.collapsed:
                more = f"+{self.collapsed} more (! to read)"
                title = f"{own} · {more}" if own else more
            if shown.title != title:
                shown.title = title
                self.retitled.add(shown.identity)

    def is_shown(self, notification: Notification) -> bool:
        """Whether `notification` is still one of the toasts up (not expired, collapsed
        or cleared), whatever widgets the rack has yet to take down."""
        return notification in self._notifications

    def forget_toast(self, notification: Notification, newest: Notification) -> None:
        """Collapse one toast that no longer fits (the main screen's fit_toasts) into the
        newest one's "+N more"."""
        self._collapse(notification)
        self._mark(newest)
        self._refresh_notifications()

    def _unnotify(self, notification: Notification, refresh: bool = True) -> None:
        self._titles.pop(notification.identity, None)
        super()._unnotify(notification, refresh)

    def action_messages(self) -> None:
        if not isinstance(self.screen, MessagesScreen):
            self.push_screen(MessagesScreen(self.messages))

    def on_mount(self) -> None:
        self.push_screen(MainScreen() if self.client.token else LoginScreen())

    def on_unmount(self) -> None:
        self.client.close()
        gc.unfreeze()     # this app's objects may be collected again (tests run many apps)

    def settle_heap(self) -> None:
        """Called once the main screen is drawn: what exists now (Textual, the tabs'
        widgets) lives as long as the console, so it is frozen out of the collector's
        full passes. Unfrozen, each full pass walked it, 100-280 ms on a loaded machine,
        and an audit page change that met one took that much longer."""
        gc.collect()
        gc.freeze()

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None) -> Any:
        """Every screen's way to the daemon: a lost session sends the user back to login."""
        try:
            return await self.client.call(cmd, args, timeout=timeout)
        except ClientError as err:
            if err.code == "unauthenticated":
                self.post_message(SessionEnded(err.message))
            raise

    def on_login_screen_logged_in(self, event: LoginScreen.LoggedIn) -> None:
        self.client.token = event.token
        self.switch_screen(MainScreen())

    def on_session_ended(self, event: SessionEnded) -> None:
        if not self.screen_stack or isinstance(self.screen, LoginScreen) or self.client.token is None:
            return   # shutting down, or already back at login
        self.client.token = None
        while len(self.screen_stack) > 2:   # close any open dialog first
            self.pop_screen()
        self.switch_screen(LoginScreen(f"Session ended: {event.reason}. Log in again."))

    async def _check_bindings(self, key: str, priority: bool = False) -> bool:
        """A key typed just before quitting can be handled after the screens are gone;
        Textual would then raise ScreenStackError and the console would end in a
        traceback. With no screen there is nothing to act on: the key is dropped."""
        if not self.screen_stack:
            return True
        try:
            return await super()._check_bindings(key, priority)
        except ScreenStackError:
            if self.screen_stack:
                raise
            return True

    def own_bindings(self, screen: Screen) -> list:
        """The screen's active bindings that are ours (widgets' cursor keys left out)."""
        return [b for b in screen.active_bindings.values()
                if b.binding.description and type(b.node).__module__.startswith(("strongroom.", "textual.app"))]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette offers every action by name: the screen's own, and on the
        main screen every tab's (chosen from another tab, it shows that tab first)."""
        yield from super().get_system_commands(screen)
        for active in self.own_bindings(screen):
            if active.enabled and active.binding.action not in ("quit", "help", "app.quit"):
                yield SystemCommand(active.binding.description, f"key {self.get_key_display(active.binding)}",
                                    partial(self.call_later, self.run_action, active.binding.action, active.node))
        if isinstance(screen, MainScreen):
            yield from self._other_tabs_commands(screen)

    def _other_tabs_commands(self, screen: MainScreen) -> Iterable[SystemCommand]:
        current = screen.query_one("#tabs", TabbedContent).active.removeprefix("tab-")
        for title, tab_id, _ in TABS:
            if tab_id == current:
                continue
            tab = screen.query_one(f"#{tab_id}")
            for binding in Binding.make_bindings(type(tab).BINDINGS):
                name = binding.action.partition("(")[0]
                if not binding.description or tab.check_action(name, ()) is not True:
                    continue
                yield SystemCommand(f"{title}: {binding.description}",
                                    f"on the {title} tab, key {self.get_key_display(binding)}",
                                    partial(self.call_later, self._run_on_tab, screen, tab_id, binding.action))

    async def _run_on_tab(self, screen: MainScreen, tab_id: str, action: str) -> None:
        """Show the tab, let it take focus, then run the action there."""
        screen.action_show_tab(tab_id)
        await self.run_action(action, screen.query_one(f"#{tab_id}"))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = [(self.get_key_display(b.binding), b.binding.description, b.enabled)
                for b in self.own_bindings(self.screen)]
        self.push_screen(HelpScreen(rows))
