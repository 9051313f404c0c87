"""Shows a new TOTP enrolment once (QR code and secret) after a 2FA reset; never stored."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class EnrolmentScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,enter", "dismiss(None)", "Close")]

    def __init__(self, username: str, enrolment: dict) -> None:
        super().__init__()
        self.username = username
        self.enrolment = enrolment

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Static(f"New authenticator for {self.username} (shown once)", classes="dialog-title")
            with VerticalScroll():
                yield Static(self.enrolment.get("qr_text") or "", markup=False, id="enrol-qr")
                yield Static(f"secret (manual entry): {self.enrolment.get('secret')}\n"
                             f"otpauth URI: {self.enrolment.get('uri')}\n\n"
                             f"Hand this to {self.username} in person. Their old authenticator no longer "
                             "works; at their next login they need a code from this one. It cannot be "
                             "shown again: closing this dialog forgets it.", markup=False, id="enrol-text")
            yield Static("esc: close and forget", classes="hint")
