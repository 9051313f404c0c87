"""The Sync tab's layout at 80x24 and 120x40: peers with lag, the queue, one conflict
opened side by side with PHI masked (an operator without phi:read) and one field chosen.
Fixed answers stand in for the daemon, as in test_console_snapshots."""
from __future__ import annotations

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.main import MainScreen
from textual.widgets import DataTable

from tests.console.tui.conftest import settled, tab_keys, wait_for
from tests.console.tui.test_console_snapshots import FixedClient

CONFLICT = "01a2061f-77c9-7000-a71a-000000000c01"
ROW = "01a2061f-77c9-7000-a71a-0000000000a1"


def masked_field(name, base, local, remote, *, differs, changed=None, phi=True) -> dict:
    return {"name": name, "phi": phi, "differs": differs, "changed": changed, "base": base, "local": local,
            "remote": remote, "absent": [], "unreadable": [], "chosen": None}


SYNC_FIXED = {
    "whoami": {"actor": "user:operator1", "permissions": ["config:read", "sync:resolve", "job:*:run"],
               "session_id": "01a2061f-0000-7000-8000-000000000002"},
    "sync.peers": [
        {"id": "p1", "name": "central", "direction": "both", "is_active": True, "seconds_since_sync": 7512.0,
         "pending_changes": 4, "open_conflicts": 3},
        {"id": "p2", "name": "clinic-north", "direction": "pull", "is_active": True, "seconds_since_sync": None,
         "pending_changes": None, "open_conflicts": 0}],
    "sync.conflicts": [
        {"id": CONFLICT, "peer": "central", "table": "clients", "row_id": ROW, "status": "open",
         "created_at": "2026-11-23T03:51:56+00:00", "fields": ["email", "phone", "status"], "has_base": True},
        {"id": "c2", "peer": "central", "table": "clients", "row_id": "r2", "status": "open",
         "created_at": "2026-11-23T03:52:10+00:00", "fields": ["last_name", "address"], "has_base": False},
        {"id": "c3", "peer": "central", "table": "therapy_sessions", "row_id": "r3", "status": "open",
         "created_at": "2026-11-23T03:52:11+00:00", "fields": ["duration_minutes", "notes", "payment_status"],
         "has_base": True}],
    "sync.conflict": {
        "id": CONFLICT, "peer": "central", "table": "clients", "row_id": ROW, "status": "open",
        "created_at": "2026-11-23T03:51:56+00:00", "fields": ["email", "phone", "status"], "has_base": True,
        "masked": True, "resolved_by": None, "resolved_at": None,
        "field_values": [
            masked_field("first_name", "A***", "A***", "A***", differs=False),
            masked_field("last_name", "A***", "A***", "A***", differs=False),
            masked_field("date_of_birth", "[redacted]", "[redacted]", "[redacted]", differs=False),
            masked_field("email", "av***@example.org", "av***@example.org", "av***@example.org",
                         differs=True, changed="local"),
            masked_field("phone", "***-***-0142", "***-***-0100", "***-***-0177", differs=True, changed="both"),
            masked_field("address", "12 ***", "12 ***", "12 ***", differs=False),
            masked_field("medical_history", None, None, None, differs=False),
            masked_field("status", "ACTIVE", "ACTIVE", "INACTIVE", differs=True, changed="remote", phi=False),
            masked_field("intake_date", "2024-03-01", "2024-03-01", "2024-03-01", differs=False, phi=False),
        ]},
}


class SyncFixedClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
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
    app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", client=SyncFixedClient("fixed-token"))
    assert snap_compare(app, terminal_size=size, run_before=conflict_open_one_chosen)

