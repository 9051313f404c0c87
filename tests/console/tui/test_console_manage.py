"""The Users, Integrity and Backups tabs against a real strongroomd with demo data:
lock and unlock an account, run the integrity checks and watch them finish, verify and
drill a snapshot, and a run that fails shown failed and stopped. Bounded: every wait has a timeout."""
from __future__ import annotations

from strongroom.console.tabs.backups import BackupsTab
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen
from strongroom.console.tabs.integrity import IntegrityTab
from strongroom.console.tabs.jobs import JobsTab
from strongroom.console.screens.main import MainScreen
from strongroom.console.modals.typed_confirm import TypedConfirmScreen
from strongroom.console.tabs.users import UsersTab
from strongroom.console.widgets.job_progress import JobProgress
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static
from textual.widgets._progress_bar import Bar

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import admin_token, at_main_screen, select_user, settle



def state_of(tab: UsersTab, username: str) -> str:
    table = tab.query_one("#users-table", DataTable)
    user_id = next(k for k, u in tab.users.items() if u["username"] == username)
    return str(table.get_cell(user_id, "state"))


def test_operator_locks_then_unlocks_a_user(demo_daemon):
    drive(lambda: _lock_unlock(demo_daemon))
    clinician = next(u for u in demo_daemon.call("user.list") if u["username"] == "clinician")
    assert clinician["locked_until"] is None
    types = [e["event_type"] for e in demo_daemon.call("security.event.list", {"limit": 20})]
    assert "user_locked" in types and "user_unlocked" in types


async def _lock_unlock(daemon):
    async with at_main_screen(daemon, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        await select_user(pilot, tab, "clinician")
        assert app.screen.active_bindings["u"].enabled is False     # not locked: nothing to unlock
        await pilot.press("l")
        await wait_for(pilot, showing(app, ConfirmScreen), what="lock confirmation")
        consequence = str(app.screen.query_one("#consequence", Static).render())
        assert "clinician" in consequence and "session" in consequence and "unlocks" in consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: state_of(tab, "clinician") == "locked", what="clinician shown locked")
        locked = next(u for u in await in_thread(daemon.call, "user.list") if u["username"] == "clinician")
        assert locked["locked_until"].startswith("9999")
        await select_user(pilot, tab, "clinician")
        await wait_for(pilot, lambda: app.screen.active_bindings["u"].enabled, what="unlock enabled")
        await pilot.press("u")
        await wait_for(pilot, showing(app, ConfirmScreen), what="unlock confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: state_of(tab, "clinician") == "ok", what="clinician shown unlocked")
        await settle(pilot)


def test_admin_cannot_lock_themselves_grants_and_resets_2fa(demo_daemon):
    token = admin_token(demo_daemon)
    drive(lambda: _admin_session(demo_daemon, token))
    grants = demo_daemon.call("user.grant.list", {"username": "clinician"})
    assert [g["permission"] for g in grants] == ["audit:read"]


async def _admin_session(daemon, token):
    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        await select_user(pilot, tab, "boss")
        await wait_for(pilot, lambda: app.screen.active_bindings["l"].enabled is False, what="self-lock disabled")
        note = tab.query_one("#users-note", Static)
        await wait_for(pilot, lambda: "you cannot lock your own account" in str(note.render()), what="reason shown")
        await pilot.press("l")
        assert isinstance(app.screen, MainScreen)   # no dialog
        # a grant for the clinician, with an expiry
        await select_user(pilot, tab, "clinician")
        await wait_for(pilot, lambda: app.screen.active_bindings["g"].enabled, what="grant enabled")
        await pilot.press("g")
        await wait_for(pilot, showing(app, FormScreen), what="grant form")
        await pilot.press(*"audit:read", "enter", *"8h", "enter", *"case review", "enter")
        label = tab.query_one("#grants-label", Label)
        await wait_for(pilot, lambda: "1 active" in str(label.render()), what="grant listed")
        grants = tab.query_one("#grants-table", DataTable)
        (grant_id,) = tab.grants
        assert str(grants.get_cell(grant_id, "state")) == "active"
        # 2FA reset of the practitioner shows the admin no secret: the owner enrols at next login
        await pilot.press("f")
        await wait_for(pilot, showing(app, ConfirmScreen), what="reset confirmation")
        consequence = str(app.screen.query_one("#consequence", Static).render())
        assert "authenticator stops working" in consequence and "next login" in consequence
        await pilot.press("y")
        await wait_for(pilot, showing(app, MainScreen), what="back on the tab")
        table = tab.query_one("#users-table", DataTable)
        row = next(k for k, u in tab.users.items() if u["username"] == "clinician")
        await wait_for(pilot, lambda: str(table.get_cell(row, "totp")) == "new", what="pending enrolment shown")
        shown = " ".join(str(n.message) for n in app._notifications) + str(app.screen.render())
        assert "otpauth" not in shown and "secret:" not in shown
        await settle(pilot)


def test_auditor_sees_user_actions_disabled_with_the_reason(tui_daemon):
    drive(lambda: _auditor_users(tui_daemon))


async def _auditor_users(daemon):
    async with at_main_screen(daemon, user="auditor1", tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        note = tab.query_one("#users-note", Static)
        await wait_for(pilot, lambda: "auditor1 lacks user:manage" in str(note.render()), what="reason shown")
        await wait_for(pilot, lambda: "l" in app.screen.active_bindings, what="the Users tab's keys active")
        for key in ("l", "u", "f", "o", "g", "x"):
            assert app.screen.active_bindings[key].enabled is False, key
        await pilot.press("l")
        assert isinstance(app.screen, MainScreen)
        await settle(pilot)


def test_integrity_run_now_reaches_done_and_shows_its_checks(demo_daemon):
    drive(lambda: _integrity(demo_daemon))


async def _integrity(daemon):
    async with at_main_screen(daemon, tab="integrity") as (app, pilot):
        tab = app.screen.query_one("#integrity", IntegrityTab)
        summary = tab.query_one("#integrity-summary", Static)
        await wait_for(pilot, lambda: "No integrity run yet" in str(summary.render()), what="empty report")
        await pilot.press("r")
        await wait_for(pilot, lambda: any(p.status == "succeeded" for p in tab.query(JobProgress)), timeout=60,
                       what="progress row reaching succeeded")
        await wait_for(pilot, lambda: "Last run: succeeded" in str(summary.render()), what="report reloaded")
        table = tab.query_one(DataTable)
        names = [c["name"] for c in tab.checks.values()]
        assert "audit chain" in names and "clients row checksums" in names
        statuses = {c["name"]: str(table.get_cell(key, "status")) for key, c in tab.checks.items()}
        assert set(statuses.values()) <= {"ok", "warn"} and statuses["clients row checksums"] == "ok"
        clients = next(c for c in tab.checks.values() if c["name"] == "clients row checksums")
        assert clients["evidence"]["checked"] == 12     # the demo clients, each re-hashed
        assert "intact" in str(tab.query_one("#integrity-chain", Static).render())
        await settle(pilot)


def test_backups_tab_fast_verify_drill_and_restore_with_live_progress(demo_daemon, tmp_path):
    drive(lambda: _backups(demo_daemon, tmp_path / "restored.db"), timeout=180)


async def _backups(daemon, restored):
    async with at_main_screen(daemon, tab="backups") as (app, pilot):
        tab = app.screen.query_one("#backups", BackupsTab)
        await pilot.press("b")
        await wait_for(pilot, showing(app, ConfirmScreen), what="backup confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: any(s["status"] == "succeeded" for s in tab.snapshots.values()),
                       timeout=60, what="a succeeded snapshot listed")
        (snapshot,) = tab.snapshots.values()

        def finished(kind: str) -> bool:
            return any(p.kind == kind and p.status == "succeeded" for p in tab.query(JobProgress))
        assert finished("backup")
        await pilot.press("f")
        await wait_for(pilot, showing(app, ConfirmScreen), what="fast verify confirmation")
        assert "Nothing is downloaded" in str(app.screen.query_one("#consequence", Static).render())
        await pilot.press("y")
        await wait_for(pilot, lambda: finished("verify"), timeout=60, what="fast verify succeeded")
        runs = await in_thread(daemon.call, "job.list", {"kind": "verify"})
        assert runs[0]["params"] == {"snapshot_id": snapshot["id"], "read_data": False, "configuration": None}
        assert tab.snapshots[snapshot["id"]]["proof"] == "written"   # fast verify proves presence only
        await pilot.press("d")
        await wait_for(pilot, showing(app, ConfirmScreen), what="drill confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: tab.snapshots[snapshot["id"]]["proof"] == "drilled", timeout=90,
                       what="proof raised to drilled")
        await wait_for(pilot, lambda: finished("restore_drill"), what="drill progress row succeeded")

        await pilot.press("R")
        await wait_for(pilot, showing(app, TypedConfirmScreen), what="restore dialog")
        dialog = app.screen
        dest = dialog.query_one("#dest", Input)
        assert dest.has_focus                                       # the target first, then the word
        dest.value = "sqlite//forgot-the-colon.db"
        assert dialog.query_one("#yes", Button).disabled            # not before the id is typed
        dialog.query_one("#typed", Input).value = snapshot["id"][:8]
        await pilot.pause()
        assert not dialog.query_one("#yes", Button).disabled
        await pilot.click("#yes")                                   # refused at once, by name, in the dialog
        error = dialog.query_one("#typed-error", Static)
        await wait_for(pilot, lambda: "dest (the target database) is not a database URL" in str(error.render()),
                       what="the refusal shown in the dialog")
        assert app.screen is dialog and dialog.query_one("#typed", Input).value == snapshot["id"][:8]
        assert await in_thread(daemon.call, "job.list", {"kind": "restore"}) == []     # nothing queued
        dest.value = f"sqlite:///{restored}"
        dialog.query_one("#typed", Input).focus()
        await pilot.press("enter")                                  # the keyboard way to confirm
        await wait_for(pilot, lambda: finished("restore"), timeout=90, what="restore progress row succeeded")
        runs = await in_thread(daemon.call, "job.list", {"kind": "restore"})
        assert runs[0]["status"] == "succeeded" and runs[0]["result"]["rows"] > 12
        assert restored.exists()
        await settle(pilot)


def test_a_failed_run_started_elsewhere_says_failed_and_stops(tui_daemon):
    drive(lambda: _failed_run(tui_daemon), timeout=120)


async def _failed_run(daemon):
    async with at_main_screen(daemon, tab="backups") as (app, pilot):
        tab = app.screen.query_one("#backups", BackupsTab)
        # A snapshot that is not in the repository: the run fails at once.
        run = await in_thread(daemon.call, "job.run", {"kind": "verify", "params": {
            "snapshot_id": "0190a000-0000-7000-8000-000000000bad"}})
        row_id = f"#run-{run['id']}"
        # The row records the end at once and draws it once mounted: wait for the drawing.
        await wait_for(pilot, lambda: tab.query(row_id) and tab.query_one(row_id, JobProgress).has_class("-failed"),
                       what="the run drawn failed")
        row = tab.query_one(row_id, JobProgress)
        message = str(row.query_one(".message", Label).render())
        assert row.status == "failed" and message.startswith("✗ failed")
        bar = row.query_one(ProgressBar).query_one(Bar)
        await pilot.pause(0.3)
        assert bar.auto_refresh is None and bar.percentage is not None     # stopped: no pulse, no animation
        first = [str(w.render()) for w in row.query(Label)]
        await pilot.pause(0.5)
        assert [str(w.render()) for w in row.query(Label)] == first

        jobs = app.screen.query_one("#jobs", JobsTab)
        await wait_for(pilot, lambda: jobs.runs.get(run["id"], {}).get("status") == "failed",
                       what="the Jobs tab listing the run failed")
        await settle(pilot)
