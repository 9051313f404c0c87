"""The Jobs tab against a real daemon. Cancelling a running job: the confirmation says
what happens, the run is shown cancelling then cancelled, and the daemon's job_runs row
ends cancelled part-way, with the work before the safe point kept. Each run's progress
is shown with the one unit its kind counts in, while it runs and once it has ended."""
from __future__ import annotations

import re

import pytest

from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.tabs.jobs import JobsTab
from textual.widgets import DataTable, Static

from tests.console.tui.conftest import drive, in_thread, seed_demo_data, showing, wait_for
from tests.console.tui.live import at_main_screen
from tests.daemon.conftest import running_daemon

# Key rotation re-encrypts one client per transaction and reaches a safe point after
# each: with this many clients it runs for tens of seconds, and a cancel lands mid-run.
CLIENTS = 8000


@pytest.fixture
def busy_daemon(tui_data_dir, tmp_path):
    seed_demo_data(tui_data_dir, clients=CLIENTS, sessions_per_client=0)
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


def test_operator_cancels_a_running_job_and_it_ends_cancelled(busy_daemon):
    drive(lambda: _cancel_running_job(busy_daemon), timeout=120)


async def _cancel_running_job(daemon):
    async with at_main_screen(daemon, tab="jobs") as (app, pilot):
        tab = app.screen.query_one("#jobs", JobsTab)
        table = tab.query_one(DataTable)
        run = await in_thread(daemon.call, "job.run", {"kind": "key_rotation"})
        run_id = run["id"]

        def cell(column: str) -> str | None:
            return str(table.get_cell(run_id, column)) if run_id in tab.runs else None
        await wait_for(pilot, lambda: cell("status") == "running" and cell("progress") not in ("—", "0"),
                       what="the run listed, running, with progress")
        assert re.fullmatch(r"[\d,]+ / 8,000 clients", cell("progress")), cell("progress")   # from its events
        table.focus()
        table.move_cursor(row=table.get_row_index(run_id))
        await pilot.press("c")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        consequence = str(app.screen.query_one("#consequence", Static).render())
        assert run_id in consequence and "stops at its next safe point and ends as cancelled" in consequence
        await pilot.press("y")

        seen: list[str] = []

        def ended() -> bool:
            status = cell("status")
            if status and (not seen or seen[-1] != status):
                seen.append(status)
            return status == "cancelled"
        await wait_for(pilot, ended, what="the run shown cancelled")
        assert set(seen) <= {"running", "cancelling", "cancelled"}, seen
        assert tab.cancelling == set()
    final = await in_thread(daemon.call, "job.get", {"run_id": run_id})
    assert final["status"] == "cancelled" and final["error"] == "cancelled at a safe point"
    assert 0 < final["progress_done"] < final["progress_total"] == CLIENTS      # stopped part-way
    entries = await in_thread(daemon.call, "audit.tail", {"limit": 20, "table_name": "job_runs"})
    assert any(e["record_id"] == run_id and e["outcome"] == "cancelled" for e in entries), entries


def test_each_run_shows_its_progress_with_its_unit(demo_daemon):
    drive(lambda: _units(demo_daemon), timeout=120)


async def _units(daemon):
    async with at_main_screen(daemon, tab="jobs") as (app, pilot):
        tab = app.screen.query_one("#jobs", JobsTab)
        table = tab.query_one(DataTable)
        integrity = (await in_thread(daemon.call, "job.run", {"kind": "integrity"}))["id"]
        backup = (await in_thread(daemon.call, "job.run", {"kind": "backup"}))["id"]

        def ended(run_id: str) -> bool:
            return run_id in tab.runs and str(table.get_cell(run_id, "status")) in ("succeeded", "failed")
        await wait_for(pilot, lambda: ended(integrity) and ended(backup), timeout=90, what="both runs ended")
        # Integrity counts the checks it ran (all nine); a backup counts bytes, in binary units.
        assert str(table.get_cell(integrity, "progress")) == "9 / 9 checks"
        shown = str(table.get_cell(backup, "progress"))
        assert re.fullmatch(r"[\d.]+( / [\d.]+)? (B|KiB|MiB|GiB)", shown), shown
