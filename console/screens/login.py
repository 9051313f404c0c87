"""Login: username, password and TOTP; the daemon's refusal is shown as it worded it. An
account that must first enrol a second factor is taken through EnrolAtLoginScreen, and a
new person with an invitation sets their password first (F2, AcceptInvitationScreen)."""
from __future__ import annotations

import os
import socket

from strongroom.console.client import ClientError
from strongroom.console.modals.enrolment import EnrolAtLoginScreen
from strongroom.console.modals.invitation import AcceptInvitationScreen
from strongroom.console.widgets.key_footer import KeyFooter
from strongroom.console.widgets.plain import Plain
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, Static

CLIENT_NAME = "strongroom-console"


def client_info() -> dict:
    from strongroom.core.version import VERSION

    return {"host": socket.gethostname(), "ssh_connection": os.environ.get("SSH_CONNECTION"),
            "name": CLIENT_NAME, "version": VERSION}


def refusal_text(err: ClientError) -> str:
    if err.code == "unavailable":
        return f"Cannot reach the daemon: {err.message}"
    if err.code == "rate_limited":
        return f"Too many attempts: {err.message}"
    return err.message


class LoginScreen(Screen):
    BINDINGS = [Binding("ctrl+s", "submit", "Log in"), Binding("f2", "invitation", "First login (invitation)"),
                Binding("escape", "app.quit", "Quit")]

    class LoggedIn(Message):
        def __init__(self, token: str) -> None:
            super().__init__()
            self.token = token

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="login-box"):
            yield Plain("Strongroom — log in", classes="dialog-title")
            yield Input(placeholder="username", id="username")
            yield Input(placeholder="password", password=True, id="password")
            yield Input(placeholder="TOTP code (if enrolled)", id="totp", max_length=12)
            yield Button("Log in", variant="primary", id="login")
            yield Plain(self.message, id="login-message", classes="error" if self.message else "")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#username", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "username" and not self.query_one("#password", Input).value:
            self.query_one("#password", Input).focus()
            return
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username or not password:
            self.show("Enter a username and a password.", error=True)
            return
        self.login(username, password, self.query_one("#totp", Input).value.strip() or None)

    def show(self, text: str, *, error: bool) -> None:
        message = self.query_one("#login-message", Static)
        message.update(text)
        message.set_class(error, "error")

    @work(exclusive=True, group="login")
    async def login(self, username: str, password: str, totp: str | None) -> None:
        self.show("Logging in…", error=False)
        self.query_one("#login", Button).disabled = True
        try:
            result = await self.app.client.call("auth.login", {"username": username, "password": password,
                                                               "totp": totp, "client": client_info()},
                                                timeout=15)
        except ClientError as err:
            self.show(refusal_text(err), error=True)
            self.query_one("#password", Input).value = ""
            self.query_one("#totp", Input).value = ""
            self.query_one("#password", Input).focus()
        else:
            if result.get("enrolment_required"):
                self.enrol(result)
            else:
                self.post_message(self.LoggedIn(result["token"]))
        finally:
            self.query_one("#login", Button).disabled = False

    def action_invitation(self) -> None:
        """A new person's first login: the invitation they were given and a password of
        their own; then, where the role requires one, a second factor (as below)."""
        def done(result: dict | None) -> None:
            if result is None:
                return
            if result.get("enrolment_required"):
                self.enrol(result)
            else:
                self.post_message(self.LoggedIn(result["token"]))
        self.app.push_screen(AcceptInvitationScreen(client_info()), done)

    def enrol(self, offer: dict) -> None:
        """The password was right, but the account must first enrol a second factor."""
        self.show("Set up two-factor authentication to log in.", error=False)
        self.query_one("#password", Input).value = ""

        def done(session: dict | None) -> None:
            if session is None:
                self.show("Enrolment cancelled; nothing was stored. Log in again to start over.", error=True)
                self.query_one("#password", Input).focus()
            else:
                self.post_message(self.LoggedIn(session["token"]))
        self.app.push_screen(EnrolAtLoginScreen(offer["enrolment"], offer["message"], client_info()), done)
