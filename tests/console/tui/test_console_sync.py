"""The Sync tab against a real strongroomd over the demo's real second site (joined,
synced, edited on both sides, synced again), at 80x24: an operator without phi:read sees
PHI masked, chooses a version per field and applies after a confirmation; an auditor is
shown why every sync action is disabled."""
from __future__ import annotations

import pyotp

from strongroom.console.app import StrongroomConsole
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.screens.main import MainScreen
from textual.widgets import DataTable, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, open_tab
from tests.daemon.conftest import PASSWORD



def text_of(app, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def test_operator_resolves_a_conflict_seeing_phi_masked(sync_daemon):
    drive(lambda: _operator_resolves(sync_daemon))


async def _operator_resolves(daemon):
    first = daemon.seeded["conflicts"][0]
    expected = await in_thread(daemon.call, "sync.conflict.list")
    fields = expected[0]["fields"]
    (peer,) = await in_thread(daemon.call, "sync.peer.list")
    app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.screen.query("#username"), what="login form")
        await pilot.click("#username")
        await pilot.press(*"operator1", "enter", *PASSWORD)
        await pilot.click("#totp")
        await pilot.press(*pyotp.TOTP(daemon.seeded["operator_totp"]).now(), "enter")
        tab = await open_tab(pilot, "sync")
        queue = tab.query_one("#conflicts-table", DataTable)
        await wait_for(pilot, lambda: queue.row_count == 2, what="two open conflicts")
        assert "satellite" in text_of(app, "#sync-peers") and "2 open" in text_of(app, "#sync-peers")
        assert app.screen.active_bindings["a"].enabled is False        # nothing open yet

        queue.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: tab.conflict is not None and tab.conflict["id"] == first, what="conflict view")
        assert "PHI masked" in text_of(app, "#conflict-head")
        grid = tab.query_one("#fields-table", DataTable)
        assert grid.has_focus
        shown = {grid.get_row_at(i)[0].plain.strip("≠ ") for i in range(len(fields))}
        assert shown == set(fields)                                      # differing fields first
        phone = grid.get_row("phone")
        assert phone[2].plain.startswith("***-***-") and phone[3].plain.startswith("***-***-")
        assert app.screen.active_bindings["b"].enabled is tab.conflict["has_base"]

        for _ in fields:
            assert app.screen.active_bindings["a"].enabled is False
            await pilot.press("r")
        assert tab.choices == {name: "remote" for name in fields}
        assert grid.get_row("phone")[4].plain == "remote"

        # the fields the same on both sides are named, their values hidden until asked for
        assert grid.row_count > len(fields) and [c.plain for c in grid.get_row("ssn")[1:4]] == ["hidden"] * 3
        reads = len(await in_thread(daemon.call, "audit.tail", {"limit": 1000, "action": "READ"}))
        grid.move_cursor(row=grid.get_row_index("ssn"))
        await pilot.press("v")
        await wait_for(pilot, lambda: grid.get_row("ssn")[2].plain.startswith("***-**-"), what="ssn revealed, masked")
        assert [c.plain for c in grid.get_row("address")[1:4]] == ["hidden"] * 3
        assert len(await in_thread(daemon.call, "audit.tail", {"limit": 1000, "action": "READ"})) == reads
        assert app.screen.active_bindings["a"].enabled is True
        await pilot.press("a")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        consequence = text_of(app, "#consequence")
        assert "phone ← remote" in consequence and "never the values" in consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and queue.row_count == 1,
                       what="queue without the resolved conflict")
        assert first not in tab.rows and tab.conflict is None
        await pilot.pause(0.3)          # its sync.conflict event names nobody: known here as ours
        assert not [n for n in app._notifications if "resolved elsewhere" in str(n.message)]
        await wait_for(pilot, lambda: f"{peer['pending_changes'] + 1} to send" in text_of(app, "#sync-peers"),
                       what="lag shows the resolution waiting to go out")

        queue.focus()
        await pilot.press("f")                                           # open -> resolved
        await wait_for(pilot, lambda: list(tab.rows) == [first], what="the resolved filter")
        await pilot.press("enter")
        await wait_for(pilot, lambda: tab.conflict is not None and tab.conflict["id"] == first,
                       what="the resolved conflict")
        assert "resolved by user:operator1" in text_of(app, "#sync-note")
        assert grid.get_row("phone")[4].plain == "remote"                # what was chosen, kept
        for key in ("l", "r", "a"):
            assert app.screen.active_bindings[key].enabled is False
    resolved = await in_thread(daemon.call, "sync.conflict.list", {"status": "resolved"})
    assert [c["id"] for c in resolved] == [first] and resolved[0]["resolved_by"] == "user:operator1"


def test_auditor_sees_why_sync_actions_are_disabled(sync_daemon):
    drive(lambda: _auditor_disabled(sync_daemon))


async def _auditor_disabled(daemon):
    async with at_main_screen(daemon, user="auditor1") as (app, pilot):
        tab = await open_tab(pilot, "sync")
        await wait_for(pilot, lambda: "lacks sync:resolve" in text_of(app, "#conflict-head"), what="reason")
        assert "Peers hidden: user:auditor1 lacks config:read" in text_of(app, "#sync-peers")
        assert "resolve disabled: user:auditor1 lacks sync:resolve" in text_of(app, "#sync-note")
        for key in ("l", "r", "b", "a", "f"):
            assert app.screen.active_bindings[key].enabled is False
        await pilot.press("a")
        assert isinstance(app.screen, MainScreen) and tab.query_one("#conflicts-table", DataTable).row_count == 0


def test_a_resolution_elsewhere_refreshes_an_open_console(sync_daemon):
    drive(lambda: _refreshed_by_event(sync_daemon))


async def _refreshed_by_event(daemon):
    second = daemon.seeded["conflicts"][1]
    async with at_main_screen(daemon) as (app, pilot):
        tab = await open_tab(pilot, "sync")
        queue = tab.query_one("#conflicts-table", DataTable)
        await wait_for(pilot, lambda: queue.row_count == 2, what="two open conflicts")
        # The subscription reaches the publisher (events published before are not seen).
        await wait_for(pilot, lambda: app.screen.events_seen > 0, what="the event stream")
        detail = await in_thread(daemon.call, "sync.conflict.get", {"conflict_id": second})
        await in_thread(daemon.call, "sync.conflict.resolve", {"conflict_id": second,
                                                     "choices": {n: "local" for n in detail["fields"]}})
        await wait_for(pilot, lambda: queue.row_count == 1 and second not in tab.rows,
                       what="the queue refreshed from the sync.conflict event")


def tamper_at_satellite(daemon) -> str:
    """A client row at the satellite whose phone no longer opens under its key (one byte
    flipped, checksum recomputed, a new change version): the next pass must quarantine it."""
    from sqlalchemy import select, update

    from strongroom.core.datadir import open_data_dir
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client
    from strongroom.core.repository.changes import next_change_version, row_checksum

    clients = Client.__table__
    satellite = open_data_dir(daemon.data_dir.parent / "satellite")
    try:
        with transaction(satellite.engine) as conn:
            row = dict(conn.execute(select(clients).order_by(clients.c.id).limit(1)).mappings().one())
            blob = bytearray(row["phone_enc"])
            blob[-1] ^= 0x01
            row.update(phone_enc=bytes(blob), sync_version=next_change_version(conn))
            row["data_checksum"] = row_checksum(row)
            conn.execute(update(clients).where(clients.c.id == row["id"]).values(
                phone_enc=row["phone_enc"], sync_version=row["sync_version"], data_checksum=row["data_checksum"]))
    finally:
        satellite.close()
    return str(row["id"])


def test_sync_now_runs_a_pass_and_the_tampered_row_shows_in_the_quarantine(sync_daemon):
    drive(lambda: _sync_now_and_quarantine(sync_daemon))


async def _sync_now_and_quarantine(daemon):
    row_id = await in_thread(tamper_at_satellite, daemon)
    async with at_main_screen(daemon) as (app, pilot):
        tab = await open_tab(pilot, "sync")
        await wait_for(pilot, lambda: tab.peers and app.screen.active_bindings["s"].enabled,
                       what="sync now enabled once the peers are known")
        assert "0 quarantined" not in text_of(app, "#sync-peers")
        await pilot.press("s")                                   # one peer: no choice to make
        await wait_for(pilot, lambda: tab.query("#sync-running JobProgress"), what="the pass's progress row")
        await wait_for(pilot, lambda: "1 quarantined" in text_of(app, "#sync-peers"), timeout=60,
                       what="the pass ended and the peers reloaded")
        runs = await in_thread(daemon.call, "job.list", {"kind": "sync"})
        assert runs[0]["status"] == "succeeded" and runs[0]["params"]["peer"] == "satellite"

        queue = tab.query_one("#conflicts-table", DataTable)
        queue.focus()
        await pilot.press("f", "f", "f")                         # open -> resolved -> all -> quarantine
        quarantined = tab.query_one("#quarantine-table", DataTable)
        await wait_for(pilot, lambda: quarantined.row_count == 1, what="the quarantined row")
        assert not queue.display and quarantined.display and quarantined.has_focus
        assert "ciphertext_invalid" in text_of(app, "#conflict-head")
        assert row_id in text_of(app, "#quarantine-detail")
        for key in ("l", "r", "b", "a"):
            assert key not in app.screen.active_bindings or not app.screen.active_bindings[key].enabled
        await pilot.press("f")                                   # back to the open conflicts
        await wait_for(pilot, lambda: queue.display and queue.row_count == 2, what="the conflicts again")
