"""A client's appointments (practice screen, `b`) against a real strongroomd on both
engines: the client chosen in the picker, an appointment booked by service and staff
name after two refused values (the form stays open with everything typed, the daemon's
words shown, nothing booked), its status and payment status set and a bad status
refused; the front desk books without phi:read, and an auditor, who may not read
appointments, finds the key disabled with the reason. Booking is driven as the local
operator and as a practitioner (clinician)."""
from __future__ import annotations

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.helpers.identity import Identity
from strongroom.console.modals.appointments import AppointmentsScreen, resolve
from strongroom.console.modals.client_picker import ClientPickerScreen
from strongroom.console.modals.form import FormScreen
from strongroom.console.modals.practice import PracticeScreen
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from textual.widgets import DataTable, Input, OptionList, Static

from tests.console.tui.conftest import FAST_HEALTH, SIZE, drive, in_thread, showing, wait_for
from tests.console.tui.test_console_practice import _fill, _open_practice
from tests.daemon.conftest import PASSWORD, data_transaction, login, make_data_dir, running_daemon

# Synthetic people, nobody's data.
CLIENT = {"first_name": "Orrin", "last_name": "Quillfeather", "date_of_birth": "1981-02-03"}


@pytest.fixture
def booking_daemon(tmp_path, db_url):
    """A daemon over one client (`.client_id`), a service, a staff member and a front-desk
    account `desk` (STAFF: appointments read and write, no phi:read)."""
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    with data_transaction(data_dir) as (ctx, conn):
        ids: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), [CLIENT], created=ids)
        create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "desk", PASSWORD, Role.STAFF, actor="test")
    with running_daemon(data_dir, tmp_path) as proc:
        proc.client_id = str(ids[0])
        proc.service = proc.call("service.add", {"name": "Intake", "category": "assessment",
                                                 "duration_minutes": 60, "price_cents": 15000})
        proc.staff = proc.call("staff.add", {"first_name": "Ola", "last_name": "Penn", "role": "PRACTITIONER"})
        yield proc


def test_resolve_takes_an_id_as_given_or_one_active_name():
    records = {"7b0e6f1c-0000-4000-8000-000000000001": {"name": "Intake", "active": True},
               "7b0e6f1c-0000-4000-8000-000000000002": {"name": "Intake", "active": False}}
    assert resolve("service", "intake", records, lambda s: s["name"]) == "7b0e6f1c-0000-4000-8000-000000000001"
    some_id = "7b0e6f1c-0000-4000-8000-00000000000f"
    assert resolve("service", some_id, records, lambda s: s["name"]) == some_id
    with pytest.raises(ValueError, match="no active one"):
        resolve("service", "Couples", records, lambda s: s["name"])


async def _open_appointments(pilot, app) -> AppointmentsScreen:
    await _open_practice(pilot, app)
    await pilot.press("b")
    await wait_for(pilot, showing(app, ClientPickerScreen), what="client picker")
    picker = app.screen
    await pilot.press(*"quillfeather", "enter")
    results = picker.query_one("#picker-results", OptionList)
    await wait_for(pilot, lambda: results.option_count == 1 and results.has_focus, what="one match")
    await pilot.press("enter")
    await wait_for(pilot, showing(app, AppointmentsScreen), what="appointments screen")
    screen = app.screen
    await wait_for(pilot, lambda: screen.loaded, what="appointments loaded")
    return screen


async def _refused(pilot, form) -> str:
    await wait_for(pilot, lambda: "Refused" in str(form.query_one("#form-error", Static).render()),
                   what="the refusal shown in the form")
    return str(form.query_one("#form-error", Static).render())


def _rows(screen) -> list[list[str]]:
    table = screen.query_one("#appointments-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


@pytest.mark.parametrize("who", ["local-operator", "clinician"])
def test_the_operator_or_a_practitioner_books_an_appointment_and_sets_its_status_and_payment(booking_daemon, who):
    token = booking_daemon.local_token() if who == "local-operator" else login(booking_daemon, who)
    drive(lambda: _book(booking_daemon, token), timeout=120)
    (held,) = booking_daemon.call("appointment.list", {"client_id": booking_daemon.client_id})["items"]
    assert (held["status"], held["payment_status"], held["price_cents"]) == ("CONFIRMED", "PAID", 15000)
    assert held["starts_at"].startswith("2031-03-04T09:00")             # stored in UTC
    assert (held["service_id"], held["staff_id"]) == (booking_daemon.service["id"], booking_daemon.staff["id"])
    assert held["duration_minutes"] == 60


async def _book(daemon, token):
    app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_appointments(pilot, app)
        assert screen.client_id == daemon.client_id and _rows(screen) == []

        await pilot.press("a")
        await _fill(pilot, app, {"starts_at": "next tuesday", "duration_minutes": "60", "service": "intake",
                                 "staff": "Ola Penn"})
        form = app.screen
        refusal = await _refused(pilot, form)
        assert "starts_at" in refusal and "next tuesday" not in refusal
        form.query_one("#starts_at", Input).value = "2031-03-04T10:00+01:00"
        form.query_one("#price_cents", Input).value = "-5"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "price_cents" in str(form.query_one("#form-error", Static).render()),
                       what="the second refusal")
        assert isinstance(app.screen, FormScreen) and form.query_one("#service", Input).value == "intake"
        held = await in_thread(daemon.call, "appointment.list", {"client_id": daemon.client_id})
        assert held["items"] == []                                       # nothing booked
        form.query_one("#price_cents", Input).value = ""                 # the service's price
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="back on the appointments")
        await wait_for(pilot, lambda: len(screen.appointments) == 1, what="the booking listed")
        (row,) = _rows(screen)
        assert row[:5] == ["2031-03-04 09:00", "60", "SCHEDULED", "PENDING", "150.00"]
        assert row[5:] == ["Intake", "Ola Penn", "no"]

        await pilot.press("s")
        await _fill(pilot, app, {"status": "postponed"})
        form = app.screen
        assert "status" in await _refused(pilot, form)
        assert isinstance(app.screen, FormScreen)
        (unchanged,) = screen.appointments.values()
        assert unchanged["status"] == "SCHEDULED"
        form.query_one("#status", Input).value = "confirmed"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="status saved")
        await wait_for(pilot, lambda: _rows(screen)[0][2] == "CONFIRMED", what="the new status listed")

        await pilot.press("y")
        await _fill(pilot, app, {"payment_status": "PAID"})
        await wait_for(pilot, showing(app, AppointmentsScreen), what="payment saved")
        await wait_for(pilot, lambda: _rows(screen)[0][3] == "PAID", what="the new payment status listed")
        await pilot.press("escape")
        await wait_for(pilot, showing(app, PracticeScreen), what="back on the practice screen")


def test_the_front_desk_books_without_phi_read(booking_daemon):
    drive(lambda: _desk(booking_daemon), timeout=90)
    (held,) = booking_daemon.call("appointment.list", {"client_id": booking_daemon.client_id})["items"]
    assert held["starts_at"].startswith("2031-05-06T08:30") and held["price_cents"] == 9000


async def _desk(daemon):
    token = await in_thread(login, daemon, "desk")
    app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_appointments(pilot, app)
        assert not screen.identity.can("phi:read")
        assert screen.active_bindings["a"].enabled is True
        for key in ("s", "y"):                                    # nothing to change yet, and why
            assert screen.active_bindings[key].enabled is False
        assert screen.why_not("set_status") == "no appointment selected"
        await pilot.press("a")
        await _fill(pilot, app, {"starts_at": "2031-05-06T08:30Z", "duration_minutes": "45", "price_cents": "9000"})
        await wait_for(pilot, showing(app, AppointmentsScreen), what="booked")
        await wait_for(pilot, lambda: len(screen.appointments) == 1, what="the booking listed")
        assert screen.active_bindings["s"].enabled is True and screen.active_bindings["y"].enabled is True
        assert "read only" not in str(screen.query_one("#appointments-note", Static).render())


def test_an_auditor_finds_appointments_disabled_with_the_reason(booking_daemon):
    drive(lambda: _auditor(booking_daemon), timeout=90)


async def _auditor(daemon):
    token = await in_thread(login, daemon, "auditor1")
    app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "identity", None), what="identity")
        identity: Identity = app.screen.identity
        # The Users tab's `p` is already disabled for an auditor (no table:practices:read);
        # the practice screen itself says why `b` is, too.
        app.push_screen(PracticeScreen(identity))
        await wait_for(pilot, showing(app, PracticeScreen), what="practice screen")
        screen = app.screen
        assert screen.active_bindings["b"].enabled is False
        assert screen.why_not("appointments") == "user:auditor1 lacks table:therapy_sessions:read"
        await pilot.press("b")
        assert isinstance(app.screen, PracticeScreen)                       # no picker
        # Opened anyway, the list shows the daemon's refusal and no change is offered.
        app.push_screen(AppointmentsScreen(identity, daemon.client_id))
        await wait_for(pilot, showing(app, AppointmentsScreen), what="appointments screen")
        appointments = app.screen
        note = appointments.query_one("#appointments-note", Static)
        await wait_for(pilot, lambda: "therapy_sessions" in str(note.render()), what="the refusal")
        assert all(appointments.active_bindings[key].enabled is False for key in ("a", "s", "y"))
        assert appointments.why_not("book") == "user:auditor1 lacks table:therapy_sessions:write"
