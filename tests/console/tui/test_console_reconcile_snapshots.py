"""The Reconcile tab's layout at 80x24 and 120x40: open pairs best score first, and one
pair side by side for front-desk staff (values masked, every action disabled with its
reason). Fixed answers stand in for the daemon, as in test_console_snapshots; names are
made up (core.reconcile.planted's syllables)."""
from __future__ import annotations

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.modals.pair import PairScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.reconcile import ReconcileTab
from textual.widgets import DataTable

from tests.console.tui.conftest import settled, showing, wait_for
from tests.console.tui.fixed import FixedClient, fixed_clock

PRACTICE = "01a2061f-77c9-7000-a71a-000000000001"
CLIENT = "01a2061f-77c9-7000-a71a-0000000c{:04x}"
PAIR = "01a2061f-77c9-7000-a71a-0000000a{:04x}"


def pair(n: int, a: int, b: int, score: float, reasons: list[str]) -> dict:
    return {"pair_id": PAIR.format(n), "practice_id": PRACTICE, "client_a": CLIENT.format(a),
            "client_b": CLIENT.format(b), "score": score, "reasons": reasons, "status": "open",
            "found_at": "2026-11-22T02:10:00+00:00", "decided_by": None, "decided_at": None, "merge_record": None}


def masked(n: int, first: str, last: str, phone: str, email: str) -> dict:
    return {"id": CLIENT.format(n), "practice_id": PRACTICE, "status": "active", "data_sensitivity": "standard",
            "intake_date": "2026-03-02", "retention_expiry_date": None, "practitioner_id": None,
            "created_at": f"2026-0{n % 9 + 1}-11T10:00:00+00:00", "updated_at": "2026-11-01T10:00:00+00:00",
            "deleted_at": None, "first_name": first, "last_name": last, "date_of_birth": "[redacted]",
            "ssn": None, "email": email, "phone": phone, "address": "14 ***", "emergency_contact": None,
            "medical_history": "[redacted]", "notes": None}


PAIRS = [pair(1, 1, 2, 0.97, ["name~0.96", "dob=", "email="]), pair(2, 3, 4, 0.91, ["swapped", "dob=", "phone="]),
         pair(3, 5, 6, 0.84, ["name~0.91", "dob="])]
RECONCILE_FIXED = {
    "whoami": {"actor": "user:frontdesk", "session_id": "01a2061f-0000-7000-8000-000000000004",
               "permissions": ["table:clients:read", "table:therapy_sessions:read", "table:therapy_sessions:write"]},
    "status": {"host": "vault-01", "role": "leader", "job_kinds": ["integrity", "reconcile"]},
    "reconcile.list": {"items": PAIRS},
    "reconcile.show": {**PAIRS[0], "clients": [masked(1, "B***", "S***", "***-***-2030", "br***@example.org"),
                                               masked(2, "B***", "S***", "***-***-1111", "br***@example.org")]},
}


class ReconcileFixedClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd in RECONCILE_FIXED:
            return RECONCILE_FIXED[cmd]
        return await super().call(cmd, args, timeout=timeout)


def app() -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock,
                             client=ReconcileFixedClient("fixed-token"))


async def listed(pilot) -> ReconcileTab:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    app.screen.action_show_tab("reconcile")
    tab = app.screen.query_one("#reconcile", ReconcileTab)
    await wait_for(pilot, lambda: len(tab.pairs) == 3, what="the pairs")
    await settled(pilot)
    return tab


async def opened(pilot) -> None:
    tab = await listed(pilot)
    tab.query_one("#reconcile-table", DataTable).focus()
    await pilot.press("enter")
    await wait_for(pilot, showing(pilot.app, PairScreen), what="the pair side by side")
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_reconcile_list_layout(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=listed)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_reconcile_pair_layout(snap_compare, size):
    assert snap_compare(app(), terminal_size=size, run_before=opened)
