"""Layout snapshots of the Users and Integrity tabs and the practice screen at 80x24 and
120x40, from a fixed
stand-in for the daemon (as test_console_snapshots.py): no clock or random id reaches
the frame."""
from __future__ import annotations

import pytest
from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.integrity import IntegrityTab
from strongroom.console.screens.main import MainScreen
from strongroom.console.screens.users import UsersTab

from tests.console.tui.conftest import settled, tab_key, wait_for
from tests.console.tui.test_console_snapshots import FIXED, FixedClient, fixed_clock

USER = "01a2061f-0000-7000-8000-0000000000{:02d}"
MANAGE_FIXED = {
    **FIXED,
    "whoami": {"actor": "user:boss", "session_id": "01a2061f-0000-7000-8000-000000000001",
               "permissions": ["table:*:*", "phi:read", "user:manage", "session:revoke", "audit:read",
                               "security:read", "compliance:read", "config:read", "job:backup:run",
                               "job:integrity:run"]},
    "users.list": [
        {"id": USER.format(1), "username": "boss", "role": "ADMIN", "totp_enabled": True, "failed_logins": 0,
         "locked_until": None, "disabled": False, "last_login_at": "2026-11-23T08:01:12+00:00"},
        {"id": USER.format(2), "username": "dr.hollis", "role": "PRACTITIONER", "totp_enabled": False,
         "failed_logins": 2, "locked_until": None, "disabled": False, "last_login_at": "2026-11-22T16:40:00+00:00"},
        {"id": USER.format(3), "username": "frontdesk", "role": "STAFF", "totp_enabled": False, "failed_logins": 0,
         "locked_until": "9999-12-31T00:00:00+00:00", "disabled": False, "last_login_at": None},
        {"id": USER.format(4), "username": "ops", "role": "operator", "totp_enabled": True, "failed_logins": 0,
         "locked_until": None, "disabled": False, "last_login_at": "2026-11-20T03:30:00+00:00"},
    ],
    "user.grants": [
        {"id": "g-1", "permission": "audit:read", "granted_by": "user:boss", "reason": "case review",
         "expires_at": "2026-11-24T08:00:00+00:00", "revoked_at": None, "active": True},
        {"id": "g-2", "permission": "table:client_files:read", "granted_by": "local:0", "reason": "",
         "expires_at": "2026-10-01T00:00:00+00:00", "revoked_at": "2026-09-30T12:00:00+00:00", "active": False},
    ],
    "integrity.report": {
        "latest": {"id": "run-7", "status": "failed", "trigger": "schedule", "requested_by": "system",
                   "finished_at": "2026-11-23T03:30:09+00:00", "duration_seconds": 9.2,
                   "error": "IntegrityFailure: integrity checks failed: therapy_sessions row checksums"},
        "checks": [
            {"name": "audit chain", "status": "passed", "expected": "every entry links and hashes",
             "actual": "intact", "evidence": {"checked": 5120, "broken_id": None, "reason": None}},
            {"name": "practices row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 1, "mismatched": 0, "ids": []}},
            {"name": "clients row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 240, "mismatched": 0, "ids": []}},
            {"name": "therapy_sessions row checksums", "status": "failed", "expected": "0 mismatches",
             "actual": "1 mismatches", "evidence": {"checked": 1920, "mismatched": 1,
                                                    "ids": ["01a2061f-5555-7000-8000-000000000042"]}},
            {"name": "client_files row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 0, "mismatched": 0, "ids": []}},
        ],
        "running": [],
        "history": [{"id": f"run-{i}", "status": s} for i, s in enumerate(["failed", "succeeded", "succeeded"])],
        "audit_chain": {"ok": True, "head_id": 5120, "head_hash": "0" * 64,
                        "last_check": {"status": "passed", "completed_at": "2026-11-23T03:30:02+00:00"}},
    },
    "practice.show": {"id": "01a2061f-0000-7000-8000-00000000aa01", "name": "Harbour Street Therapy",
                      "timezone": "Europe/London", "address": "12 Harbour Street, Leith", "phone": "+44 131 555 0100",
                      "email": "office@harbour.example", "tax_id": "GB123456789", "license_number": "HCPC-0042"},
    "staff.list": {"items": [
        {"id": "01a2061f-0000-7000-8000-00000000bb01", "first_name": "Mara", "last_name": "Hollis",
         "role": "PRACTITIONER", "email": "m.hollis@harbour.example", "phone": None, "hourly_rate_cents": 9500,
         "active": True},
        {"id": "01a2061f-0000-7000-8000-00000000bb02", "first_name": "Theo", "last_name": "Grant", "role": "STAFF",
         "email": None, "phone": "+44 131 555 0101", "hourly_rate_cents": None, "active": False}]},
    "services.list": {"items": [
        {"id": "01a2061f-0000-7000-8000-00000000cc01", "name": "Individual session", "category": "therapy",
         "description": None, "duration_minutes": 50, "price_cents": 9000, "active": True},
        {"id": "01a2061f-0000-7000-8000-00000000cc02", "name": "Couples intake", "category": "assessment",
         "description": "first visit", "duration_minutes": 80, "price_cents": 13500, "active": True}]},
}


def _roles(permissions: list[str]) -> list[dict]:
    """roles.list as the daemon answers it for a caller holding `permissions`."""
    from strongroom.core.principal import Principal
    from strongroom.daemon.commands import Call
    from strongroom.daemon.commands_users import roles_list_cmd

    call = Call(principal=Principal(actor="user:boss", permissions=frozenset(permissions)), args=None, peer=None)
    return roles_list_cmd(None, call)


MANAGE_FIXED["roles.list"] = _roles(MANAGE_FIXED["whoami"]["permissions"])


class ManageClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd in MANAGE_FIXED:
            return MANAGE_FIXED[cmd]
        return await super().call(cmd, args, timeout=timeout)


def manage_app() -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=ManageClient("fixed-token"))


async def show_users(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(tab_key("users"))
    tab = app.screen.query_one("#users", UsersTab)
    await wait_for(pilot, lambda: len(tab.users) == 4 and len(tab.grants) == 2, what="len(tab.users) == 4 and len(tab.grants) == 2")
    await pilot.press("down")   # dr.hollis: unlock is offered (2 failed logins)
    await settled(pilot)


async def show_practice(pilot) -> None:
    from strongroom.console.screens.practice import PracticeScreen

    await show_users(pilot)
    await pilot.press("p")
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, PracticeScreen) and len(app.screen.services) == 2,
                   what="the practice screen loaded")
    await settled(pilot)


async def show_integrity(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(tab_key("integrity"))
    tab = app.screen.query_one("#integrity", IntegrityTab)
    await wait_for(pilot, lambda: len(tab.checks) == 5, what="len(tab.checks) == 5")
    await pilot.press("down", "down", "down")   # the failed check, its evidence under the table
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_users_tab_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_users)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_integrity_tab_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_integrity)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_practice_screen_layout(snap_compare, size):
    assert snap_compare(manage_app(), terminal_size=size, run_before=show_practice)
