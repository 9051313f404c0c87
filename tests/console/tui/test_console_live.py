"""The console against a real strongroomd: login, live overview, jobs, audit paging,
session revocation, and riding out a daemon restart. Bounded: every wait has a timeout."""
from __future__ import annotations

import pytest

from strongroom.console.tabs.audit import AuditTab
from strongroom.console.tabs.backups import BackupsTab
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.detail import DetailScreen
from strongroom.console.tabs.jobs import JobsTab
from strongroom.console.screens.login import LoginScreen
from strongroom.console.screens.main import SILENCE_SECONDS, MainScreen
from strongroom.console.tabs.security import SecurityTab
from strongroom.console.widgets.banner import ConnectionBanner
from strongroom.console.widgets.health_card import HealthCard
from strongroom.console.widgets.job_progress import JobProgress
from textual.widgets import DataTable, Input, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, log_in, showing, tab_keys, wait_for
from tests.console.tui.live import at_main_screen, choices, choose_kind, console
from tests.daemon.conftest import PASSWORD, DaemonProcess


def test_login_as_auditor_then_overview_fills_from_health_events(tui_daemon):
    drive(lambda: _login_then_overview(tui_daemon))


async def _login_then_overview(tui_daemon):
    app = console(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        assert isinstance(app.screen, LoginScreen)
        await log_in(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="main screen")
        role = app.screen.query_one("#card-role", HealthCard)
        await wait_for(pilot, lambda: "leader" in str(role.render()), what="role card")
        chain = app.screen.query_one("#card-chain", HealthCard)
        assert "not verified" in str(chain.render())
        assert "never run" in str(app.screen.query_one("#card-integrity", HealthCard).render())
        assert "no peers" in str(app.screen.query_one("#card-sync", HealthCard).render())
        assert "none" in str(app.screen.query_one("#card-conflicts", HealthCard).render())
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


def test_operator_runs_an_integrity_job_and_watches_it_succeed(tui_daemon):
    drive(lambda: _run_integrity(tui_daemon))


async def _run_integrity(tui_daemon):
    async with at_main_screen(tui_daemon, tab="jobs") as (app, pilot):
        await pilot.press("r")
        by_kind = {o.id: o for o in (await choices(pilot)).options}
        # Kinds that need a person's arguments are started from their own tabs.
        assert by_kind["export"].disabled and by_kind["restore"].disabled
        assert "Exports tab" in str(by_kind["export"].prompt)
        await choose_kind(pilot, "integrity")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        assert "integrity" in str(app.screen.query_one("#consequence", Static).render())
        await pilot.press("y")
        jobs = app.screen.query_one("#jobs", JobsTab)
        table = jobs.query_one(DataTable)

        def integrity_status() -> str | None:
            rows = [run for run in jobs.runs.values() if run["job_kind"] == "integrity"]
            return table.get_cell(rows[0]["id"], "status") if rows else None
        await wait_for(pilot, lambda: integrity_status() == "succeeded", what="integrity succeeded in the table")
        progress = list(app.screen.query(JobProgress))
        await wait_for(pilot, lambda: any(p.status == "succeeded" for p in app.screen.query(JobProgress)),
                       what="overview progress row reaching succeeded")
        assert progress[0].kind == "integrity"


def test_auditor_cannot_run_jobs_or_revoke_and_is_told_why(tui_daemon):
    drive(lambda: _auditor_disabled(tui_daemon))


async def _auditor_disabled(tui_daemon):
    async with at_main_screen(tui_daemon, user="auditor1", tab="jobs") as (app, pilot):
        note = app.screen.query_one("#jobs-note", Static)
        await wait_for(pilot, lambda: "auditor1 lacks job:<kind>:run" in str(note.render()), what="jobs note")
        assert app.screen.active_bindings["r"].enabled is False
        await pilot.press("r")
        assert isinstance(app.screen, MainScreen)  # no dialog opened
        await pilot.press(*tab_keys("security"))
        sessions_note = app.screen.query_one("#sessions-note", Static)
        await wait_for(pilot, lambda: "auditor1 lacks session:revoke" in str(sessions_note.render()),
                       what="sessions note")
        assert app.screen.active_bindings["x"].enabled is False


def test_audit_log_pages_by_keyset_and_filters(tui_daemon):
    seed_audit_rows(tui_daemon.data_dir, 130)
    drive(lambda: _audit_paging(tui_daemon))


def seed_audit_rows(data_dir, count: int) -> None:
    """The test (not the console) writes audit rows straight into the database."""
    from strongroom.core import audit
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction

    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            for i in range(count):
                audit.append(conn, actor="seeder" if i % 2 else "other", action="READ",
                             table_name="clients", record_id=f"r{i}")
    finally:
        ctx.close()


async def _audit_paging(tui_daemon):
    async with at_main_screen(tui_daemon, tab="audit") as (app, pilot):
        tab = app.screen.query_one("#audit", AuditTab)
        await wait_for(pilot, lambda: len(tab.entries) == 50, what="first page")
        first_page = sorted(map(int, tab.entries), reverse=True)
        await pilot.press("n")
        await wait_for(pilot, lambda: tab.entries and max(map(int, tab.entries)) < first_page[-1], what="page 2")
        second_page = sorted(map(int, tab.entries), reverse=True)
        assert second_page[0] == first_page[-1] - 1 and len(second_page) == 50
        assert "page 2" in str(tab.query_one("#audit-status", Static).render())
        await pilot.press("p")
        await wait_for(pilot, lambda: sorted(map(int, tab.entries), reverse=True)[:50] == first_page, what="back")
        # filter by actor: type into the bar, press enter
        await pilot.press("slash")
        await pilot.press(*"seeder", "enter")
        await wait_for(pilot, lambda: tab.entries and all(e["actor"] == "seeder" for e in tab.entries.values()),
                       what="filtered page")
        assert len(tab.entries) == 50
        await pilot.press("n")
        await wait_for(pilot, lambda: len(tab.entries) == 15, what="last filtered page (65 seeder rows)")
        assert app.screen.active_bindings["n"].enabled is False  # nothing older
        await pilot.press("enter")
        await wait_for(pilot, showing(app, DetailScreen), what="entry detail")
        await pilot.press("escape")
        await pilot.press("v")
        await wait_for(pilot, lambda: "chain: intact" in str(tab.query_one("#audit-status", Static).render()),
                       what="chain verified")


def test_operator_revokes_a_session_after_confirming(tui_daemon):
    login = tui_daemon.call("auth.login", {"username": "auditor1", "password": PASSWORD,
                                           "client": {"host": "ward-pc", "name": "strongroom-cli"}}, token=None)
    drive(lambda: _revoke(tui_daemon, login["session_id"]))
    active = tui_daemon.call("session.list")
    assert login["session_id"] not in {s["id"] for s in active}


async def _revoke(tui_daemon, session_id):
    async with at_main_screen(tui_daemon, tab="security") as (app, pilot):
        tab = app.screen.query_one("#security", SecurityTab)
        await wait_for(pilot, lambda: session_id in tab.sessions, what="session listed")
        await pilot.press("x")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        consequence = str(app.screen.query_one("#consequence", Static).render())
        assert "auditor1" in consequence and "ward-pc" in consequence and "logged out at once" in consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: session_id not in tab.sessions, what="session gone from the list")


def test_a_revoked_session_returns_the_console_to_login(tui_daemon):
    drive(lambda: _revoked_self(tui_daemon))


async def _revoked_self(tui_daemon):
    async with at_main_screen(tui_daemon, user="auditor1") as (app, pilot):
        session_id = app.screen.identity.session_id
        await in_thread(tui_daemon.call, "session.revoke", {"session_id": session_id})
        await wait_for(pilot, lambda: isinstance(app.screen, LoginScreen) and app.screen.query("#login-message"),
                       what="back at login")
        message = str(app.screen.query_one("#login-message", Static).render())
        assert "Session ended" in message


@pytest.mark.slow
def test_daemon_restart_shows_banner_then_recovers(tui_daemon, tmp_path):
    drive(lambda: _restart(tui_daemon, tmp_path), timeout=120)


async def _restart(tui_daemon, tmp_path):
    async with at_main_screen(tui_daemon, user="auditor1") as (app, pilot):
        banner = app.screen.query_one(ConnectionBanner)
        assert not banner.is_down
        await in_thread(tui_daemon.stop)
        # At once (the daemon's daemon.stopping event), not after the console's silence.
        await wait_for(pilot, lambda: banner.is_down, timeout=SILENCE_SECONDS - 1, what="reconnect banner")
        assert "reconnecting" in str(banner.render()) and "the daemon is stopping" in str(banner.render())
        status = app.screen.query_one("#statusline", Static)
        # The status line says so too, with the time the view last took live data.
        await wait_for(pilot, lambda: str(status.render()).startswith("○ disconnected · updated "),
                       what="the status line saying disconnected")
        assert status.has_class("-down")
        (tmp_path / "notify-d1.sock").unlink()
        again = DaemonProcess(tui_daemon.data_dir, tmp_path, name="d1")   # same runtime dir, same socket
        try:
            await in_thread(again.wait_ready)
            await wait_for(pilot, lambda: not banner.is_down, timeout=40, what="recovery")
            role = app.screen.query_one("#card-role", HealthCard)
            await wait_for(pilot, lambda: "leader" in str(role.render()), what="health after restart")
            await wait_for(pilot, lambda: str(status.render()).startswith("● live · updated "),
                           what="the status line live again")
            assert not status.has_class("-down")
            assert isinstance(app.screen, MainScreen)   # the session survived the restart
        finally:
            await in_thread(again.stop)


def test_lockout_after_failed_logins_refuses_even_the_right_password(tui_daemon):
    drive(lambda: _lockout(tui_daemon))


async def _lockout(tui_daemon):
    app = console(tui_daemon)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, password="wrong one")
        message = app.screen.query_one("#login-message", Static)
        for attempt in range(3):   # the test config locks after 3 failures
            await wait_for(pilot, lambda: "invalid username or password" in str(message.render()), what="refusal")
            message.update("")
            await pilot.click("#password")
            await pilot.press(*("wrong one" if attempt < 2 else PASSWORD), "enter")
        # Locked now: the right password gets the refusal an unknown username gets, so
        # the screen cannot tell an attacker which accounts exist.
        await wait_for(pilot, lambda: "invalid username or password" in str(message.render()), what="refusal")
        assert "auditor1" not in str(message.render())
        assert isinstance(app.screen, LoginScreen)


def test_operator_backs_up_and_verifies_the_snapshot(tui_daemon):
    drive(lambda: _backup_and_verify(tui_daemon), timeout=120)


async def _backup_and_verify(tui_daemon):
    async with at_main_screen(tui_daemon, tab="backups") as (app, pilot):
        tab = app.screen.query_one("#backups", BackupsTab)
        await pilot.press("b")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(s["status"] == "succeeded" for s in tab.snapshots.values()),
                       timeout=60, what="a succeeded snapshot listed")
        (snapshot,) = tab.snapshots.values()
        assert snapshot["proof"] == "written"
        await pilot.press("v")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        assert snapshot["id"] in str(app.screen.query_one("#consequence", Static).render())
        await pilot.press("y")
        await wait_for(pilot, lambda: tab.snapshots[snapshot["id"]]["proof"] == "verified", timeout=60,
                       what="proof raised to verified")
