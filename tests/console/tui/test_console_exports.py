"""The Exports tab against a real strongroomd with demo data: a manager fills in the form
(a table, a date filter, a format, the full profile), has a bad date refused inside the
form with everything typed kept, and watches the export run to success into the history, then runs a saved encrypted one by name; an auditor sees the history with "new export" disabled and
why. The form's other options, as the CLI has them: a range with a client status and a
BOM recorded on the export; a configuration saved with a schedule (a bad cron refused in
the form first, nothing saved) and listed by `s`. Bounded: every wait has a timeout."""
from __future__ import annotations

import time

from strongroom.console.modals.client_picker import ClientPickerScreen
from strongroom.console.modals.export_form import ExportFormScreen
from strongroom.console.modals.saved_export import SavedExportScreen
from strongroom.console.widgets.job_progress import JobProgress
from strongroom.core.auth.users import create_user
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role
from strongroom.core.repository.practices import only_practice
from textual.widgets import Checkbox, Input, OptionList, Select, SelectionList, Static

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, open_tab, settle, token_for
from tests.daemon.conftest import PASSWORD


def add_manager(data_dir) -> None:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "manager1", PASSWORD, Role.MANAGER)
    finally:
        ctx.close()


def test_manager_exports_from_the_form_and_sees_it_finish(demo_daemon):
    add_manager(demo_daemon.data_dir)
    drive(lambda: _export_from_form(demo_daemon, token_for(demo_daemon, "manager1")))
    (item,) = demo_daemon.call("export.list")["items"]
    assert (item["status"], item["format"], item["row_count"]) == ("succeeded", "ndjson", 12)
    shown = demo_daemon.call("export.show", {"export_id": item["id"]})
    assert shown["manifest"]["masking_profile"] == "full" and shown["manifest_ok"] is True
    assert shown["manifest"]["tables"]["clients"]["rows"] == 12
    assert sorted(shown["manifest"]["tables"]["clients"]["fields"]) == ["id", "ssn", "status"]
    assert shown["manifest"]["filters"] == {"since": "2000-01-01T00:00:00+00:00"}


async def _export_from_form(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "exports")
        assert app.screen.active_bindings["n"].enabled
        await pilot.press("n")
        await wait_for(pilot, showing(app, ExportFormScreen), what="export form")
        form = app.screen
        fields = form.query_one("#export-fields", SelectionList)
        await wait_for(pilot, lambda: fields.option_count > 0, what="fields listed")
        assert form.query_one("#export-tables", SelectionList).selected == ["clients"]
        fields.deselect_all()
        for name in ("clients.id", "clients.status", "clients.ssn"):
            fields.select(name)
        await pilot.press("ctrl+f")                        # the client filter from the picker
        await wait_for(pilot, showing(app, ClientPickerScreen), what="client picker")
        picker = app.screen
        await pilot.press(*"oakridge", "enter")
        results = picker.query_one("#picker-results", OptionList)
        await wait_for(pilot, lambda: results.option_count == 3, what="three clients of that name")
        chosen = results.get_option_at_index(1).id
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.screen is form, what="back in the export form")
        client = form.query_one("#export-client", Input)
        assert client.value == chosen
        client.value = ""                                  # this export is of every client after all
        assert client.region.height > 0                    # ctrl+f showed the Filters section
        await pilot.click("#export-since")
        await pilot.press(*"2000-01-01")
        await pilot.press("ctrl+o", "ctrl+o")              # past Save as, back to the Export section
        await wait_for(pilot, lambda: form.query_one("#masking-full").region.height > 0, what="Export section")
        form.query_one("#export-format", Select).value = "ndjson"
        await pilot.click("#masking-full")
        assert form.query_one("#masking-full").value is True
        form.query_one("#export-tables", SelectionList).deselect_all()
        await pilot.press("ctrl+s")                                # nothing chosen: the form says so
        error = form.query_one("#export-form-error", Static)
        await wait_for(pilot, lambda: "at least one table" in str(error.render()), what="form refusal")
        form.query_one("#export-tables", SelectionList).select("clients")
        await pilot.pause(0.1)
        fields.deselect_all()                  # a table chosen again comes back with every field
        for name in ("clients.id", "clients.status", "clients.ssn"):
            fields.select(name)
        since = form.query_one("#export-since", Input)
        since.value = "last week"                           # the daemon refuses it, naming the filter
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "since" in str(error.render()), what="daemon's refusal shown in the form")
        assert app.screen is form and "last week" not in str(error.render())
        assert since.value == "last week" and sorted(fields.selected) == ["clients.id", "clients.ssn",
                                                                          "clients.status"]
        assert form.query_one("#masking-full").value is True      # everything else as it was
        since.value = "2000-01-01"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ExportFormScreen), what="form closed")
        await wait_for(pilot, lambda: any(e["status"] == "succeeded" for e in tab.exports.values()),
                       what="succeeded export in the history")
        progress = tab.query(JobProgress)
        await wait_for(pilot, lambda: progress and progress.first().status == "succeeded", what="progress done")
        assert "1 export · " in str(tab.query_one("#exports-summary", Static).render())
        await settle(pilot)


def test_auditor_sees_history_with_new_export_disabled_and_why(demo_daemon):
    run = demo_daemon.call("export.run", {"tables": ["clients"], "format": "csv"})
    for _ in range(200):
        if demo_daemon.call("job.get", {"run_id": run["id"]})["status"] == "succeeded":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the seeded export did not finish")
    drive(lambda: _auditor(demo_daemon, token_for(demo_daemon, "auditor1")))


async def _auditor(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "exports")
        await wait_for(pilot, lambda: len(tab.exports) == 1, what="history loaded")
        assert app.screen.active_bindings["n"].enabled is False and app.screen.active_bindings["s"].enabled is False
        note = str(tab.query_one("#exports-note", Static).render())
        assert "new or saved export disabled" in note and "lacks job:export:run" in note
        await pilot.press("n")
        assert not isinstance(app.screen, ExportFormScreen)
        runs = await in_thread(daemon.call, "job.list", {"kind": "export"})
        assert len(runs) == 1
        await settle(pilot)


def test_a_saved_encrypted_export_runs_by_name_with_its_password(demo_daemon):
    add_manager(demo_daemon.data_dir)
    token = token_for(demo_daemon, "manager1")
    demo_daemon.call("export.configuration.create", {"name": "weekly-clients", "tables": ["clients"], "format": "csv",
                                      "encrypt": True}, token=token)
    drive(lambda: _run_saved(demo_daemon, token))
    (item,) = demo_daemon.call("export.list")["items"]
    assert item["status"] == "succeeded" and item["filters"]["configuration"] == "weekly-clients"
    assert item["filters"]["encrypted"] is True


async def _run_saved(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "exports")
        await pilot.press("s")
        await wait_for(pilot, showing(app, SavedExportScreen), what="saved exports")
        picker = app.screen
        assert picker.query_one(OptionList).option_count == 1
        await pilot.press("enter")                                   # the one saved export
        password = picker.query_one("#saved-password", Input)
        await wait_for(pilot, lambda: password.display and password.has_focus, what="password asked")
        await pilot.press(*"short", "enter")
        hint = picker.query_one("#saved-hint", Static)
        await wait_for(pilot, lambda: "at least 8" in str(hint.render()), what="short password refused")
        await pilot.press(*" but longer now", "enter")
        await wait_for(pilot, lambda: any(e["status"] == "succeeded" for e in tab.exports.values()),
                       what="saved export succeeded")
        await settle(pilot)


def test_an_export_with_a_range_a_client_status_and_a_bom_records_them(demo_daemon):
    """The form's Filters section: a range replaces since/until (choosing one disables
    them, and what was typed there is not sent), a status filter is a pick list of the
    values the daemon's catalogue names, enabled only with its table."""
    add_manager(demo_daemon.data_dir)
    drive(lambda: _export_with_filters(demo_daemon, token_for(demo_daemon, "manager1")))
    (item,) = demo_daemon.call("export.list")["items"]
    assert item["status"] == "succeeded" and item["format"] == "csv"
    filters = item["filters"]
    assert filters["range"] == "last_30_days" and filters["client_status"] == ["VIP"]
    assert filters["bom"] is True and "time_zone" in filters
    assert not filters["since"].startswith("2000-")          # the range's days, not what was typed
    assert "session_status" not in filters and "payment_status" not in filters


async def _export_with_filters(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "exports")
        await pilot.press("n")
        await wait_for(pilot, showing(app, ExportFormScreen), what="export form")
        form = app.screen
        fields = form.query_one("#export-fields", SelectionList)
        await wait_for(pilot, lambda: fields.option_count > 0, what="fields listed")
        fields.deselect_all()
        for name in ("clients.id", "clients.status"):
            fields.select(name)
        await pilot.click("#export-bom")
        assert form.query_one("#export-bom", Checkbox).value is True
        await pilot.press("ctrl+o")                                    # the Filters section
        since = form.query_one("#export-since", Input)
        await wait_for(pilot, lambda: since.region.height > 0, what="filters shown")
        await pilot.click("#export-since")
        await pilot.press(*"2000-01-01")
        clients = form.query_one("#export-client-status", SelectionList)
        sessions = form.query_one("#export-session-status", SelectionList)
        assert [clients.get_option_at_index(n).value for n in range(clients.option_count)] == \
            ["ACTIVE", "VIP", "INACTIVE"]                              # the daemon's values, its order
        assert not clients.disabled and sessions.disabled             # sessions are not exported
        form.query_one("#export-range", Select).value = "last_30_days"
        await wait_for(pilot, lambda: since.disabled, what="since disabled by the range")
        assert form.query_one("#export-until", Input).disabled
        clients.select("VIP")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ExportFormScreen), what="form closed")
        await wait_for(pilot, lambda: any(e["status"] == "succeeded" for e in tab.exports.values()),
                       what="succeeded export in the history")
        await settle(pilot)


def test_saving_from_the_form_with_a_schedule_after_a_bad_cron_is_refused(demo_daemon):
    """Save as: a bad schedule is refused in the form with everything kept and nothing
    saved; corrected, the configuration is saved (not run) with its schedule, retention
    and filters, and `s` lists it."""
    add_manager(demo_daemon.data_dir)
    token = token_for(demo_daemon, "manager1")
    drive(lambda: _save_from_form(demo_daemon, token))
    (saved,) = demo_daemon.call("export.configuration.list")["items"]
    assert (saved["name"], saved["format"], saved["schedule"], saved["retention_days"]) == \
        ("weekly-vip", "ndjson", "0 6 * * 1", 7)
    assert saved["next_export_at"] is not None and "manager1" in saved["created_by"]
    assert saved["filters"]["client_status"] == ["VIP"] and saved["filters"]["range"] == "last_quarter"
    assert demo_daemon.call("export.list")["items"] == []            # saved, not run


async def _save_from_form(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "exports")
        await pilot.press("n")
        await wait_for(pilot, showing(app, ExportFormScreen), what="export form")
        form = app.screen
        fields = form.query_one("#export-fields", SelectionList)
        await wait_for(pilot, lambda: fields.option_count > 0, what="fields listed")
        form.query_one("#export-format", Select).value = "ndjson"
        await pilot.press("ctrl+o")                                    # Filters
        form.query_one("#export-range", Select).value = "last_quarter"
        form.query_one("#export-client-status", SelectionList).select("VIP")
        await pilot.press("ctrl+o")                                    # Save as
        name = form.query_one("#export-save-as", Input)
        await wait_for(pilot, lambda: name.has_focus, what="save-as name focused")
        schedule = form.query_one("#export-schedule", Input)
        assert schedule.disabled                                       # nothing to schedule without a name
        await pilot.press(*"weekly-vip")
        await wait_for(pilot, lambda: not schedule.disabled, what="schedule enabled by the name")
        await pilot.click("#export-schedule")
        await pilot.press(*"every monday")
        await pilot.click("#export-retention")
        await pilot.press("7")
        await pilot.press("ctrl+s")
        error = form.query_one("#export-form-error", Static)
        await wait_for(pilot, lambda: "schedule" in str(error.render()), what="the bad schedule refused")
        assert app.screen is form and "every monday" not in str(error.render())
        assert (name.value, schedule.value, form.query_one("#export-retention", Input).value) == \
            ("weekly-vip", "every monday", "7")
        assert form.query_one("#export-client-status", SelectionList).selected == ["VIP"]
        assert form.query_one("#export-range", Select).value == "last_quarter"
        assert (await in_thread(daemon.call, "export.configuration.list"))["items"] == []
        schedule.value = "0 6 * * 1"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, ExportFormScreen), what="form closed")
        await pilot.press("s")                                         # the saved one is there to run
        await wait_for(pilot, showing(app, SavedExportScreen), what="saved exports")
        listed = app.screen.query_one(OptionList)
        assert listed.option_count == 1 and listed.get_option_at_index(0).id == "weekly-vip"
        assert "0 6 * * 1" in str(listed.get_option_at_index(0).prompt)
        await pilot.press("escape")
        assert not tab.exports
        await settle(pilot)
