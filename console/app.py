"""The Strongroom console: a Textual app over the control protocol, never the database.

One `Client` serves every screen. Without a token the login screen comes first; with
one (a stored session or the local operator token) the main screen opens at once. Any
reply saying the session is gone (idle timeout, revoked) brings the login screen back
with the daemon's words.
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from strongroom.console.client import Client, ClientError
from strongroom.console.screens.help import HelpScreen
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import MainScreen
from textual.app import App, ScreenStackError, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

CALL_TIMEOUT = 15.0


class SessionEnded(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class StrongroomConsole(App):
    CSS_PATH = "strongroom.tcss"
    TITLE = "Strongroom"
    BINDINGS = [Binding("q", "quit", "Quit"), Binding("question_mark", "help", "Help", key_display="?")]

    def __init__(self, endpoint: str, events_endpoint: str, token: str | None = None, *,
                 client: Any = None) -> None:
        """`client` replaces the real Client only in snapshot tests (a fixed data source)."""
        super().__init__()
        self.client = client or Client(endpoint, events_endpoint=events_endpoint, token=token,
                                       timeout=CALL_TIMEOUT)

    def on_mount(self) -> None:
        self.push_screen(MainScreen() if self.client.token else LoginScreen())

    def on_unmount(self) -> None:
        self.client.close()

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
        """The command palette offers every enabled action of the screen by name."""
        yield from super().get_system_commands(screen)
        for active in self.own_bindings(screen):
            if active.enabled and active.binding.action not in ("quit", "help", "app.quit"):
                key = active.binding.key_display or active.binding.key
                yield SystemCommand(active.binding.description, f"key {key}",
                                    partial(self.call_later, self.run_action, active.binding.action, active.node))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        rows = [(b.binding.key_display or b.binding.key, b.binding.description, b.enabled)
                for b in self.own_bindings(self.screen)]
        self.push_screen(HelpScreen(rows))
