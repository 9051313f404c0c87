"""Layout snapshots at 80x24 and 120x40. The data source is a fixed stand-in for the
daemon (here only: every other console test talks to a real daemon), so no clock, uptime
or random id reaches the frame and the snapshots are stable."""
from __future__ import annotations

import asyncio
import datetime

import pytest
from strongroom.console.app import StrongroomConsole
from strongroom.console.client import ClientError
from strongroom.console.screens.main import MainScreen

from tests.console.tui.conftest import settled, wait_for
from strongroom.console.widgets.health_card import HealthCard

RUN_ID = "01a2061f-77c9-7000-a71a-77552702252a"
FIXED = {
    "whoami": {"actor": "auditor1", "permissions": ["audit:read", "compliance:read", "security:read"],
               "session_id": "01a2061f-0000-7000-8000-000000000001"},
    "status": {"host": "vault-01", "role": "leader", "job_kinds": ["integrity", "key_rotation"]},
    "health": {"role": "leader", "uptime_seconds": 93784.0, "last_backup_age_seconds": 7260.0,
               "audit_chain_ok": True, "open_conflicts": 2, "sync_peers": 1, "sync_lag_seconds": 840.0,
               "integrity": {"status": "succeeded", "age_seconds": 3900.0},
               "running_jobs": [{"run_id": RUN_ID, "kind": "integrity", "done": 3, "total": 8,
                                 "message": "clients row checksums"}],
               "next_runs": {"backup": "2026-11-24T02:00:00+00:00", "integrity": "2026-11-24T03:30:00+00:00"},
               "compliance": {"score": 84, "threshold": 80, "status": "ok", "not_configured": ["sync"],
                              "generated_at": "2026-11-23T09:00:00+00:00"},
               "backups": {"window_days": 7, "succeeded": 7, "failed": 1},
               "storage": {"database_bytes": 843_000_000, "bytes_per_table": True,
                           "tables": [{"table": "therapy_sessions", "rows": 300_000, "bytes": 612_000_000},
                                      {"table": "clients", "rows": 100_000, "bytes": 171_000_000},
                                      {"table": "audit_logs", "rows": 52_310, "bytes": 24_500_000}],
                           "targets": [{"configuration": "default", "used_bytes": 402_000_000,
                                        "quota_bytes": 500_000_000, "percent": 80.4}]}},
    "compliance.report": {"score": 84, "areas": {}, "checks": []},
    "jobs.list": [{"id": f"run-{i}", "job_kind": "integrity", "status": "succeeded", "duration_seconds": d,
                   "queued_at": "2026-11-22T03:30:00+00:00", "trigger": "schedule", "requested_by": "system",
                   "progress_done": 5, "progress_total": 5}
                  for i, d in enumerate([4.1, 3.9, 5.2, 4.4, 6.8, 4.0, 4.2, 3.8])],
    "audit.verify": {"ok": True, "checked": 5, "head_id": 5, "head_hash": "0" * 64},
    "backups.list": [], "audit.tail": [], "sessions.list": [], "security.events": [], "users.list": [],
    "integrity.report": {"latest": None, "checks": [], "running": [], "history": [],
                         "audit_chain": {"ok": True, "head_id": 5, "head_hash": "0" * 64, "last_check": None}},
}


class FixedSubscription:
    async def recv(self):
        await asyncio.Event().wait()    # no events: the frame shows the loaded state only

    def close(self) -> None:
        pass


class FixedClient:
    """Answers like the daemon would, from FIXED."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd not in FIXED:
            raise ClientError("not_found", f"no fixed answer for {cmd}")
        return FIXED[cmd]

    def subscribe(self, *topics: str) -> FixedSubscription:
        return FixedSubscription()

    def close(self) -> None:
        pass


def fixed_clock() -> datetime.datetime:
    """The time snapshots show in the status line's "updated" stamp."""
    return datetime.datetime(2026, 11, 23, 9, 0, 5)


def fixed_app(token: str | None) -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock,
                             client=FixedClient(token))


async def overview_loaded(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and "84/100" in str(app.screen.query_one("#compliance-gauge").render()) and "leader" in str(app.screen.query_one("#card-role", HealthCard).render()), what="the overview loaded")
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_login_screen_layout(snap_compare, size):
    assert snap_compare(fixed_app(None), terminal_size=size)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_overview_layout(snap_compare, size):
    assert snap_compare(fixed_app("fixed-token"), terminal_size=size, run_before=overview_loaded)


def test_overview_cards_turn_red_for_a_low_score_failed_backups_and_a_full_target():
    from strongroom.console.screens.overview import OverviewTab

    async def go():
        app = fixed_app("fixed-token")
        async with app.run_test(size=(120, 40)) as pilot:
            await overview_loaded(pilot)
            tab = app.screen.query_one(OverviewTab)

            def card(name):
                found = app.screen.query_one(f"#card-{name}", HealthCard)
                return str(found.render()), found.has_class("-bad"), found.has_class("-ok")

            assert card("compliance") == ("84/100 (min 80) · 1 not configured", False, True)
            assert card("backups")[0] == "7 succeeded · 1 failed"
            assert "383 MiB of 477 MiB (80.4%)" in str(app.screen.query_one("#storage").render())
            health = FIXED["health"]
            tab.apply_health({**health, "compliance": {**health["compliance"], "score": 61, "status": "below threshold"},
                              "backups": {"window_days": 7, "succeeded": 0, "failed": 3},
                              "storage": {**health["storage"], "targets": [{**health["storage"]["targets"][0],
                                                                            "percent": 97.0}]}})
            await pilot.pause()
            assert card("compliance")[:2] == ("61/100 (min 80) · 1 not configured", True)
            assert card("backups")[:2] == ("0 succeeded · 3 failed", True)
            assert card("storage")[:2] == ("db 804 MiB · target 97% full", True)
            checked = {"status": "warn", "actual": "3 rows differ", "checked_at": "2026-12-02T10:00:00+00:00"}
            tab.apply_health({**health, "sync": {"consistency": {"central": checked}}})
            await pilot.pause()
            assert card("sync")[0] == "14m 0s (1 peers) · sites differ"
            assert app.screen.query_one("#card-sync", HealthCard).has_class("-warn")
            tab.apply_health({**health, "sync": {"consistency": {"central": {**checked, "status": "ok"}}}})
            await pilot.pause()
            assert card("sync")[0] == "14m 0s (1 peers) · consistent" and card("sync")[2]
            tab.apply_health({"role": "leader"})           # an older daemon: nothing to show, no crash
            await pilot.pause()
            assert card("storage")[0] == "not reported" and card("compliance")[0] == "not reported"
    asyncio.run(go())
