"""Invitations in the console: the one an administrator makes for a new person (shown
once, `InvitationShownScreen`) and the one a new person takes up at the login screen with
a password of their own (`AcceptInvitationScreen`, F2 there). The console never stores an
invitation; the daemon keeps none either (core/auth/invitation.py)."""
from __future__ import annotations

from datetime import datetime

from strongroom.console.client import ClientError
from strongroom.console.widgets.plain import Plain
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

DIALOG_CSS = """
.invitation-box { width: 78; height: auto; max-height: 100%; border: thick $primary;
                  background: $surface; padding: 0 1; }
.invitation-box Input { width: 100%; }
.invitation-box .hint { margin: 0 0 1 0; }
#invitation-token { height: auto; margin: 1 0; }
#accept-message { height: auto; }
"""


class InvitationShownScreen(ModalScreen[None]):
    """A new account's invitation, shown this once, with how the person uses it."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("y", "copy", "Copy invitation")]

    def __init__(self, made: dict) -> None:
        super().__init__()
        self.made = made

    def compose(self) -> ComposeResult:
        user, expires = self.made["user"], datetime.fromisoformat(self.made["expires_at"])
        with Vertical(classes="invitation-box"):
            yield Plain(f"Invitation for {user['username']} ({user['role']})", classes="dialog-title")
            yield Plain("Hand this to the person (in person or over the practice's secure channel). "
                         "At the login screen they press F2, paste it and choose their own password; "
                         "a role that requires a second factor enrols one next. It works once, until "
                         f"{expires:%Y-%m-%d %H:%M} UTC, and is shown only now.", classes="hint")
            yield Plain(self.made["invitation"], markup=False, id="invitation-token")
            yield Plain("y: copy · esc: close", classes="hint")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.made["invitation"])
        self.notify("Invitation copied to the clipboard.")


class AcceptInvitationScreen(ModalScreen[dict | None]):
    """The invitation and a password chosen twice; dismisses with auth.invitation.accept's
    answer (a session, or `enrolment_required`), or None when cancelled. A refusal is
    shown here and keeps the invitation typed."""

    DEFAULT_CSS = DIALOG_CSS
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Set password")]

    def __init__(self, client: dict) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        with Vertical(classes="invitation-box"):
            yield Plain("First login: set your password", classes="dialog-title")
            yield Plain("Paste the invitation you were given, then choose a password of your own.",
                         classes="hint")
            yield Input(placeholder="invitation", id="accept-invitation", password=True)
            yield Input(placeholder="your new password", password=True, id="accept-password")
            yield Input(placeholder="the same password again", password=True, id="accept-repeat")
            yield Button("Set password and log in", variant="primary", id="accept")
            yield Plain("", id="accept-message")

    def on_mount(self) -> None:
        self.query_one("#accept-invitation", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        following = {"accept-invitation": "#accept-password", "accept-password": "#accept-repeat"}
        if event.input.id in following and not self.query_one(following[event.input.id], Input).value:
            self.query_one(following[event.input.id], Input).focus()
            return
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_submit()

    def say(self, text: str, *, error: bool = True) -> None:
        message = self.query_one("#accept-message", Static)
        message.update(text)
        message.set_class(error, "error")

    def action_submit(self) -> None:
        invitation = self.query_one("#accept-invitation", Input).value.strip()
        password = self.query_one("#accept-password", Input).value
        if not invitation or not password:
            self.say("Paste the invitation and choose a password.")
            return
        if password != self.query_one("#accept-repeat", Input).value:
            self.say("The two passwords differ; type the same one twice.")
            self.query_one("#accept-repeat", Input).value = ""
            self.query_one("#accept-repeat", Input).focus()
            return
        self.accept(invitation, password)

    @work(exclusive=True, group="accept-invitation")
    async def accept(self, invitation: str, password: str) -> None:
        self.say("Setting your password…", error=False)
        self.query_one("#accept", Button).disabled = True
        try:
            result = await self.app.client.call("auth.invitation.accept", {
                "invitation": invitation, "password": password, "client": self.client}, timeout=15)
        except ClientError as err:
            self.say(err.message)
            for field in ("#accept-password", "#accept-repeat"):
                self.query_one(field, Input).value = ""
            self.query_one("#accept-password", Input).focus()
        else:
            self.dismiss(result)
        finally:
            if self.is_attached:
                self.query_one("#accept", Button).disabled = False
