"""The Sync tab's layout at 80x24 and 120x40: peers with lag and a failing one with its
last error, the queue, one conflict opened side by side with PHI masked (an operator
without phi:read) and one field chosen; and the quarantine view. Fixed answers stand in
for the daemon, as in test_console_snapshots."""
from __future__ import annotations

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.main import MainScreen
from textual.widgets import DataTable

from tests.console.tui.conftest import settled, tab_keys, wait_for
from tests.console.tui.fixed import FIXED, FixedClient, fixed_clock

CONFLICT = "01a2061f-77c9-7000-a71a-000000000c01"
ROW = "01a2061f-77c9-7000-a71a-0000000000a1"


def masked_field(name, base, local, remote, *, differs, changed=None, phi=True) -> dict:
    return {"name": name, "phi": phi, "differs": differs, "changed": changed, "base": base, "local": local,
            "remote": remote, "absent": [], "unreadable": [], "chosen": None}


SYNC_FIXED = {
    "status": {**FIXED["status"], "job_kinds": [*FIXED["status"]["job_kinds"], "sync"]},
    "whoami": {"actor": "user:operator1", "permissions": ["config:read", "sync:resolve", "job:*:run"],
               "session_id": "01a2061f-0000-7000-8000-000000000002"},
    "sync.status.get": {"open_conflicts": 3, "quarantined": 2, "max_lag_minutes": 1440, "clock_skew_seconds": 5.0,
                    "peers": [
        {"id": "p1", "name": "central", "direction": "both", "is_active": True, "inbound": False,
         "lag_seconds": 7512.0, "pending_rows": 4, "open_conflicts": 3, "quarantined": 2, "failures": 0,
         "last_error": None, "next_attempt_at": None, "lagging": False, "skew_exceeded": False},
        {"id": "p2", "name": "laptop-7", "direction": "pull", "is_active": True, "inbound": False,
         "lag_seconds": None, "pending_rows": None, "open_conflicts": 0, "quarantined": 0, "failures": 3,
         "last_error": "database error talking to the peer (OperationalError)",
         "next_attempt_at": "2026-11-23T04:20:00+00:00", "lagging": True, "skew_exceeded": False}]},
    "sync.quarantine.list": [
        {"id": "q1", "peer": "central", "table": "clients", "row_id": "01a2061f-77c9-7000-a71a-0000000000b7",
         "reason": "ciphertext_invalid", "status": "open", "received_at": "2026-11-23T03:50:02+00:00",
         "detail": "clients.phone does not open under its row's key and identity (tampered, or moved from "
                   "another row)"},
        {"id": "q2", "peer": "central", "table": "therapy_sessions",
         "row_id": "01a2061f-77c9-7000-a71a-0000000000c3", "reason": "checksum_mismatch", "status": "open",
         "received_at": "2026-11-23T03:50:03+00:00",
         "detail": "therapy_sessions row's checksum does not match its content"}],
    "sync.conflict.list": [
        {"id": CONFLICT, "peer": "central", "table": "clients", "row_id": ROW, "status": "open",
         "created_at": "2026-11-23T03:51:56+00:00", "fields": ["email", "phone", "status"], "has_base": True},
        {"id": "c2", "peer": "central", "table": "clients", "row_id": "r2", "status": "open",
         "created_at": "2026-11-23T03:52:10+00:00", "fields": ["last_name", "address"], "has_base": False},
        {"id": "c3", "peer": "central", "table": "therapy_sessions", "row_id": "r3", "status": "open",
         "created_at": "2026-11-23T03:52:11+00:00", "fields": ["duration_minutes", "notes", "payment_status"],
         "has_base": True}],
    "sync.conflict.get": {
        "id": CONFLICT, "peer": "central", "table": "clients", "row_id": ROW, "status": "open",
        "created_at": "2026-11-23T03:51:56+00:00", "fields": ["email", "phone", "status"], "has_base": True,
        "masked": True, "resolved_by": None, "resolved_at": None,
        # only the differing fields carry values; the rest are named (sync.conflict.field opens one)
        "field_values": [
            masked_field("email", "av***@example.org", "av***@example.org", "av***@example.org",
                         differs=True, changed="local"),
            masked_field("phone", "***-***-0142", "***-***-0100", "***-***-0177", differs=True, changed="both"),
            masked_field("status", "ACTIVE", "ACTIVE", "INACTIVE", differs=True, changed="remote", phi=False),
        ],
        "other_fields": [{"name": name, "phi": name != "intake_date"} for name in (
            "first_name", "last_name", "date_of_birth", "ssn", "address", "medical_history", "intake_date")]},
}
# What sync.conflict.field answers for a field the same on both sides (masked: the
# operator lacks phi:read).
REVEALED = {"ssn": "***-**-5678", "first_name": "A***", "intake_date": "2024-03-01"}


class SyncFixedClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd == "sync.conflict.field.get":
            name = args["field"]
            value = REVEALED.get(name)
            return {"id": args["conflict_id"], "table": "clients", "row_id": ROW, "masked": True,
                    "field": masked_field(name, value, value, value, differs=False, phi=name != "intake_date")}
        if cmd in SYNC_FIXED:
            return SYNC_FIXED[cmd]
        return await super().call(cmd, args, timeout=timeout)


async def conflict_open_one_chosen(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(*tab_keys("sync"))
    tab = app.screen.query_one("#sync")
    queue = tab.query_one("#conflicts-table", DataTable)
    await wait_for(pilot, lambda: queue.row_count == 3, what="queue.row_count == 3")
    queue.focus()
    await pilot.press("enter")
    await wait_for(pilot, lambda: tab.conflict is not None, what="tab.conflict is not None")
    await pilot.press("l")          # email: keep the local correction; the cursor moves on to phone
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_sync_tab_layout(snap_compare, size):
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=SyncFixedClient("fixed-token"))
    assert snap_compare(app, terminal_size=size, run_before=conflict_open_one_chosen)


async def quarantine_shown(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(*tab_keys("sync"))
    tab = app.screen.query_one("#sync")
    await wait_for(pilot, lambda: tab.query_one("#conflicts-table", DataTable).row_count == 3, what="the queue")
    tab.query_one("#conflicts-table", DataTable).focus()
    await pilot.press("f", "f", "f")            # open -> resolved -> all -> quarantine
    quarantined = tab.query_one("#quarantine-table", DataTable)
    await wait_for(pilot, lambda: quarantined.row_count == 2, what="two quarantined rows")
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24)], ids=["80x24"])
def test_sync_tab_quarantine_layout(snap_compare, size):
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=SyncFixedClient("fixed-token"))
    assert snap_compare(app, terminal_size=size, run_before=quarantine_shown)



class RecordingClient(SyncFixedClient):
    """Records what the console asks to run; answers job.run with a queued run."""

    def __init__(self, token):
        super().__init__(token)
        self.runs: list[dict] = []

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd == "job.run":
            self.runs.append(args)
            return {"id": "01a2061f-77c9-7000-a71a-00000000e001", "status": "queued"}
        return await super().call(cmd, args, timeout=timeout)


def test_sync_now_with_several_peers_asks_which_and_runs_a_sync_job_for_it():
    from strongroom.console.modals.run_job import RunJobScreen
    from textual.widgets import OptionList

    from tests.console.tui.conftest import drive, showing

    client = RecordingClient("fixed-token")
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=client)

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                           what="the main screen")
            await pilot.press(*tab_keys("sync"))
            tab = app.screen.query_one("#sync")
            await wait_for(pilot, lambda: len(tab.peers) == 2, what="two peers")
            await pilot.press("s")
            await wait_for(pilot, showing(app, RunJobScreen), what="the choice of peer")
            options = app.screen.query_one(OptionList)
            assert [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)] == [
                "every active peer", "central", "laptop-7"]
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: client.runs, what="the run asked for")
            assert client.runs == [{"kind": "sync", "params": {"peer": "central"}}]
            await wait_for(pilot, lambda: tab.query("#sync-running JobProgress"), what="its progress row")

    drive(scenario)


class AskingClient(SyncFixedClient):
    """Records which fields the console asks the daemon to reveal."""

    def __init__(self, token):
        super().__init__(token)
        self.revealed: list[str] = []

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd == "sync.conflict.field.get":
            self.revealed.append(args["field"])
        return await super().call(cmd, args, timeout=timeout)


def test_a_conflict_shows_the_differing_fields_and_reveals_another_only_when_asked():
    from tests.console.tui.conftest import drive

    client = AskingClient("fixed-token")
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=client)

    async def scenario():
        async with app.run_test(size=(80, 24)) as pilot:
            await conflict_open_one_chosen(pilot)
            tab = app.screen.query_one("#sync")
            grid = tab.query_one("#fields-table", DataTable)
            names = [grid.get_row_at(i)[0].plain for i in range(grid.row_count)]
            assert names[:3] == ["≠ email", "≠ phone", "≠ status"]
            assert [n.strip() for n in names[3:]] == [f["name"] for f in SYNC_FIXED["sync.conflict.get"]["other_fields"]]
            assert [c.plain for c in grid.get_row("ssn")[1:4]] == ["hidden"] * 3
            assert client.revealed == []                       # opening the conflict reveals nothing
            assert app.screen.active_bindings["v"].enabled is True

            await pilot.press("v")                             # on phone (differing): already shown
            assert client.revealed == []
            grid.move_cursor(row=grid.get_row_index("ssn"))
            await pilot.press("v")
            await wait_for(pilot, lambda: grid.get_row("ssn")[2].plain == "***-**-5678", what="ssn revealed")
            assert client.revealed == ["ssn"]                  # that one field, nothing else
            assert [c.plain for c in grid.get_row("first_name")[1:4]] == ["hidden"] * 3
            assert "ssn" in tab.revealed and "ssn" not in tab.hidden()
            await pilot.press("v")                             # shown already: not asked again
            assert client.revealed == ["ssn"]

            grid.move_cursor(row=grid.get_row_index("intake_date"))
            await pilot.press("v")
            await wait_for(pilot, lambda: grid.get_row("intake_date")[2].plain == "2024-03-01",
                           what="intake_date revealed")
            assert client.revealed == ["ssn", "intake_date"]
            await pilot.press("r")                             # same on both sides: nothing to choose
            assert "intake_date" not in tab.choices

            tab.query_one("#conflicts-table", DataTable).focus()
            await pilot.press("down", "enter")                 # another conflict: nothing revealed there
            await wait_for(pilot, lambda: not tab.revealed, what="the reveals forgotten")

    drive(scenario)


class CountingClient(SyncFixedClient):
    """Counts how often the console opens a conflict (each opening with phi:read is an
    audited READ at the daemon)."""

    def __init__(self, token):
        super().__init__(token)
        self.opened = 0

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd == "sync.conflict.get":
            self.opened += 1
        return await super().call(cmd, args, timeout=timeout)


def test_reloading_the_queue_does_not_open_the_shown_conflict_again():
    from tests.console.tui.conftest import drive

    client = CountingClient("fixed-token")
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=client)

    async def scenario():
        async with app.run_test(size=(120, 40)) as pilot:
            await conflict_open_one_chosen(pilot)
            tab = app.screen.query_one("#sync")
            assert client.opened == 1
            for _ in range(3):
                tab.action_reload()                      # as a job's end or any sync event does
                await settled(pilot)
            assert client.opened == 1                    # the queue row did not change: no new READ
            assert tab.conflict is not None and tab.choices  # the choice made is kept

            changed = dict(tab.rows[CONFLICT], status="resolved")
            tab.rows[CONFLICT] = changed                 # the queue had shown it otherwise before
            tab.action_reload()
            await wait_for(pilot, lambda: client.opened == 2, what="the changed conflict opened again")

    drive(scenario)
