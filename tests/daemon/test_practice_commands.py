"""The practice, staff and services commands over a real daemon's control socket (both
engines): the owner edits, a practitioner reads (secrets masked) and is refused edits,
an auditor reads nothing of it; bad values are refused naming the field, never echoing
it, and nothing changes."""
from __future__ import annotations

import contextlib
import uuid

import pytest

from tests.conftest import per_engine_per_module
from tests.daemon.conftest import add_admin, error_of, login, make_data_dir, running_daemon


@contextlib.contextmanager
def _practice_daemon(tmp_path, db_url):
    """A daemon with an owner (`boss`, logged in: `.owner`) besides the two test users."""
    data_dir = make_data_dir(tmp_path, db_url)
    secret = add_admin(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.owner = login(proc, "boss", secret)
        yield proc


@pytest.fixture
def practice_daemon(tmp_path, db_url):
    with _practice_daemon(tmp_path, db_url) as proc:
        yield proc


@contextlib.contextmanager
def _refusing_daemon(tmp_path, db_url):
    """`practice_daemon` with the clinician and the auditor logged in once (`.clinician`,
    `.auditor`), so that the tests sharing it log nobody in themselves."""
    with _practice_daemon(tmp_path, db_url) as proc:
        proc.clinician, proc.auditor = login(proc, "clinician"), login(proc, "auditor1")
        yield proc


shared_practice_daemon = per_engine_per_module(
    "shared_practice_daemon", _refusing_daemon,
    "`practice_daemon` shared by the refusals of one engine: none changes the practice, its staff "
    "or its services, and each checks that.")


def test_the_owner_sets_the_practice_staff_and_services_and_a_practitioner_reads_them(practice_daemon):
    d = practice_daemon
    shown = d.call("practice.set", {"address": "9 Elm Row", "tax_id": "TX-5501", "license_number": "L-12"},
                   token=d.owner)
    assert shown["address"] == "9 Elm Row" and shown["tax_id"] == "TX-5501"
    staff = d.call("staff.add", {"first_name": "Mo", "last_name": "Reed", "role": "PRACTITIONER",
                                 "specializations": ["CBT"], "working_hours": {"thu": ["09:00-13:00"]},
                                 "hourly_rate_cents": 7000}, token=d.owner)
    service = d.call("service.add", {"name": "Assessment", "category": "assessment", "duration_minutes": 60,
                                      "price_cents": 15000}, token=d.owner)
    d.call("staff.set", {"staff_id": staff["id"], "clear": ["hourly_rate_cents"], "phone": "+1 555 0101"},
           token=d.owner)
    d.call("service.set", {"service_id": service["id"], "price_cents": 16000}, token=d.owner)

    clinician = login(d, "clinician")
    seen = d.call("practice.show", token=clinician)
    assert seen["address"] == "9 Elm Row" and seen["tax_id"] != "TX-5501" and "TX-5501" not in str(seen)
    (member,) = d.call("staff.list", token=clinician)["items"]
    assert member["hourly_rate_cents"] is None and member["phone"] == "+1 555 0101"
    assert member["working_hours"] == {"thu": ["09:00-13:00"]}
    (listed,) = d.call("service.list", token=clinician)["items"]
    assert listed["price_cents"] == 16000
    d.call("service.set", {"service_id": service["id"], "active": False}, token=d.owner)
    assert d.call("service.list", token=clinician)["items"] == []
    assert len(d.call("service.list", {"include_inactive": True}, token=clinician)["items"]) == 1


def test_only_the_owner_edits_and_an_auditor_reads_none_of_it(shared_practice_daemon):
    d = shared_practice_daemon
    clinician, auditor = d.clinician, d.auditor
    for cmd, args in (("practice.set", {"phone": "+1 555 0102"}),
                      ("staff.add", {"first_name": "A", "last_name": "B", "role": "STAFF"}),
                      ("service.add", {"name": "X", "category": "x", "duration_minutes": 30, "price_cents": 1})):
        assert error_of(d, cmd, args, clinician).code == "forbidden"
    for cmd in ("practice.show", "staff.list", "service.list"):
        assert error_of(d, cmd, {}, auditor).code == "forbidden"
    assert d.call("staff.list", token=d.owner)["items"] == []


@pytest.mark.parametrize("cmd, args, field, value", [
    ("practice.set", {"email": "zq-not-mail"}, "email", "zq-not-mail"),
    ("practice.set", {"tax_id": "T" * 80}, "tax_id", "T" * 80),
    ("staff.add", {"first_name": "A", "last_name": "B", "role": "OVERLORD"}, "role", "OVERLORD"),
    ("staff.add", {"first_name": "A", "last_name": "B", "role": "STAFF", "working_hours": {"mon": ["zq 9-5"]}},
     "working_hours", "zq 9-5"),
    ("staff.add", {"first_name": "A", "last_name": "B", "role": "STAFF", "hourly_rate_cents": -5},
     "hourly_rate_cents", "-5"),
    ("service.add", {"name": "S", "category": "c", "duration_minutes": 50, "price_cents": "zq12.50"},
     "price_cents", "zq12.50"),
    ("service.add", {"name": "S", "category": "c", "duration_minutes": 1, "price_cents": 100},
     "duration_minutes", None),
])
def test_bad_values_are_refused_by_field_and_nothing_changes(shared_practice_daemon, cmd, args, field, value):
    d = shared_practice_daemon
    before = (d.call("practice.show", token=d.owner), d.call("staff.list", token=d.owner),
              d.call("service.list", token=d.owner))
    bad = error_of(d, cmd, args, d.owner)
    assert bad.code == "bad_request" and field in bad.message
    assert value is None or value not in bad.message
    assert (d.call("practice.show", token=d.owner), d.call("staff.list", token=d.owner),
            d.call("service.list", token=d.owner)) == before


def test_unknown_rows_are_not_found(shared_practice_daemon):
    d = shared_practice_daemon
    assert error_of(d, "staff.set", {"staff_id": str(uuid.uuid4()), "active": False}, d.owner).code == "not_found"
    assert error_of(d, "service.set", {"service_id": str(uuid.uuid4()), "active": False}, d.owner).code == "not_found"
    assert error_of(d, "staff.set", {"staff_id": "zq-drop"}, d.owner).code == "bad_request"
