"""The Retention tab's layout at 80x24 and 120x40: the plan of upcoming actions (one
blocked by a legal hold), and the erasure requests with approval disabled and its reason
shown. Fixed answers stand in for the daemon, as in test_console_snapshots."""
from __future__ import annotations

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.retention import RetentionTab

from tests.console.tui.conftest import settled, wait_for
from tests.console.tui.fixed import FixedClient, fixed_clock

PRACTICE = "01a2061f-77c9-7000-a71a-000000000001"
CLIENTS = [f"01a2061f-77c9-7000-a71a-0000000c{n:04x}" for n in range(1, 5)]
HOLD = "01a2061f-77c9-7000-a71a-00000000b001"
POLICY = "01a2061f-77c9-7000-a71a-00000000f{:03x}"


def due(when, action, table, n, client, reason, hold=None) -> dict:
    return {"due_at": f"{when}T09:00:00+00:00", "action": action, "table": table,
            "row_id": f"01a2061f-77c9-7000-a71a-00000000{n:04x}", "client_id": client, "practice_id": PRACTICE,
            "reason": reason, "policy_id": POLICY.format(2), "blocked_by": hold}


RETENTION_FIXED = {
    "whoami": {"actor": "user:owner1", "session_id": "01a2061f-0000-7000-8000-000000000003",
               "permissions": ["retention:read", "retention:manage", "erasure:request", "erasure:approve",
                               "audit:read", "job:backup:run"]},
    "status": {"host": "vault-01", "role": "leader", "job_kinds": ["backup", "integrity", "retention"]},
    "retention.policy.list": [
        {"id": POLICY.format(1), "table_name": "client_files", "archive_after_days": 365, "delete_after_days": None,
         "active": True, "created_at": "2026-11-20T10:00:00+00:00", "updated_at": "2026-11-20T10:00:00+00:00"},
        {"id": POLICY.format(2), "table_name": "clients", "archive_after_days": 730, "delete_after_days": 2555,
         "active": True, "created_at": "2026-11-20T10:00:00+00:00", "updated_at": "2026-11-21T16:12:00+00:00"},
        {"id": POLICY.format(3), "table_name": "therapy_sessions", "archive_after_days": 540,
         "delete_after_days": 2190, "active": True, "created_at": "2026-11-20T10:00:00+00:00",
         "updated_at": "2026-11-20T10:00:00+00:00"}],
    "retention.plan.get": {
        "now": "2026-11-23T07:00:00+00:00", "horizon_days": 30, "truncated": False, "holds_in_force": 1,
        "summary": [{"table": "clients", "action": "archive", "due_now": 1, "upcoming": 0, "blocked": 0},
                    {"table": "clients", "action": "delete", "due_now": 0, "upcoming": 0, "blocked": 0},
                    {"table": "therapy_sessions", "action": "archive", "due_now": 3, "upcoming": 2, "blocked": 1},
                    {"table": "therapy_sessions", "action": "delete", "due_now": 0, "upcoming": 0, "blocked": 0},
                    {"table": "client_files", "action": "archive", "due_now": 0, "upcoming": 0, "blocked": 0}],
        "actions": [due("2026-11-02", "archive", "clients", 0xa1, CLIENTS[2], "expiry_date"),
                    due("2026-11-10", "archive", "therapy_sessions", 0xa2, CLIENTS[0], "age", HOLD),
                    due("2026-11-17", "archive", "therapy_sessions", 0xa3, CLIENTS[1], "age"),
                    due("2026-11-22", "archive", "therapy_sessions", 0xa4, CLIENTS[1], "age"),
                    due("2026-12-01", "archive", "therapy_sessions", 0xa5, CLIENTS[3], "age"),
                    due("2026-12-08", "archive", "therapy_sessions", 0xa6, CLIENTS[3], "age")]},
    "hold.list": [
        {"id": HOLD, "practice_id": PRACTICE, "client_id": CLIENTS[0], "reason": "Matter 2026-014",
         "created_by": "user:counsel", "created_at": "2026-11-19T11:30:00+00:00", "released_at": None,
         "released_by": None, "scope": "client", "active": True},
        {"id": "01a2061f-77c9-7000-a71a-00000000b002", "practice_id": PRACTICE, "client_id": None,
         "reason": "Regulator inquiry 7", "created_by": "user:owner1", "created_at": "2026-10-02T09:00:00+00:00",
         "released_at": "2026-10-30T17:45:00+00:00", "released_by": "user:counsel", "scope": "practice",
         "active": False}],
    "erasure.list": [
        {"id": "01a2061f-77c9-7000-a71a-00000000e001", "client_id": CLIENTS[0], "requested_by": "user:manager1",
         "status": "pending", "reason": "written request D-7", "created_at": "2026-11-22T15:20:00+00:00",
         "expires_at": "2026-11-29T15:20:00+00:00", "approved_by": None, "rejected_by": None,
         "decided_at": None, "executed_at": None, "held_by": HOLD},
        {"id": "01a2061f-77c9-7000-a71a-00000000e002", "client_id": CLIENTS[2], "requested_by": "user:owner1",
         "status": "pending", "reason": "written request D-9", "created_at": "2026-11-23T06:40:00+00:00",
         "expires_at": "2026-11-30T06:40:00+00:00", "approved_by": None, "rejected_by": None,
         "decided_at": None, "executed_at": None, "held_by": None},
        {"id": "01a2061f-77c9-7000-a71a-00000000e003", "client_id": CLIENTS[3], "requested_by": "user:manager1",
         "status": "executed", "reason": "written request D-2", "created_at": "2026-11-12T10:00:00+00:00",
         "expires_at": "2026-11-19T10:00:00+00:00", "approved_by": "user:owner1", "rejected_by": None,
         "decided_at": "2026-11-13T09:10:00+00:00", "executed_at": "2026-11-13T09:10:00+00:00", "held_by": None}],
}


class RetentionFixedClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd in RETENTION_FIXED:
            return RETENTION_FIXED[cmd]
        if cmd.startswith("exports") or cmd.startswith("export."):
            return []
        return await super().call(cmd, args, timeout=timeout)


async def loaded(pilot, view: str) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    app.screen.action_show_tab("retention")
    tab = app.screen.query_one("#retention", RetentionTab)
    await wait_for(pilot, lambda: tab.rows["policies"], what="tab.rows['policies']")
    while tab.view != view:
        await pilot.press("v")
    await settled(pilot)


def app() -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock,
                             client=RetentionFixedClient("fixed-token"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_retention_upcoming_layout(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=lambda pilot: loaded(pilot, "upcoming"))


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_retention_requests_layout(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=lambda pilot: loaded(pilot, "requests"))
