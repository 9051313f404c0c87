"""The practice screen (Users tab, `p`) against a real strongroomd on both engines: the
details, staff and services listed; a service added after one refused value (the form
stays open with everything typed and shows the daemon's words); a staff member added,
a service edited and retired, the details changed; and a user who may only read sees
every change action disabled with the reason."""
from __future__ import annotations

from strongroom.console.modals.form import FormScreen
from strongroom.console.modals.practice import PracticeScreen, changes, money
from textual.widgets import DataTable, Input, Static

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, open_practice
from tests.daemon.conftest import login


def test_money_and_changes_send_only_what_changed():
    assert money(12000) == "120.00" and money(None) == "—"
    initial = {"name": "Intake", "price_cents": 12000, "description": "first visit"}
    assert changes(initial, {"name": "Intake", "price_cents": "9000", "description": ""}, {"description"}) == {
        "price_cents": "9000", "clear": ["description"]}
    assert changes(initial, {"name": "Intake", "price_cents": "12000", "description": "first visit"}, set()) == {}


async def _fill(pilot, app, values: dict) -> None:
    await wait_for(pilot, showing(app, FormScreen), what="form")
    for field, value in values.items():
        app.screen.query_one(f"#{field}", Input).value = value
    await pilot.press("ctrl+s")


def test_an_owner_adds_edits_and_retires_and_a_refusal_keeps_the_form(demo_daemon):
    drive(lambda: _manage(demo_daemon), timeout=120)
    [service] = [s for s in demo_daemon.call("service.list", {"include_inactive": True})["items"]
                 if s["name"] == "Couples intake"]
    assert (service["price_cents"], service["duration_minutes"], service["active"]) == (13500, 80, False)
    assert any(s["last_name"] == "Okonkwo" and s["role"] == "PRACTITIONER"
               for s in demo_daemon.call("staff.list")["items"])
    assert demo_daemon.call("practice.show")["phone"] == "+1 555 0100"


async def _manage(daemon):
    async with at_main_screen(daemon) as (app, pilot):
        screen = await open_practice(pilot, app)
        assert screen.practice["name"] in str(screen.query_one("#practice-details", Static).render())

        await pilot.press("v")
        await _fill(pilot, app, {"name": "Couples intake", "category": "therapy", "duration_minutes": "80",
                                 "price_cents": "a lot"})
        form = app.screen
        await wait_for(pilot, lambda: "Refused" in str(form.query_one("#form-error", Static).render()),
                       what="the refusal shown in the form")
        refusal = str(form.query_one("#form-error", Static).render())
        assert "price_cents" in refusal and "a lot" not in refusal
        assert isinstance(app.screen, FormScreen)                       # still open, nothing lost
        assert form.query_one("#name", Input).value == "Couples intake"
        form.query_one("#price_cents", Input).value = "12000"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, PracticeScreen), what="back on the practice screen")
        await wait_for(pilot, lambda: any(s["name"] == "Couples intake" for s in screen.services.values()),
                       what="the new service listed")

        await pilot.press("n")
        await _fill(pilot, app, {"first_name": "Ada", "last_name": "Okonkwo", "role": "PRACTITIONER",
                                 "hourly_rate_cents": "9500"})
        await wait_for(pilot, showing(app, PracticeScreen), what="staff added")
        await wait_for(pilot, lambda: any(s["last_name"] == "Okonkwo" for s in screen.staff.values()),
                       what="the new staff member listed")

        services = screen.query_one("#practice-services", DataTable)
        services.focus()
        key = next(k for k, s in screen.services.items() if s["name"] == "Couples intake")
        services.move_cursor(row=services.get_row_index(key))
        await pilot.press("enter")
        await _fill(pilot, app, {"price_cents": "13500"})
        await wait_for(pilot, showing(app, PracticeScreen), what="service edited")
        await wait_for(pilot, lambda: screen.services[key]["price_cents"] == 13500, what="the new price")
        await pilot.press("x")
        await wait_for(pilot, lambda: screen.services[key]["active"] is False, what="service retired")

        await pilot.press("e")
        await _fill(pilot, app, {"phone": "+1 555 0100"})
        await wait_for(pilot, showing(app, PracticeScreen), what="details saved")
        await wait_for(pilot, lambda: screen.practice.get("phone") == "+1 555 0100", what="the new phone shown")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, PracticeScreen), what="closed")


def test_a_clinician_reads_the_lists_with_every_change_disabled_and_why(demo_daemon):
    drive(lambda: _read_only(demo_daemon), timeout=90)


async def _read_only(daemon):
    token = await in_thread(login, daemon, "clinician")        # a practitioner: reads, never edits
    async with at_main_screen(daemon, token=token) as (app, pilot):
        screen = await open_practice(pilot, app)
        for key in ("e", "n", "v", "x"):
            assert screen.active_bindings[key].enabled is False
        assert "read only" in str(screen.query_one("#practice-note", Static).render())
