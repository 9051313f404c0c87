"""The Retention tab against a real strongroomd with the retention demo: a manager files
an erasure request, choosing the client by last name in the client picker (ctrl+f), but
may not approve one (the reason is shown); the practice owner
cannot approve their own request, approves someone else's only after typing ERASE, and
the client's keys are destroyed; holds are placed and released. Bounded waits."""
from __future__ import annotations

import pytest

from strongroom.console.modals.client_picker import ClientPickerScreen
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.retention import RetentionTab
from strongroom.console.modals.typed_confirm import TypedConfirmScreen
from textual.widgets import Button, DataTable, Input, OptionList, Static

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, choices, choose_kind, open_tab, settle, token_for
from tests.daemon.conftest import FAST_HEALTH, make_data_dir, running_daemon
from tests.daemon.conftest import seed_retention_demo


@pytest.fixture
def retention_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    seeded = seed_retention_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.seeded = seeded
        yield proc


async def show_view(pilot, tab: RetentionTab, view: str) -> None:
    while tab.view != view:
        await pilot.press("v")


async def select(pilot, tab: RetentionTab, view: str, predicate) -> dict:
    await wait_for(pilot, lambda: any(predicate(r) for r in tab.rows[view].values()), what=f"a row in {view}")
    key = next(k for k, r in tab.rows[view].items() if predicate(r))
    table = tab.query_one(f"#retention-{view}", DataTable)
    table.move_cursor(row=table.get_row_index(key))
    await wait_for(pilot, lambda: tab.selected(view) is tab.rows[view][key], what="row selected")
    return tab.rows[view][key]


def note(tab: RetentionTab) -> str:
    return str(tab.query_one("#retention-note", Static).render())


def test_manager_files_a_request_and_may_not_approve(retention_daemon):
    token = token_for(retention_daemon, "manager1")
    drive(lambda: _manager(retention_daemon, token))
    mine = [r for r in retention_daemon.call("erasure.list") if r["requested_by"] == "user:manager1"]
    assert [r["client_id"] for r in mine] == [retention_daemon.seeded["clients"][3]]


async def _manager(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "retention", lambda tab: tab.rows["policies"])
        summary = str(tab.query_one("#retention-summary", Static).render())
        assert "3 active policies" in summary and "1 legal hold(s) in force" in summary
        await show_view(pilot, tab, "requests")
        await select(pilot, tab, "requests", lambda r: r["requested_by"] == "user:demo-manager")
        assert app.screen.active_bindings["a"].enabled is False
        assert "a: user:manager1 lacks erasure:approve" in note(tab)
        await pilot.press("a")
        assert isinstance(app.screen, MainScreen)    # no dialog
        assert app.screen.active_bindings["p"].enabled is False    # holds need retention:manage
        await pilot.press("n")
        await wait_for(pilot, showing(app, FormScreen), what="request form")
        form = app.screen
        await pilot.press("ctrl+f")                       # the client by name, not a pasted id
        await wait_for(pilot, showing(app, ClientPickerScreen), what="client picker")
        picker = app.screen
        await pilot.press(*"greystone", "enter")
        results = picker.query_one("#picker-results", OptionList)
        await wait_for(pilot, lambda: results.option_count == 1 and results.has_focus, what="one match")
        assert "U*** G***" in str(results.get_option_at_index(0).prompt)     # masked, even so
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is form, what="back in the form")
        assert form.query_one("#client", Input).value == daemon.seeded["clients"][3]
        await pilot.press("enter", *"written request ref 31", "enter")
        mine = await select(pilot, tab, "requests", lambda r: r["requested_by"] == "user:manager1")
        assert mine["status"] == "pending"
        await settle(pilot)


def test_owner_approves_only_anothers_request_after_typing_erase(retention_daemon):
    d = retention_daemon
    token = token_for(d, "owner1", d.seeded["owner_totp"])
    own = d.call("erasure.request", {"client_id": d.seeded["clients"][4], "reason": "ref 5"}, token=token)
    drive(lambda: _owner(d, token, own["id"]))
    statuses = {r["id"]: r["status"] for r in d.call("erasure.list", {"include_closed": True})}
    assert statuses == {d.seeded["request"]: "executed", own["id"]: "pending"}
    holds = d.call("hold.list", {"include_released": True})
    assert {(h["scope"], h["active"]) for h in holds} == {("client", False), ("practice", True)}


async def _owner(daemon, token, own_id):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "retention", lambda tab: tab.rows["policies"])
        await show_view(pilot, tab, "requests")
        await select(pilot, tab, "requests", lambda r: r["id"] == own_id)
        assert app.screen.active_bindings["a"].enabled is False
        assert app.screen.active_bindings["j"].enabled is False
        assert "you filed this request" in note(tab) and "four-eyes" in note(tab)

        request = await select(pilot, tab, "requests", lambda r: r["id"] == daemon.seeded["request"])
        await wait_for(pilot, lambda: app.screen.active_bindings["a"].enabled, what="approve enabled")
        await pilot.press("a")
        await wait_for(pilot, showing(app, TypedConfirmScreen), what="typed confirmation")
        consequence = str(app.screen.query_one("#consequence", Static).render())
        assert request["client_id"] in consequence and "cannot be recovered" in consequence
        assert "old" in consequence and "backup" in consequence
        assert app.screen.query_one("#yes", Button).disabled
        await pilot.press(*"ERAS", "enter")
        assert isinstance(app.screen, TypedConfirmScreen)     # not yet the word
        await pilot.press("E", "enter")
        await wait_for(pilot, lambda: (tab.rows["requests"].get(request["id"]) or {}).get("status") == "executed",
                       what="request executed")

        await show_view(pilot, tab, "holds")
        await select(pilot, tab, "holds", lambda h: h["active"])
        await wait_for(pilot, lambda: app.screen.active_bindings["x"].enabled, what="release enabled")
        await pilot.press("x")
        await wait_for(pilot, showing(app, ConfirmScreen), what="release confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: not any(h["active"] for h in tab.rows["holds"].values()), what="released")
        await pilot.press("p")
        await wait_for(pilot, showing(app, FormScreen), what="hold form")
        await pilot.press("enter", *"Regulator inquiry 7", "enter")
        await wait_for(pilot, lambda: any(h["active"] and h["scope"] == "practice" for h in tab.rows["holds"].values()),
                       what="practice hold listed")
        keys = await in_thread(daemon.call, "erasure.list", {"include_closed": True})
        assert any(r["status"] == "executed" for r in keys)
        await settle(pilot)


def test_operator_sets_a_policy_and_runs_retention_from_the_tab(retention_daemon):
    drive(lambda: _operator(retention_daemon))
    policy = next(p for p in retention_daemon.call("retention.policy.list") if p["table_name"] == "client_files")
    assert (policy["archive_after_days"], policy["delete_after_days"]) == (400, 3000)
    runs = retention_daemon.call("job.list", {"kind": "retention"})
    assert [r["status"] for r in runs] == ["succeeded"] and runs[0]["requested_by"].startswith("local:")


async def _operator(daemon):
    async with at_main_screen(daemon) as (app, pilot):
        tab = await open_tab(pilot, "retention", lambda tab: tab.rows["policies"])
        await show_view(pilot, tab, "policies")
        await pilot.press("e")
        tables = await choices(pilot, "the table picker")      # picked from the catalogue, not typed
        assert [tables.get_option_at_index(i).id for i in range(tables.option_count)] == \
            ["clients", "therapy_sessions", "client_files"]
        await choose_kind(pilot, "client_files", "the table picker")
        await wait_for(pilot, showing(app, FormScreen), what="policy form")
        form = app.screen      # a value the form cannot send: it stays open, everything typed kept
        assert "client_files" in str(form.query_one(".dialog-title", Static).render())
        form.query_one("#archive", Input).value = "soon"
        form.query_one("#delete", Input).value = "3000"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "whole numbers" in str(form.query_one("#form-error", Static).render()),
                       what="the form's own refusal")
        assert form.query_one("#archive", Input).value == "soon"
        form.query_one("#archive", Input).value = "4000"          # after the deletion: the daemon refuses it
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Refused" in str(form.query_one("#form-error", Static).render()),
                       what="the daemon's refusal in the form")
        assert showing(app, FormScreen)() and form.query_one("#delete", Input).value == "3000"
        form.query_one("#archive", Input).value = "400"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen), what="the form closed when saved")
        await wait_for(pilot, lambda: any(p["table_name"] == "client_files" and p["archive_after_days"] == 400
                                          for p in tab.rows["policies"].values()), what="policy shown")
        await show_view(pilot, tab, "upcoming")
        await wait_for(pilot, lambda: app.screen.active_bindings["r"].enabled, what="run enabled")
        await pilot.press("r")
        await wait_for(pilot, showing(app, ConfirmScreen), what="run confirmation")
        assert "legal hold are left alone" in str(app.screen.query_one("#consequence", Static).render())
        await pilot.press("y")
        summary = tab.query_one("#retention-summary", Static)
        await wait_for(pilot, lambda: "run succeeded" in str(summary.render()), what="run finished")
        await settle(pilot)
