"""The console against a real strongroomd: login, live overview, jobs, audit paging,
session revocation, and riding out a daemon restart. Bounded: every wait has a timeout."""
from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input, Static

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.widgets.health_card import HealthCard
from tests.console.tui.conftest import SIZE, drive, log_in, wait_for

def console(daemon, token=None) -> StrongroomConsole:
    return StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)


def test_login_as_auditor_then_overview_fills_from_health_events(tui_daemon):
    drive(lambda: _login_then_overview(tui_daemon))


async def _login_then_overview(tui_daemon):
    app = console(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await log_in(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="main screen")
        role = app.screen.query_one("#card-role", HealthCard)
        await wait_for(pilot, lambda: "leader" in str(role.render()), what="role card")
        chain = app.screen.query_one("#card-chain", HealthCard)
        assert "not verified" in str(chain.render())
        assert "auditor1" in str(app.screen.query_one("#titlebar", Static).render())


def test_wrong_password_is_refused_with_the_daemons_words(tui_daemon):
    drive(lambda: _wrong_password(tui_daemon))


async def _wrong_password(tui_daemon):
    app = console(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, password="wrong password")
        message = app.screen.query_one("#login-message", Static)
        await wait_for(pilot, lambda: "invalid username or password" in str(message.render()), what="refusal")
        assert isinstance(app.screen, LoginScreen)
        assert app.screen.query_one("#password", Input).value == ""
