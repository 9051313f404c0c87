"""A client's appointments (practice screen, `b`) against a real strongroomd on both
engines: the client chosen in the picker, an appointment booked with its service and
staff member picked from lists after two refused values (the form stays open with
everything kept, the daemon's words shown, nothing booked), its status and payment status
picked from the protocol's values; the edit form changes the time, duration, service,
staff, price and reminder, a refusal kept inline with nothing changed, and never shows
or asks for the clinical fields; the front desk books without phi:read, and an auditor,
who may not read appointments, finds the key disabled with the reason. Booking is driven
as the local operator and as a practitioner (clinician)."""
from __future__ import annotations

import pytest

from strongroom.console.helpers.identity import Identity
from strongroom.console.modals.appointment_form import AppointmentForm, options, shown
from strongroom.console.modals.appointments import AppointmentsScreen, booking, changes
from strongroom.console.modals.practice import PracticeScreen
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.protocol.models.appointments import APPOINTMENT_STATUSES, PAYMENT_STATUSES
from textual.widgets import Checkbox, DataTable, Input, Select, Static

from tests.console.tui.conftest import FAST_HEALTH, drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, open_for_client
from tests.daemon.conftest import PASSWORD, data_transaction, login, make_data_dir, running_daemon

# Synthetic people, nobody's data.
CLIENT = {"first_name": "Orrin", "last_name": "Quillfeather", "date_of_birth": "1981-02-03"}
NOTE = "zq-Orrin spoke about the flood"
TRICKY = "Couples [/x] [red]intake"     # a service name that looks like markup


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


ONE, TWO, GONE = ("7b0e6f1c-0000-4000-8000-00000000000" + c for c in "12f")


def test_the_pickers_offer_active_records_by_name_and_keep_the_current_one():
    records = {ONE: {"name": "Intake", "active": True}, TWO: {"name": "Old", "active": False}}
    offered = options(records, lambda s: s["name"], None)
    assert [(str(label), key) for label, key in offered] == [("Intake", ONE)]
    assert [str(label) for label, _ in options(records, lambda s: s["name"], TWO)] == ["Intake", "Old (retired)"]
    assert [str(label) for label, _ in options(records, lambda s: s["name"], GONE)] == [GONE[:8] + "…", "Intake"]


def test_an_edit_sends_only_what_changed_and_clears_what_was_emptied():
    appointment = {"id": ONE, "starts_at": "2031-03-04T09:00:00+00:00", "duration_minutes": 60,
                   "status": "SCHEDULED", "payment_status": "PENDING", "service_id": ONE, "staff_id": TWO,
                   "price_cents": 15000, "reminder_sent": False, "notes": NOTE}
    held = {f: shown(appointment, f) for f in ("starts_at", "duration_minutes", "status", "payment_status",
                                                "service_id", "staff_id", "price_cents", "reminder_sent")}
    with pytest.raises(ValueError, match="Nothing changed"):
        changes(appointment, held)
    edited = {**held, "duration_minutes": "45", "service_id": None, "price_cents": "", "reminder_sent": True}
    assert changes(appointment, edited) == {"appointment_id": ONE, "duration_minutes": "45", "reminder_sent": True,
                                            "clear": ["service_id", "price_cents"]}
    assert booking(ONE, {"starts_at": "2031-03-04T10:00Z", "duration_minutes": "", "status": "SCHEDULED",
                         "service_id": None, "price_cents": "", "reminder_sent": False}) == {
        "client_id": ONE, "starts_at": "2031-03-04T10:00Z", "status": "SCHEDULED"}


async def _open_appointments(pilot, app) -> AppointmentsScreen:
    return await open_for_client(pilot, app, "b", AppointmentsScreen, "appointments screen")


async def _form(pilot, app) -> AppointmentForm:
    await wait_for(pilot, showing(app, AppointmentForm), what="appointment form")
    return app.screen


async def _fill(pilot, app, values: dict) -> AppointmentForm:
    """Set the form's fields (a picker by its value, None for none) and submit it."""
    form = await _form(pilot, app)
    for field, value in values.items():
        widget = form.query_one(f"#{field}")
        if isinstance(widget, Select):
            widget.value = Select.NULL if value is None else value
        else:
            widget.value = value
    await pilot.press("ctrl+s")
    return form


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
    # The screen shows no clinical field, so even a practitioner's lists opened none and
    # the audit log holds no READ of them (minimum necessary).
    reads = booking_daemon.call("audit.tail", {"table_name": "therapy_sessions", "action": "READ"})
    assert [r for r in reads if r["actor"] == f"user:{who}"] == []
    (held,) = booking_daemon.call("appointment.list", {"client_id": booking_daemon.client_id})["items"]
    assert (held["status"], held["payment_status"], held["price_cents"]) == ("CONFIRMED", "PAID", 15000)
    assert held["starts_at"].startswith("2031-03-04T09:00")             # stored in UTC
    assert (held["service_id"], held["staff_id"]) == (booking_daemon.service["id"], booking_daemon.staff["id"])
    assert held["duration_minutes"] == 60


async def _book(daemon, token):
    async with at_main_screen(daemon, token=token) as (app, pilot):
        screen = await _open_appointments(pilot, app)
        assert screen.client_id == daemon.client_id and _rows(screen) == []

        await pilot.press("a")
        form = await _form(pilot, app)
        assert form.query_one("#status", Select).value == "SCHEDULED"
        service = form.query_one("#service_id", Select)
        assert [str(label) for label, _ in service._options[1:]] == ["Intake"]       # [0] is "none"
        await _fill(pilot, app, {"starts_at": "next tuesday", "duration_minutes": "60",
                                 "service_id": daemon.service["id"], "staff_id": daemon.staff["id"]})
        refusal = await _refused(pilot, form)
        assert "starts_at" in refusal and "next tuesday" not in refusal
        form.query_one("#starts_at", Input).value = "2031-03-04T10:00+01:00"
        form.query_one("#price_cents", Input).value = "-5"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "price_cents" in str(form.query_one("#form-error", Static).render()),
                       what="the second refusal")
        assert isinstance(app.screen, AppointmentForm) and service.value == daemon.service["id"]
        held = await in_thread(daemon.call, "appointment.list", {"client_id": daemon.client_id})
        assert held["items"] == []                                       # nothing booked
        form.query_one("#price_cents", Input).value = ""                 # the service's price
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="back on the appointments")
        await wait_for(pilot, lambda: len(screen.appointments) == 1, what="the booking listed")
        (row,) = _rows(screen)
        assert row[:5] == ["2031-03-04 09:00", "60", "SCHEDULED", "PENDING", "150.00"]
        assert row[5:] == ["Intake", "Ola Penn", "no"]

        # The status is picked, by keyboard, from the protocol's values; nothing to type wrong.
        await pilot.press("s")
        form = await _form(pilot, app)
        status = form.query_one("#status", Select)
        assert [value for _, value in status._options] == list(APPOINTMENT_STATUSES)
        assert status.has_focus and status.value == "SCHEDULED"
        await pilot.press("enter", "down", "enter")                     # open, the next one, choose
        await wait_for(pilot, lambda: status.value == "CONFIRMED", what="CONFIRMED picked")
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="status saved")
        await wait_for(pilot, lambda: _rows(screen)[0][2] == "CONFIRMED", what="the new status listed")

        await pilot.press("y")
        form = await _form(pilot, app)
        assert [v for _, v in form.query_one("#payment_status", Select)._options] == list(PAYMENT_STATUSES)
        await _fill(pilot, app, {"payment_status": "PAID"})
        await wait_for(pilot, showing(app, AppointmentsScreen), what="payment saved")
        await wait_for(pilot, lambda: _rows(screen)[0][3] == "PAID", what="the new payment status listed")
        await pilot.press("escape")
        await wait_for(pilot, showing(app, PracticeScreen), what="back on the practice screen")


def test_the_edit_form_changes_time_service_staff_price_and_reminder_and_keeps_a_refusal(booking_daemon):
    d = booking_daemon
    other = d.call("staff.add", {"first_name": "Tam", "last_name": "Voss", "role": "PRACTITIONER"})
    tricky = d.call("service.add", {"name": TRICKY, "category": "x", "duration_minutes": 50, "price_cents": 100})
    booked = d.call("appointment.add", {"client_id": d.client_id, "starts_at": "2031-03-04T10:00:00Z",
                                        "service_id": d.service["id"], "staff_id": d.staff["id"],
                                        "notes": NOTE, "soap_summary": NOTE})
    drive(lambda: _edit(d, other, tricky), timeout=120)
    (held,) = d.call("appointment.list", {"client_id": d.client_id})["items"]
    assert held["starts_at"].startswith("2031-03-05T14:30") and held["duration_minutes"] == 45
    assert (held["service_id"], held["staff_id"], held["price_cents"]) == (None, other["id"], 9000)
    assert held["reminder_sent"] is True and held["status"] == "SCHEDULED"
    assert (held["notes"], held["soap_summary"]) == (NOTE, NOTE)           # never touched
    updates = d.call("audit.tail", {"table_name": "therapy_sessions", "action": "UPDATE"})
    assert [u["details"]["fields"] for u in updates] == [["duration_minutes", "price_cents", "reminder_sent",
                                                         "service_id", "staff_id", "starts_at"]]
    assert booked["id"] == held["id"]


async def _edit(daemon, other, tricky):
    async with at_main_screen(daemon) as (app, pilot):
        screen = await _open_appointments(pilot, app)
        await pilot.press("e")
        form = await _form(pilot, app)
        # The clinical fields are neither asked for nor shown, though this operator may read them.
        assert not form.query("#notes, #soap_summary, #billing_codes, #insurance_info")
        assert all(NOTE not in str(w.render()) for w in form.query(Static))
        assert form.query_one("#starts_at", Input).value.startswith("2031-03-04T10:00")
        assert form.query_one("#service_id", Select).value == daemon.service["id"]
        staff = form.query_one("#staff_id", Select)
        assert [str(label) for label, _ in staff._options[1:]] == ["Ola Penn", "Tam Voss"]
        # A service named like markup is offered as it is.
        service = form.query_one("#service_id", Select)
        assert TRICKY in [str(label) for label, _ in service._options]
        service.value = tricky["id"]
        await pilot.pause()
        assert TRICKY in "".join(str(w.render()) for w in service.query(Static))
        service.value = daemon.service["id"]

        form.query_one("#reminder_sent", Checkbox).value = True
        await _fill(pilot, app, {"starts_at": "2031-03-05T15:30+01:00", "duration_minutes": "45",
                                 "service_id": None, "staff_id": other["id"], "price_cents": "zq90.00"})
        refusal = await _refused(pilot, form)
        assert "price_cents" in refusal and "zq90" not in refusal
        assert form.query_one("#duration_minutes", Input).value == "45" and staff.value == other["id"]
        (unchanged,) = (await in_thread(daemon.call, "appointment.list", {"client_id": daemon.client_id}))["items"]
        assert unchanged["duration_minutes"] == 50 and unchanged["service_id"] == daemon.service["id"]
        form.query_one("#price_cents", Input).value = "9000"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="changes saved")
        await wait_for(pilot, lambda: _rows(screen)[0][1] == "45", what="the change listed")
        assert _rows(screen)[0][4:] == ["90.00", "—", "Tam Voss", "sent"]

        # enter edits too; unchanged, the form says so and stays.
        await pilot.press("enter")
        form = await _form(pilot, app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Nothing changed" in str(form.query_one("#form-error", Static).render()),
                       what="nothing to save")
        assert isinstance(app.screen, AppointmentForm)


def _under(form, field: str) -> str:
    """What the form shows on the line under `field` (its own error line)."""
    return str(form.query_one(f"#{field}-error", Static).render())


def test_a_refused_booking_stays_open_with_the_reason_under_the_field_the_daemon_names(booking_daemon):
    drive(lambda: _refused_under_field(booking_daemon), timeout=120)
    (held,) = booking_daemon.call("appointment.list", {"client_id": booking_daemon.client_id})["items"]
    assert held["duration_minutes"] == 90 and held["staff_id"] == booking_daemon.staff["id"]


async def _refused_under_field(daemon):
    async with at_main_screen(daemon) as (app, pilot):
        await _open_appointments(pilot, app)
        await pilot.press("a")
        typed = {"starts_at": "2031-03-04T10:00Z", "duration_minutes": "6000", "price_cents": "4200",
                 "service_id": daemon.service["id"], "staff_id": daemon.staff["id"]}
        form = await _fill(pilot, app, typed)
        await _refused(pilot, form)
        await wait_for(pilot, lambda: _under(form, "duration_minutes").strip(), what="the reason under Minutes")
        # The reason sits under the field it is about, that field is marked and has the
        # cursor; no other field carries a reason, and nothing typed or picked is lost.
        duration = form.query_one("#duration_minutes", Input)
        assert "600" in _under(form, "duration_minutes") and "6000" not in _under(form, "duration_minutes")
        assert duration.has_class("-refused") and duration.has_focus
        assert [f for f in typed if f != "duration_minutes" and _under(form, f).strip()] == []
        assert isinstance(app.screen, AppointmentForm)
        assert {f: form.values()[f] for f in typed} == typed
        held = await in_thread(daemon.call, "appointment.list", {"client_id": daemon.client_id})
        assert held["items"] == []                                       # nothing booked

        # Corrected, the next refusal (another field) moves the mark there.
        duration.value = "90"
        form.query_one("#starts_at", Input).value = "next tuesday"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: _under(form, "starts_at").strip(), what="the reason under Starts")
        assert "next tuesday" not in _under(form, "starts_at")
        assert _under(form, "duration_minutes").strip() == "" and not duration.has_class("-refused")
        assert form.query_one("#starts_at", Input).has_focus

        form.query_one("#starts_at", Input).value = "2031-03-04T10:00Z"
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, AppointmentsScreen), what="booked")


def test_the_front_desk_books_without_phi_read(booking_daemon):
    drive(lambda: _desk(booking_daemon), timeout=90)
    (held,) = booking_daemon.call("appointment.list", {"client_id": booking_daemon.client_id})["items"]
    assert held["starts_at"].startswith("2031-05-06T08:30") and held["price_cents"] == 9000


async def _desk(daemon):
    token = await in_thread(login, daemon, "desk")
    async with at_main_screen(daemon, token=token) as (app, pilot):
        screen = await _open_appointments(pilot, app)
        assert not screen.identity.can("phi:read")
        assert screen.active_bindings["a"].enabled is True
        for key in ("e", "s", "y"):                               # nothing to change yet, and why
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
    async with at_main_screen(daemon, token=token) as (app, pilot):
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
        assert all(appointments.active_bindings[key].enabled is False for key in ("a", "e", "s", "y"))
        assert appointments.why_not("book") == "user:auditor1 lacks table:therapy_sessions:write"
