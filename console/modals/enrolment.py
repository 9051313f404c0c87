"""A new TOTP secret, shown once (QR code, secret, otpauth URI) to the account holder at
login, when their role requires a second factor they do not have yet or an
administrator reset theirs (`EnrolAtLoginScreen`). Only the holder ever sees it: a reset
shows the administrator nothing. The console never stores the secret."""
from __future__ import annotations

from datetime import datetime

from strongroom.console.client import ClientError
from strongroom.console.widgets.key_footer import KeyFooter
from strongroom.console.widgets.plain import Plain
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static


class EnrolAtLoginScreen(ModalScreen[dict | None]):
    """The daemon's offer to enrol a second factor, and a code from the new authenticator
    to confirm it; dismisses with the new session (auth.enrol's reply), or None."""

    # One scrolling dialog, as tall as the terminal allows: at 80x24 the QR code is below
    # the fold (the secret and the code field are not); on a larger terminal all of it shows.
    DEFAULT_CSS = """
    #enrol-login { width: 76; height: auto; max-height: 100%; border: thick $primary;
                   background: $surface; padding: 0 1; }
    #enrol-login Input { width: 100%; }
    #enrol-login .hint { margin: 0 0 1 0; }
    #enrol-message { height: auto; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel (nothing is stored)")]

    def __init__(self, enrolment: dict, message: str, client: dict) -> None:
        super().__init__()
        self.enrolment = enrolment
        self.message = message
        self.client = client   # who is logging in from where, as auth.login was told

    def compose(self) -> ComposeResult:
        e = self.enrolment
        expires = datetime.fromisoformat(e["expires_at"]).strftime("%H:%M UTC")
        with VerticalScroll(id="enrol-login"):
            yield Plain(f"Set up two-factor authentication for {e['username']}", classes="dialog-title")
            yield Plain(f"{self.message}. Scan the QR code below (or type the secret) into the app, then "
                         f"enter the code it shows, before {expires}. Nothing is stored until the code is "
                         "right.", markup=False, id="enrol-why")
            yield Plain("enter: confirm · tab, ↑↓: scroll to the QR code · esc: cancel", classes="hint")
            yield Plain(f"secret: {e['secret']}\nURI: {e['uri']}", markup=False, id="enrol-text")
            yield Input(placeholder="6-digit code from the authenticator", id="enrol-code", max_length=12)
            yield Plain("", id="enrol-message")
            yield Plain(e["qr_text"], markup=False, id="enrol-qr")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#enrol-code", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        code = event.value.strip()
        if code:
            self.confirm(code)

    def show(self, text: str, *, error: bool) -> None:
        message = self.query_one("#enrol-message", Static)
        message.update(text)
        message.set_class(error, "error")

    @work(exclusive=True, group="enrol")
    async def confirm(self, code: str) -> None:
        self.show("Checking the code…", error=False)
        try:
            result = await self.app.client.call("auth.enrol", {"enrolment_token": self.enrolment["token"],
                                                               "totp": code, "client": self.client}, timeout=15)
        except ClientError as err:
            self.show(err.message, error=True)
            code_input = self.query_one("#enrol-code", Input)
            code_input.value = ""
            code_input.focus()
            return
        self.dismiss(result)
