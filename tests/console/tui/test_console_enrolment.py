"""Enrolling a second factor at login, in the console against a real daemon at 80x24: an
admin without one is shown the new secret and its otpauth URI, can back out with nothing
stored, and after a wrong code and a right one is logged in and enrolled; an invited
practice admin sets a password, enrols, and logs in again with password and code."""
from __future__ import annotations

import time

import pyotp
import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.client import ClientError
from strongroom.console.modals.enrolment import EnrolAtLoginScreen
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.users import UsersTab
from textual.widgets import Input, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, log_in, showing, wait_for
from tests.console.tui.live import (accept_invitation, admin_token, at_main_screen, console, invitation_taken_down,
                                    new_user_form, settle)
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


@pytest.mark.slow
def test_an_invited_practice_admin_sets_a_password_enrols_totp_and_logs_in_with_a_code(tui_daemon):
    """End to end through the real daemon: an admin adds a practice admin (a role that
    requires a second factor) from the Users tab and is shown the invitation once; the
    new person takes it up at the login screen (F2) with a password of their own, is
    shown the secret and its otpauth URI, enrols with a code computed from the secret,
    and is in. Logging in again takes the password and a code: the code used to enrol is
    refused as already used, the next one lets them in."""
    token = admin_token(tui_daemon)
    made: dict = {}
    drive(lambda: _invite(tui_daemon, token, made))
    enrolled: dict = {}
    drive(lambda: _first_login_with_enrolment(tui_daemon, made["invitation"], enrolled))
    drive(lambda: _log_in_with_a_code(tui_daemon, enrolled))
    newlead = next(u for u in tui_daemon.call("user.list") if u["username"] == "newlead")
    assert newlead["role"] == "ADMIN" and newlead["last_login_at"]
    assert enrolled["secret"] not in tui_daemon.log() and NEW_PASSWORD not in tui_daemon.log()


NEW_PASSWORD = "a passphrase of my own 42"


async def _invite(daemon, token, made: dict) -> None:
    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        await new_user_form(pilot, app, tab, "ADMIN")
        app.screen.query_one("#username", Input).value = "newlead"
        app.screen.query_one("#full_name", Input).value = "New Lead"
        await pilot.press("ctrl+s")
        made.update(await invitation_taken_down(pilot, app, tab, "newlead"))
        await settle(pilot)


async def _first_login_with_enrolment(daemon, invitation: str, enrolled: dict) -> None:
    app = console(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await accept_invitation(pilot, app, invitation, NEW_PASSWORD)
        await wait_for(pilot, offered(app), what="the enrolment offer")
        assert "Set up two-factor authentication for newlead" in text_of(app, ".dialog-title")
        secret = app.screen.enrolment["secret"]
        shown = text_of(app, "#enrol-text").replace("\n", "")
        assert f"secret: {secret}" in shown and "otpauth://totp/Strongroom:newlead?" in shown
        await wait_for(pilot, code_field_focused(app), what="the code field focused")
        code = pyotp.TOTP(secret).now()
        await pilot.press(*code, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                       what="logged in after enrolling")
        assert app.screen.identity.actor == "user:newlead"
        enrolled.update(secret=secret, code=code)
        await settle(pilot)


async def _log_in_with_a_code(daemon, enrolled: dict) -> None:
    app = console(daemon)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query("#username"), what="the login form")
        app.screen.query_one("#totp", Input).value = enrolled["code"]          # the one used to enrol
        await log_in(pilot, "newlead", NEW_PASSWORD)
        await wait_for(pilot, lambda: "already used" in text_of(app, "#login-message"), what="the replay refused")
        assert isinstance(app.screen, LoginScreen)
        app.screen.query_one("#username", Input).value = ""
        app.screen.query_one("#totp", Input).value = pyotp.TOTP(enrolled["secret"]).at(time.time() + 30)
        await log_in(pilot, "newlead", NEW_PASSWORD)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                       what="logged in with password and code")
        assert app.screen.identity.actor == "user:newlead"
        await settle(pilot)
