"""Never stale: with no key pressed after login, a change made through another client
(a second control client, or the CLI working offline on the data directory) reaches the
Compliance, Integrity, Audit, Users, Retention and Exports tabs by the daemon's events."""
from __future__ import annotations

import re
import subprocess
import sys

from strongroom.console.tabs.exports import ExportsTab
from strongroom.console.tabs.retention import RetentionTab
from strongroom.console.tabs.users import UsersTab
from textual.widgets import DataTable, Static

from tests.console.tui.conftest import drive, in_thread, wait_for
from tests.console.tui.live import at_main_screen, settle

CHAIN_CHECK = "audit chain verified intact in the last 7 days"


def _mark(table: DataTable, name: str) -> str | None:
    for row in range(table.row_count):
        ok, _area, check = table.get_row_at(row)     # as drawn: list cells are Text, not markup
        if str(check) == name:
            return str(ok)
    return None


def test_another_clients_integrity_run_updates_compliance_integrity_and_audit(tui_daemon):
    drive(lambda: _other_client_run(tui_daemon), timeout=120)


async def _other_client_run(tui_daemon):
    async with at_main_screen(tui_daemon, user="auditor1") as (app, pilot):
        screen = app.screen
        checks = screen.query_one("#checks-table", DataTable)
        await wait_for(pilot, lambda: _mark(checks, CHAIN_CHECK) == "✗", what="the chain check failing")
        chain = screen.query_one("#integrity-chain", Static)
        await wait_for(pilot, lambda: "head #" in str(chain.render()), what="the integrity report")
        head_before = int(str(chain.render()).split("head #")[1].split()[0])
        summary = screen.query_one("#integrity-summary", Static)
        assert "No integrity run yet" in str(summary.render())
        audit = screen.query_one("#audit-table", DataTable)
        rows_before = audit.row_count
        status = screen.query_one("#statusline", Static)
        assert re.fullmatch(r"● live · updated \d\d:\d\d:\d\d", str(status.render()))
        screen.updated_at = None           # forget the last update: the run's events must set it again
        screen.show_status()
        assert str(status.render()) == "● live · updated never"

        run = await in_thread(tui_daemon.call, "job.run", {"kind": "integrity"})   # the operator, elsewhere

        await wait_for(pilot, lambda: "Last run: succeeded" in str(summary.render()), timeout=60,
                       what="Integrity showing the other client's run")
        await wait_for(pilot, lambda: int(str(chain.render()).split("head #")[1].split()[0]) > head_before,
                       what="the audit head advancing")
        await wait_for(pilot, lambda: _mark(checks, CHAIN_CHECK) == "✓", what="Compliance reloading by itself")
        await wait_for(pilot, lambda: audit.row_count > rows_before, what="Audit listing the new entries")
        assert re.fullmatch(r"● live · updated \d\d:\d\d:\d\d", str(status.render()))   # the events' time
        assert run["id"]

        def head() -> int:
            return int(str(chain.render()).split("head #")[1].split()[0])

        settled_head = head()
        await in_thread(tui_daemon.call, "user.lock", {"username": "clinician"})   # no job: one audit entry
        await wait_for(pilot, lambda: head() > settled_head, what="the head following a lock made elsewhere")
        assert app.screen is screen      # nothing was pressed: no dialog, no other screen


def _cli(data_dir, *args: str) -> str:
    """The `strongroom` command in a process of its own, as a sysadmin's shell runs it."""
    done = subprocess.run([sys.executable, "-m", "strongroom.console.cli", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _user_state(tab: UsersTab, username: str) -> str | None:
    table = tab.query_one("#users-table", DataTable)
    user_id = next((k for k, u in tab.users.items() if u["username"] == username), None)
    return None if user_id is None else str(table.get_cell(user_id, "state"))


def test_the_users_tab_follows_accounts_changed_by_another_client_and_by_the_cli(tui_daemon):
    drive(lambda: _users_changed_elsewhere(tui_daemon), timeout=120)


async def _users_changed_elsewhere(daemon):
    async with at_main_screen(daemon, tab="users") as (app, pilot):
        screen = app.screen
        tab = screen.query_one("#users", UsersTab)
        await wait_for(pilot, lambda: _user_state(tab, "clinician") == "ok", what="the accounts listed")

        await in_thread(daemon.call, "user.add", {"username": "newcomer", "role": "STAFF"})   # another console
        await wait_for(pilot, lambda: _user_state(tab, "newcomer") is not None, what="the new account listed")
        await in_thread(_cli, daemon.data_dir, "user", "lock", "clinician")     # offline, not through the daemon
        await wait_for(pilot, lambda: _user_state(tab, "clinician") == "locked", what="the lock shown")
        assert app.screen is screen      # nothing was pressed: no dialog, no other screen
        await settle(pilot)


def _policies(tab: RetentionTab) -> dict[str, tuple[str, ...]]:
    table = tab.query_one("#retention-policies", DataTable)
    return {str(table.get_row_at(n)[0]): tuple(str(c) for c in table.get_row_at(n)[1:])
            for n in range(table.row_count)}


def test_the_retention_tab_follows_a_policy_changed_by_another_client(tui_daemon):
    drive(lambda: _policy_changed_elsewhere(tui_daemon), timeout=120)


async def _policy_changed_elsewhere(daemon):
    async with at_main_screen(daemon, tab="retention") as (app, pilot):
        screen = app.screen
        tab = screen.query_one("#retention", RetentionTab)
        summary = tab.query_one("#retention-summary", Static)
        await wait_for(pilot, lambda: "active polic" in str(summary.render()), what="retention loaded")
        before = _policies(tab)

        await in_thread(daemon.call, "retention.policy.set",
                        {"table_name": "client_files", "archive_after_days": 4321, "delete_after_days": 5432})
        await wait_for(pilot, lambda: _policies(tab) != before and "client_files" in _policies(tab),
                       what="the policy listed")
        shown = " ".join(_policies(tab)["client_files"])
        assert "4321" in shown and "5432" in shown and "active" in shown
        assert app.screen is screen
        await settle(pilot)


def test_the_exports_tab_follows_an_export_run_by_another_client(demo_daemon):
    drive(lambda: _export_run_elsewhere(demo_daemon), timeout=120)


async def _export_run_elsewhere(daemon):
    async with at_main_screen(daemon, tab="exports") as (app, pilot):
        screen = app.screen
        tab = screen.query_one("#exports", ExportsTab)
        summary = tab.query_one("#exports-summary", Static)
        await wait_for(pilot, lambda: "No exports yet" in str(summary.render()), what="the empty history")

        run = await in_thread(daemon.call, "export.run", {"tables": ["clients"], "format": "csv"})
        await wait_for(pilot, lambda: (tab.exports and next(iter(tab.exports.values())).get("status")) == "succeeded",
                       timeout=60, what="the finished export listed")
        (listed,) = tab.exports.values()
        assert listed["row_count"] == 12 and str(summary.render()).startswith("1 export · ")
        assert run["id"]
        assert app.screen is screen
        await settle(pilot)
