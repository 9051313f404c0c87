"""Layout snapshots of the Exports tab and its new-export form at 80x24 and 120x40 (and the
form's Filters and Save as sections at 80x24), from
a fixed stand-in for the daemon (as test_console_snapshots.py). The user may export
but lacks phi:read, so the form shows the "full" profile disabled with why."""
from __future__ import annotations

import pytest
from strongroom.console.app import StrongroomConsole
from strongroom.console.modals.export_form import ExportFormScreen
from strongroom.console.tabs.exports import ExportsTab
from strongroom.console.screens.main import TABS, MainScreen
from strongroom.core.export import spec

from tests.console.tui.conftest import settled, wait_for
from tests.console.tui.fixed import FIXED, FixedClient, fixed_clock

KEYS = {tab_id: str(n) for n, (_, tab_id, _) in enumerate(TABS, 1)}
EXPORT = "01a2061f-0000-7000-8000-0000000000{:02d}"
EXPORTS_FIXED = {
    **FIXED,
    "whoami": {"actor": "user:office.manager", "session_id": "01a2061f-0000-7000-8000-000000000001",
               "permissions": ["table:clients:read", "table:therapy_sessions:read", "table:client_files:read",
                               "audit:read", "job:export:run"]},
    "status": {"host": "vault-01", "role": "leader", "job_kinds": ["export", "integrity"]},
    "export.list": {"total": 3, "limit": 100, "offset": 0, "running": [], "items": [
        {"id": EXPORT.format(3), "created_at": "2026-11-23T08:10:00+00:00", "status": "succeeded", "format": "ndjson",
         "row_count": 1920, "requested_by": "user:office.manager", "error": None,
         "location": "/var/lib/strongroom/exports/20261123T081000Z-01a2061f", "sha256": "9f" * 32},
        {"id": EXPORT.format(2), "created_at": "2026-11-22T17:45:12+00:00", "status": "failed", "format": "pdf",
         "row_count": None, "requested_by": "user:dr.hollis", "location": None, "sha256": None,
         "error": "ValidationError: export: filter since is not an ISO date (YYYY-MM-DD) or datetime"},
        {"id": EXPORT.format(1), "created_at": "2026-11-20T09:00:03+00:00", "status": "succeeded", "format": "csv",
         "row_count": 240, "requested_by": "local:0", "error": None,
         "location": "/var/lib/strongroom/exports/20261120T090003Z-01a2061f", "sha256": "3c" * 32},
    ]},
    "export.table.list": {"tables": spec.catalogue(), "formats": list(spec.FORMATS),
                       "masking_profiles": list(spec.MASKING_PROFILES), "ranges": list(spec.RANGES),
                       "status_filters": spec.status_filters(), "configurations": [], "min_password": 8,
                       "max_per_hour": 30},
}


class ExportsClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd in EXPORTS_FIXED:
            return EXPORTS_FIXED[cmd]
        return await super().call(cmd, args, timeout=timeout)


def exports_app() -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=ExportsClient("fixed-token"))


async def show_exports(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="the main screen")
    await pilot.press(KEYS["exports"])
    tab = app.screen.query_one("#exports", ExportsTab)
    await wait_for(pilot, lambda: len(tab.exports) == 3, what="len(tab.exports) == 3")
    await pilot.press("down")   # the failed export: its error under the table
    await settled(pilot)


async def show_form(pilot) -> None:
    await show_exports(pilot)
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ExportFormScreen), what="the export form")
    await settled(pilot)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_exports_tab_layout(snap_compare, size):
    assert snap_compare(exports_app(), terminal_size=size, run_before=show_exports)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_export_form_layout(snap_compare, size):
    assert snap_compare(exports_app(), terminal_size=size, run_before=show_form)


def show_section(pane: str):
    async def run_before(pilot) -> None:
        await show_form(pilot)
        pilot.app.screen.show_section(pane)
        await settled(pilot)
    return run_before


@pytest.mark.parametrize("pane", ["export-section-filters", "export-section-save"], ids=["filters", "save-as"])
def test_export_form_sections_layout(snap_compare, pane):
    """The form's Filters (range, since/until, client, practice, the status lists, those
    of therapy_sessions disabled while only clients is chosen) and Save as sections fit 80x24."""
    assert snap_compare(exports_app(), terminal_size=(80, 24), run_before=show_section(pane))
