"""The appointment commands over a real daemon's control socket (both engines): the
front desk books a client's appointment for a service with a staff member and changes
its status and payment; notes stay masked for the front desk and open, audited, for a
practitioner; bad values, another practice's service and unknown ids are refused naming
the field, never echoing it, and nothing changes; a role without the write permission
is refused."""
from __future__ import annotations

import contextlib
import uuid

import pytest

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice, only_practice
from tests.conftest import per_engine_per_module
from tests.daemon.conftest import PASSWORD, add_admin, data_transaction, error_of, login, make_data_dir, running_daemon

NOTE = "zq-client spoke about the move"
STARTS = "2031-03-04T10:00:00+00:00"


@contextlib.contextmanager
def _appointment_daemon(tmp_path, db_url):
    """A daemon over one client, with an owner, a front-desk user, a service and a staff
    member of the practice, and a service of another practice (`.other_service`)."""
    data_dir = make_data_dir(tmp_path, db_url)
    owner_secret = add_admin(data_dir)
    with data_transaction(data_dir) as (ctx, conn):
        create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "desk", PASSWORD, Role.STAFF, actor="test")
        clients: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), demo.client_records(1), created=clients)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.owner = login(proc, "boss", owner_secret)
        proc.desk = login(proc, "desk")
        proc.client_id = str(clients[0])
        proc.service = proc.call("service.add", {"name": "Intake", "category": "assessment", "duration_minutes": 60,
                                                 "price_cents": 15000}, token=proc.owner)
        proc.staff = proc.call("staff.add", {"first_name": "Mo", "last_name": "Reed", "role": "PRACTITIONER"},
                               token=proc.owner)
        with data_transaction(data_dir) as (ctx, conn):     # after: service.add defaults to the only practice
            other = create_practice(conn, SYSTEM, "Another Practice")
            proc.other_service = str(services_repo.create_service(conn, SYSTEM, other, {
                "name": "Elsewhere", "category": "x", "duration_minutes": 50, "price_cents": 100}))
        yield proc


@pytest.fixture
def appointment_daemon(tmp_path, db_url):
    with _appointment_daemon(tmp_path, db_url) as proc:
        yield proc


shared_appointment_daemon = per_engine_per_module(
    "shared_appointment_daemon", _appointment_daemon,
    "`appointment_daemon` shared by the refusals of one engine: each books its own appointment "
    "and checks that the refusal changed nothing.")


def _book(d, **extra) -> dict:
    return d.call("appointment.add", {"client_id": d.client_id, "starts_at": STARTS, "duration_minutes": 60,
                                      "service_id": d.service["id"], "staff_id": d.staff["id"], **extra},
                  token=d.desk)


def _reads(d) -> list[dict]:
    return d.call("audit.tail", {"table_name": "therapy_sessions", "action": "READ"})


def test_the_front_desk_books_a_service_with_a_staff_member_at_the_service_price(appointment_daemon):
    d = appointment_daemon
    booked = _book(d, notes=NOTE, session_type="intake")
    assert booked["service_id"] == d.service["id"] and booked["staff_id"] == d.staff["id"]
    assert booked["price_cents"] == 15000                     # the service's price
    assert (booked["status"], booked["payment_status"]) == ("SCHEDULED", "PENDING")
    assert booked["client_id"] == d.client_id and booked["duration_minutes"] == 60
    assert booked["notes"] is not None and NOTE not in str(booked)     # answered masked
    (listed,) = d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)["items"]
    assert listed["id"] == booked["id"] and listed["session_type"] == "intake"
    assert listed["starts_at"].startswith("2031-03-04T10:00")


def test_notes_are_masked_without_phi_read_and_opened_and_audited_with_it(appointment_daemon):
    d = appointment_daemon
    booked = _book(d, notes=NOTE)
    assert _reads(d) == []
    (masked,) = d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)["items"]
    assert masked["notes"] and NOTE not in str(masked)
    assert NOTE not in str(d.call("appointment.show", {"appointment_id": booked["id"]}, token=d.desk))
    assert _reads(d) == []                                     # nothing opened, nothing to audit

    clinician = login(d, "clinician")
    # A view with no use for the clinical fields asks for none: masked, nothing audited.
    (unopened,) = d.call("appointment.list", {"client_id": d.client_id, "phi": False}, token=clinician)["items"]
    assert unopened["notes"] and NOTE not in str(unopened) and _reads(d) == []
    (opened,) = d.call("appointment.list", {"client_id": d.client_id}, token=clinician)["items"]
    assert opened["notes"] == NOTE
    (read,) = _reads(d)
    assert read["actor"] == "user:clinician" and read["record_id"] == d.client_id
    assert d.call("appointment.show", {"appointment_id": booked["id"]}, token=clinician)["notes"] == NOTE
    assert [r["record_id"] for r in _reads(d)][0] == booked["id"]


def test_status_payment_and_reminder_are_changed_and_the_rest_kept(appointment_daemon):
    d = appointment_daemon
    booked = _book(d)
    changed = d.call("appointment.set", {"appointment_id": booked["id"], "status": "COMPLETED",
                                         "payment_status": "PAID", "reminder_sent": True}, token=d.desk)
    assert (changed["status"], changed["payment_status"], changed["reminder_sent"]) == ("COMPLETED", "PAID", True)
    assert changed["price_cents"] == 15000 and changed["service_id"] == d.service["id"]
    cleared = d.call("appointment.set", {"appointment_id": booked["id"], "clear": ["staff_id"],
                                         "price_cents": 9000}, token=d.desk)
    assert cleared["staff_id"] is None and cleared["price_cents"] == 9000 and cleared["status"] == "COMPLETED"
    (listed,) = d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)["items"]
    assert listed == cleared
    updates = d.call("audit.tail", {"table_name": "therapy_sessions", "action": "UPDATE"})
    assert [u["details"]["fields"] for u in updates] == [["price_cents", "staff_id"],
                                                        ["payment_status", "reminder_sent", "status"]]


@pytest.mark.parametrize("cmd, args, field, value", [
    ("appointment.add", {"status": "ZQLATER"}, "status", "ZQLATER"),
    ("appointment.add", {"payment_status": "ZQOWED"}, "payment_status", "ZQOWED"),
    ("appointment.add", {"price_cents": -5}, "price_cents", "-5"),
    ("appointment.add", {"duration_minutes": 2}, "duration_minutes", None),
    ("appointment.add", {"starts_at": "zq-tuesday"}, "starts_at", "zq-tuesday"),
    ("appointment.add", {"starts_at": "2031-03-04T10:00:00"}, "starts_at", None),      # no timezone
    ("appointment.add", {"service_id": "OTHER"}, "service_id", None),
    ("appointment.add", {"service_id": str(uuid.UUID(int=7))}, "service_id", None),
    ("appointment.add", {"staff_id": str(uuid.UUID(int=8))}, "staff_id", None),
    ("appointment.set", {"status": "ZQLATER"}, "status", "ZQLATER"),
    ("appointment.set", {"price_cents": -5}, "price_cents", "-5"),
    ("appointment.set", {"service_id": "OTHER"}, "service_id", None),
])
def test_bad_values_are_refused_by_field_and_nothing_changes(shared_appointment_daemon, cmd, args, field, value):
    d = shared_appointment_daemon
    booked = _book(d)
    args = {k: d.other_service if v == "OTHER" else v for k, v in args.items()}
    target = ({"appointment_id": booked["id"]} if cmd == "appointment.set"
              else {"client_id": d.client_id, "starts_at": STARTS})
    before = d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)
    bad = error_of(d, cmd, {**target, **args}, d.desk)
    assert bad.code == "bad_request" and field in bad.message, bad.message
    assert value is None or value not in bad.message
    assert d.call("appointment.list", {"client_id": d.client_id}, token=d.desk) == before


def test_unknown_appointments_and_clients_are_not_found(appointment_daemon):
    d = appointment_daemon
    nobody = str(uuid.uuid4())
    assert error_of(d, "appointment.set", {"appointment_id": nobody, "status": "CANCELLED"}, d.desk).code == "not_found"
    assert error_of(d, "appointment.show", {"appointment_id": nobody}, d.desk).code == "not_found"
    shown = error_of(d, "appointment.show", {"appointment_id": nobody})        # the local operator too
    assert shown.code == "not_found" and nobody not in shown.message
    missing = error_of(d, "appointment.add", {"client_id": nobody, "starts_at": STARTS}, d.desk)
    assert missing.code == "not_found"
    assert d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)["items"] == []


def test_a_role_without_the_write_permission_is_refused_and_nothing_is_booked(appointment_daemon):
    d = appointment_daemon
    booked = _book(d)
    auditor = login(d, "auditor1")
    assert error_of(d, "appointment.add", {"client_id": d.client_id, "starts_at": STARTS}, auditor).code == "forbidden"
    assert error_of(d, "appointment.set", {"appointment_id": booked["id"], "status": "CANCELLED"},
                    auditor).code == "forbidden"
    assert error_of(d, "appointment.list", {"client_id": d.client_id}, auditor).code == "forbidden"
    (kept,) = d.call("appointment.list", {"client_id": d.client_id}, token=d.desk)["items"]
    assert kept["status"] == "SCHEDULED"


def test_the_protocols_statuses_are_the_databases():
    """Clients offer the protocol's values (the console's pickers, the CLI's help); the
    protocol may not import the database's enums, so this holds the two copies equal,
    in order (the first is each field's default)."""
    from strongroom.core.db.models import PaymentStatus, SessionStatus
    from strongroom.core.protocol.models.appointments import (APPOINTMENT_STATUSES, CLEARABLE, PAYMENT_STATUSES,
                                                              AppointmentFields)
    from strongroom.core.repository.sessions import EDITABLE, SessionInput

    assert APPOINTMENT_STATUSES == tuple(s.value for s in SessionStatus)
    assert PAYMENT_STATUSES == tuple(s.value for s in PaymentStatus)
    assert (SessionInput.model_fields["status"].default.value, SessionInput.model_fields["payment_status"]
            .default.value) == (APPOINTMENT_STATUSES[0], PAYMENT_STATUSES[0])
    # What may be emptied is exactly the optional fields an update may change.
    optional = {f for f in EDITABLE if f in AppointmentFields.model_fields
                and SessionInput.model_fields[f].default is None}
    assert set(CLEARABLE) == optional
