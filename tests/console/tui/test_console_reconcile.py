"""The Reconcile tab against a real strongroomd (both engines) over two planted records of
one synthetic person and a stranger (tests.daemon.conftest.seed_reconcile_demo), at 80x24:
a clinician (granted job:reconcile:run) finds the pair, opens it side by side, merges it
keeping client B, undoes the merge and dismisses the pair, each after a confirmation
saying what will happen; a refusal comes back in the daemon's words; front-desk staff
see the values masked and every action disabled with the reason; pages of pairs follow
one another with n and p. Bounded waits."""
from __future__ import annotations

import time
import uuid

import pytest

from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.pair import PairScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs import reconcile as reconcile_tab
from strongroom.console.tabs.reconcile import ReconcileTab
from strongroom.core.db.models import ReconcilePair
from strongroom.console.widgets.job_progress import JobProgress
from textual.widgets import DataTable, Static

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, choices, choose_kind, open_tab, settle
from tests.daemon.conftest import (FAST_HEALTH, PERSON, data_transaction, login, make_data_dir, running_daemon,
                                   seed_reconcile_demo)


@pytest.fixture
def reconcile_daemon(tmp_path, db_url):
    """Two records of PERSON and one stranger; the clinician (a practitioner: clients
    read and write, phi:read) may start the job for an hour, as `strongroom user grant` gives."""
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    ids = seed_reconcile_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.ids = ids
        proc.call("user.grant.add", {"username": "clinician", "permission": "job:reconcile:run", "duration": "1h",
                                     "reason": "duplicate clean-up"})
        yield proc


def found(daemon) -> dict:
    """Run the reconcile job through the daemon (not the console) and return its one pair."""
    run = daemon.call("reconcile.run")
    deadline = time.monotonic() + 30
    while run["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
        run = daemon.call("job.get", {"run_id": run["id"]})
    assert run["status"] == "succeeded", run["error"]
    (pair,) = daemon.call("reconcile.list")["items"]
    return pair


def text_of(node, selector: str) -> str:
    return str(node.query_one(selector, Static).render())


def toasts(app) -> str:
    return " | ".join(str(n.message) for n in app._notifications)


def pairs_loaded(tab: ReconcileTab) -> bool:
    return tab.shown and "pair" in text_of(tab, "#reconcile-summary").lower()


async def open_pair(pilot, tab: ReconcileTab) -> PairScreen:
    tab.query_one("#reconcile-table", DataTable).focus()
    await pilot.press("enter")
    await wait_for(pilot, showing(pilot.app, PairScreen), what="the pair side by side")
    return pilot.app.screen


def grid(screen: PairScreen) -> dict[str, tuple[str, str, str]]:
    """The side-by-side grid as drawn: field -> (label, A, B)."""
    table = screen.query_one("#pair-fields", DataTable)
    return {key.value: tuple(table.get_cell(key, column).plain for column in ("field", "a", "b"))
            for key in table.rows}


def test_clinician_finds_a_pair_merges_it_keeping_b_and_undoes_the_merge(reconcile_daemon):
    token = login(reconcile_daemon, "clinician")
    drive(lambda: _merge_and_undo(reconcile_daemon, token))


async def _merge_and_undo(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "reconcile", pairs_loaded)
        assert "No open pairs. r finds likely duplicates." in text_of(tab, "#reconcile-summary")
        assert app.screen.active_bindings["r"].enabled is True
        assert app.screen.active_bindings["m"].enabled is False          # nothing listed yet
        assert "m d u: no pair listed" in text_of(tab, "#reconcile-note")

        await pilot.press("r")                                           # the job, followed live
        running = tab.query_one("#reconcile-running")
        await wait_for(pilot, lambda: [r.status for r in running.query(JobProgress)] == ["succeeded"],
                       what="the run's progress ending in success")
        table = tab.query_one("#reconcile-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the pair listed after the run")
        (pair,) = (await in_thread(daemon.call, "reconcile.list"))["items"]
        assert {pair["client_a"], pair["client_b"]} == set(daemon.ids[:2])   # never the stranger
        score, status, a, b, reasons, _ = (c.plain for c in table.get_row(pair["pair_id"]))
        assert score == f"{pair['score']:.2f}" and status == "open"
        assert a == "…" + pair["client_a"].replace("-", "")[-8:] and b == "…" + pair["client_b"].replace("-", "")[-8:]
        assert "dob=" in reasons.split() and "email=" in reasons.split()
        assert f"pair {pair['pair_id']}" in text_of(tab, "#reconcile-detail")
        assert pair["client_b"] in text_of(tab, "#reconcile-detail")
        note = text_of(tab, "#reconcile-note")
        assert "m merge" in note and "d dismiss" in note and "u: the pair is open, not merged" in note

        screen = await open_pair(pilot, tab)                             # side by side, in the clear
        fields = grid(screen)
        assert fields["first_name"] == ("= first_name", PERSON["first_name"], PERSON["first_name"])
        assert fields["date_of_birth"][0] == "= date_of_birth"
        label, *last_names = fields["last_name"]
        assert label == "≠ last_name" and set(last_names) == {PERSON["last_name"], "Ofthequrons"}
        assert fields["phone"][0] == "≠ phone" and PERSON["phone"] in fields["phone"][1:]
        assert "PHI masked" not in text_of(screen, "#pair-head")
        assert screen.active_bindings["u"].enabled is False and screen.active_bindings["m"].enabled is True

        await pilot.press("m")                                           # who survives: B
        options = await choices(pilot, "the survivor choice")
        assert [options.get_option_at_index(i).id for i in range(2)] == [pair["client_a"], pair["client_b"]]
        await choose_kind(pilot, pair["client_b"], "the survivor choice")
        await wait_for(pilot, showing(app, ConfirmScreen), what="the merge confirmation")
        consequence = text_of(app.screen, "#consequence")
        assert f"Client {pair['client_b']} is kept" in consequence
        assert f"client {pair['client_a']} is retired" in consequence and "undoes it" in consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and table.row_count == 0,
                       what="the merged pair gone from the open list")
        merged = (await in_thread(daemon.call, "reconcile.list", {"status": "merged"}))["items"]
        assert [p["merge_record"]["survivor"] for p in merged] == [pair["client_b"]]
        assert merged[0]["decided_by"] == "user:clinician"
        shown = await in_thread(daemon.call, "reconcile.show", {"pair_id": pair["pair_id"]})
        assert [c["deleted_at"] is None for c in shown["clients"]] == [False, True]   # A retired
        await wait_for(pilot, lambda: "Merged into" in toasts(app), what="the merge said")

        table.focus()
        await pilot.press("f")                                           # open -> merged
        await wait_for(pilot, lambda: tab.filter == "merged" and table.row_count == 1, what="the merged filter")
        assert table.get_row(pair["pair_id"])[1].plain == "merged"
        assert app.screen.active_bindings["m"].enabled is False and app.screen.active_bindings["u"].enabled is True
        assert "m d: the pair is merged, not open" in text_of(tab, "#reconcile-note")
        await pilot.press("u")
        await wait_for(pilot, showing(app, ConfirmScreen), what="the undo confirmation")
        consequence = text_of(app.screen, "#consequence")
        assert f"go back to client {pair['client_a']}" in consequence and "open again" in consequence
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and table.row_count == 0,
                       what="the pair gone from the merged list")
        await settle(pilot)
    (again,) = (await in_thread(daemon.call, "reconcile.list"))["items"]
    assert again["pair_id"] == pair["pair_id"] and again["merge_record"] is None
    shown = await in_thread(daemon.call, "reconcile.show", {"pair_id": pair["pair_id"]})
    assert [c["deleted_at"] for c in shown["clients"]] == [None, None]   # A is back


def test_clinician_dismisses_a_pair_after_confirming(reconcile_daemon):
    pair = found(reconcile_daemon)
    token = login(reconcile_daemon, "clinician")
    drive(lambda: _dismiss(reconcile_daemon, token, pair))


async def _dismiss(daemon, token, pair):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "reconcile", pairs_loaded)
        table = tab.query_one("#reconcile-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the pair")
        table.focus()
        await pilot.press("d")
        await wait_for(pilot, showing(app, ConfirmScreen), what="the dismiss confirmation")
        consequence = text_of(app.screen, "#consequence")
        assert "two different people" in consequence and "Neither client changes" in consequence
        await pilot.press("n")                                           # no: nothing happens
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="back to the list")
        assert (await in_thread(daemon.call, "reconcile.list"))["items"][0]["status"] == "open"
        await pilot.press("d")
        await wait_for(pilot, showing(app, ConfirmScreen), what="the dismiss confirmation again")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and table.row_count == 0,
                       what="the dismissed pair gone from the open list")
        await settle(pilot)
    dismissed = (await in_thread(daemon.call, "reconcile.list", {"status": "dismissed"}))["items"]
    assert [(p["pair_id"], p["decided_by"]) for p in dismissed] == [(pair["pair_id"], "user:clinician")]


def test_a_merge_refused_by_the_daemon_is_shown_in_its_words(reconcile_daemon):
    pair = found(reconcile_daemon)
    token = login(reconcile_daemon, "clinician")
    drive(lambda: _refused(reconcile_daemon, token, pair))


async def _refused(daemon, token, pair):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "reconcile", pairs_loaded)
        table = tab.query_one("#reconcile-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the pair")
        await open_pair(pilot, tab)
        # Someone else dismisses the pair while it is open here.
        await in_thread(daemon.call, "reconcile.dismiss", {"pair_id": pair["pair_id"]})
        await wait_for(pilot, lambda: table.row_count == 0, what="the list following the other decision")
        await pilot.press("m")
        await choices(pilot, "the survivor choice")
        await pilot.press("enter")                                      # the first: client A
        await wait_for(pilot, showing(app, ConfirmScreen), what="the merge confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: "Could not merge: pair_id: the pair is dismissed" in toasts(app),
                       what="the daemon's refusal")
        await settle(pilot)
    (still,) = (await in_thread(daemon.call, "reconcile.list", {"status": "dismissed"}))["items"]
    assert still["merge_record"] is None


def test_staff_see_the_pair_masked_and_every_action_disabled_with_the_reason(reconcile_daemon):
    pair = found(reconcile_daemon)
    token = login(reconcile_daemon, "staff1")
    drive(lambda: _staff(reconcile_daemon, token, pair))


async def _staff(daemon, token, pair):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "reconcile", pairs_loaded)
        table = tab.query_one("#reconcile-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the pair, listed for staff too")
        table.focus()
        for key in ("m", "d", "u", "r"):
            assert app.screen.active_bindings[key].enabled is False, key
        note = text_of(tab, "#reconcile-note")
        assert "m d u: user:staff1 lacks table:clients:write" in note
        assert "r: user:staff1 lacks job:reconcile:run" in note
        await pilot.press("m")                                           # nothing to confirm, nothing sent
        assert not isinstance(app.screen, ConfirmScreen)

        screen = await open_pair(pilot, tab)
        assert "PHI masked: user:staff1 lacks phi:read · ?: masked, not comparable" in text_of(screen, "#pair-head")
        fields = grid(screen)
        first = PERSON["first_name"]
        # masked alike is not the same: never marked equal
        assert fields["first_name"] == ("? first_name", first[0] + "***", first[0] + "***")
        assert fields["status"][0] == "= status"
        assert all(PERSON[f] not in " ".join(fields[f]) for f in ("first_name", "last_name", "phone", "email"))
        assert fields["date_of_birth"] == ("? date_of_birth", "[redacted]", "[redacted]")  # data, not markup
        label, *phones = fields["phone"]                                 # masks that differ: values differ
        assert label == "≠ phone" and all(p.startswith("***-***-") for p in phones)
        for key in ("m", "d", "u"):
            assert screen.active_bindings[key].enabled is False, key
        assert "m d u: user:staff1 lacks table:clients:write" in text_of(screen, "#pair-note")
        await pilot.press("m")
        assert app.screen is screen
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="back to the list")
        await settle(pilot)
    assert (await in_thread(daemon.call, "reconcile.list"))["items"][0]["status"] == "open"


def test_pairs_beyond_one_page_are_reached_with_n_and_back_with_p(reconcile_daemon, monkeypatch):
    best = found(reconcile_daemon)
    with data_transaction(reconcile_daemon.data_dir) as (ctx, conn):     # a weaker second pair
        conn.execute(ReconcilePair.__table__.insert(), {
            "id": uuid.uuid4(), "practice_id": uuid.UUID(best["practice_id"]),
            "client_a": uuid.UUID(reconcile_daemon.ids[0]), "client_b": uuid.UUID(reconcile_daemon.ids[2]),
            "score": 0.5, "reasons": "dob=", "status": "open"})
    monkeypatch.setattr(reconcile_tab, "LIMIT", 1)                      # one pair a page
    token = login(reconcile_daemon, "clinician")
    drive(lambda: _paging(reconcile_daemon, token, best))


async def _paging(daemon, token, best):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        tab = await open_tab(pilot, "reconcile", pairs_loaded)
        table = tab.query_one("#reconcile-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="the first page")
        table.focus()
        assert tab.selected()["pair_id"] == best["pair_id"]
        assert "page 1: 1–1 (n: next page)" in text_of(tab, "#reconcile-summary")
        assert "n next page" in text_of(tab, "#reconcile-note")
        assert app.screen.active_bindings["p"].enabled is False            # no page before the first
        await pilot.press("n")
        await wait_for(pilot, lambda: "page 2: 2–2" in text_of(tab, "#reconcile-summary"), what="the second page")
        assert tab.selected()["score"] == 0.5 and "n: next page" not in text_of(tab, "#reconcile-summary")
        assert app.screen.active_bindings["n"].enabled is False            # the last page
        assert "p previous page" in text_of(tab, "#reconcile-note")
        await pilot.press("p")
        await wait_for(pilot, lambda: "page 1: 1–1" in text_of(tab, "#reconcile-summary"), what="back to the first")
        assert tab.selected()["pair_id"] == best["pair_id"]
        await settle(pilot)
