"""Never stale: with no key pressed after login, a change made through another client
reaches the Compliance, Integrity and Audit tabs by the daemon's events."""
from __future__ import annotations

import re

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.main import MainScreen
from textual.widgets import DataTable, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, log_in, wait_for

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
    app = StrongroomConsole(tui_daemon.endpoint, tui_daemon.events_endpoint)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="main")
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
