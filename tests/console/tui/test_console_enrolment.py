"""Enrolling a second factor at login, in the console against a real daemon at 80x24: an
admin without one is shown the new secret and its otpauth URI, can back out with nothing
stored, and after a wrong code and a right one is logged in and enrolled."""
from __future__ import annotations

import pyotp
import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.client import ClientError
from strongroom.console.modals.enrolment import EnrolAtLoginScreen
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import MainScreen
from textual.widgets import Input, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, log_in, showing, wait_for
from tests.daemon.conftest import PASSWORD, add_unenrolled_admin, running_daemon


@pytest.fixture
def daemon(tui_data_dir, tmp_path):
    add_unenrolled_admin(tui_data_dir, "newadmin")
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def offered(app):
    """The enrolment dialog is up and composed."""
    return showing(app, EnrolAtLoginScreen)


def code_field_focused(app):
    return lambda: offered(app)() and app.screen.query_one("#enrol-code", Input).has_focus


def test_admin_without_a_second_factor_enrols_at_login(daemon):
    drive(lambda: _enrol_at_login(daemon))


async def _enrol_at_login(daemon):
    app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "newadmin")
        await wait_for(pilot, offered(app), what="the enrolment offer")
        first = app.screen.enrolment["secret"]
        assert "Set up two-factor authentication for newadmin" in text_of(app, ".dialog-title")
        assert "requires two-factor authentication" in text_of(app, "#enrol-why")
        shown = text_of(app, "#enrol-text").replace("\n", "")
        assert f"secret: {first}" in shown and "otpauth://totp/Strongroom:newadmin?" in shown
        assert text_of(app, "#enrol-qr").strip()
        await wait_for(pilot, code_field_focused(app), what="the code field focused")

        await pilot.press("escape")                                     # backing out stores nothing
        await wait_for(pilot, showing(app, LoginScreen), what="back at login")
        assert "Enrolment cancelled; nothing was stored" in text_of(app, "#login-message")
        again = await in_thread(lambda: daemon.call("auth.login", {"username": "newadmin", "password": PASSWORD},
                                                    token=None))
        assert again["enrolment_required"] is True

        app.screen.query_one("#username", Input).value = ""
        await log_in(pilot, "newadmin")
        await wait_for(pilot, offered(app), what="a new offer")
        secret = app.screen.enrolment["secret"]
        assert secret != first
        await wait_for(pilot, code_field_focused(app), what="the code field focused")
        totp = pyotp.TOTP(secret)
        await pilot.press(*("000000" if totp.now() != "000000" else "111111"), "enter")
        await wait_for(pilot, lambda: "invalid TOTP code" in text_of(app, "#enrol-message"), what="the refusal")
        assert isinstance(app.screen, EnrolAtLoginScreen) and app.screen.query_one("#enrol-code", Input).value == ""
        await pilot.press(*totp.now(), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                       what="logged in")
        assert app.screen.identity.actor == "user:newadmin"

    with pytest.raises(ClientError, match="TOTP code is required"):          # enrolled from now on
        await in_thread(lambda: daemon.call("auth.login", {"username": "newadmin", "password": PASSWORD},
                                            token=None))
    assert secret not in daemon.log()
