"""The practice's people and services (issue 20): practice details with sealed secrets,
staff, the service catalogue, and sessions as appointments with the clinical fields.

Every write goes through the repository: bad input is refused naming the field, never
the value, and changes nothing; secrets and PHI are ciphertext in the row."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from strongroom.core import audit
from strongroom.core.auth.rbac import ROLE_PERMISSIONS
from strongroom.core.crypto.fields import key_id_of
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice, Role, Service, Staff, TherapySession
from strongroom.core.errors import KeyUnavailableError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.masking import REDACTED
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.practices import create_practice, get_practice, update_practice

WHEN = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
HOURS = {"tue": ["13:00-17:00", "08:30-12:00"], "mon": ["09:00-17:00"], "fri": ["10:00-11:00"]}


def as_role(role: Role) -> Principal:
    return Principal(actor=f"user:{role.value.lower()}", permissions=ROLE_PERMISSIONS[role])


@pytest.fixture
def practice(ctx):
    with transaction(ctx.engine) as conn:
        return create_practice(conn, SYSTEM, "People Practice")


@pytest.fixture
def client(ctx, practice):
    with transaction(ctx.engine) as conn:
        return clients_repo.create_client(conn, ctx.keyring, SYSTEM, practice,
                                          {"first_name": "Ada", "last_name": "Quill"})


def stored(ctx, table, row_id) -> dict:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())


# --- practice details -----------------------------------------------------------------

def test_practice_details_round_trip_with_tax_id_and_licence_sealed_by_the_system_key(ctx, practice):
    with transaction(ctx.engine) as conn:
        update_practice(conn, ctx.keyring, SYSTEM, practice, {
            "address": "1 Quay Street", "phone": "+44 20 7946 0000", "email": "desk@people.example",
            "tax_id": "TX-99-123456", "license_number": "LIC-4471"})
        system_key = ctx.keyring.system_cipher(conn).key_id
        shown = get_practice(conn, ctx.keyring, SYSTEM, practice)
    assert shown["tax_id"] == "TX-99-123456" and shown["license_number"] == "LIC-4471"
    assert shown["address"] == "1 Quay Street" and shown["email"] == "desk@people.example"
    row = stored(ctx, Practice.__table__, practice)
    assert b"TX-99-123456" not in row["tax_id_enc"] and b"LIC-4471" not in row["license_number_enc"]
    assert key_id_of(row["tax_id_enc"]) == system_key == key_id_of(row["license_number_enc"])
    assert row["data_checksum"] == row_checksum(row)


def test_a_practitioner_reads_the_practice_with_its_secrets_masked_and_may_not_edit_it(ctx, practice):
    with transaction(ctx.engine) as conn:
        update_practice(conn, ctx.keyring, SYSTEM, practice, {"tax_id": "TX-1"})
        shown = get_practice(conn, ctx.keyring, as_role(Role.PRACTITIONER), practice)
    assert shown["tax_id"] == REDACTED and shown["license_number"] is None
    with pytest.raises(PermissionDenied):
        with transaction(ctx.engine) as conn:
            update_practice(conn, ctx.keyring, as_role(Role.PRACTITIONER), practice, {"phone": "+1 555 0100"})
    with transaction(ctx.engine) as conn:
        update_practice(conn, ctx.keyring, as_role(Role.ADMIN), practice, {"phone": "+1 555 0100"})


@pytest.mark.parametrize("changes, field", [
    ({"email": "not-an-address"}, "email"), ({"phone": "call me"}, "phone"), ({"name": "  "}, "name"),
    ({"tax_id": "x" * 65}, "tax_id"), ({"colour": "red"}, "may change only")])
def test_bad_practice_details_are_refused_by_field_and_change_nothing(ctx, practice, changes, field):
    before = stored(ctx, Practice.__table__, practice)
    with pytest.raises(ValidationError) as err:
        with transaction(ctx.engine) as conn:
            update_practice(conn, ctx.keyring, SYSTEM, practice, {"address": "2 Dock Road", **changes})
    assert field in str(err.value) and str(next(iter(changes.values()))) not in str(err.value)
    assert stored(ctx, Practice.__table__, practice) == before


# --- staff ----------------------------------------------------------------------------

def test_staff_round_trip_with_normalised_working_hours_and_a_linked_user(ctx, practice):
    from strongroom.core.auth.users import create_user

    with transaction(ctx.engine) as conn:
        user, _ = create_user(conn, ctx.keyring, ctx.settings, practice, "rhea", "a long passphrase 1 x",
                              Role.PRACTITIONER)
        staff_id = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Rhea", "last_name": "Marsh", "role": "PRACTITIONER", "user_id": user.id,
            "specializations": ["CBT", "EMDR"], "working_hours": HOURS, "hourly_rate_cents": 9500})
        shown = staff_repo.get_staff(conn, SYSTEM, staff_id)
    assert shown["working_hours"] == {"mon": ["09:00-17:00"], "tue": ["08:30-12:00", "13:00-17:00"],
                                      "fri": ["10:00-11:00"]}
    assert list(shown["working_hours"]) == ["fri", "mon", "tue"]     # jsonb's key order on both engines
    assert shown["specializations"] == ["CBT", "EMDR"] and shown["hourly_rate_cents"] == 9500
    assert shown["role"] == "PRACTITIONER" and shown["user_id"] == user.id and shown["active"] is True
    row = stored(ctx, Staff.__table__, staff_id)
    assert row["data_checksum"] == row_checksum(row)
    with pytest.raises(ValidationError, match="user_id: that user is already linked"):
        with transaction(ctx.engine) as conn:
            staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "R", "last_name": "M",
                                                             "role": "STAFF", "user_id": user.id})


def test_staff_update_deactivates_and_lists_only_active_by_default(ctx, practice):
    with transaction(ctx.engine) as conn:
        a = staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "A", "last_name": "Ash", "role": "STAFF"})
        staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "B", "last_name": "Birch", "role": "MANAGER"})
        staff_repo.update_staff(conn, SYSTEM, a, {"active": False, "hourly_rate_cents": 2000})
        entry = audit.tail(conn, limit=1)[0]
        active = staff_repo.list_staff(conn, as_role(Role.STAFF), practice)
        everyone = staff_repo.list_staff(conn, SYSTEM, practice, include_inactive=True)
    assert [s["last_name"] for s in active] == ["Birch"] and len(everyone) == 2
    assert entry.action == "UPDATE" and entry.details == {"fields": ["active", "hourly_rate_cents"]}


@pytest.mark.parametrize("data, field", [
    ({"working_hours": {"mon": ["9-5"]}}, "working_hours"),
    ({"working_hours": {"mon": ["09:00-12:00", "11:00-13:00"]}}, "overlap"),
    ({"working_hours": {"funday": ["09:00-12:00"]}}, "weekdays"),
    ({"working_hours": {"mon": ["17:00-09:00"]}}, "end after"),
    ({"role": "auditor"}, "role"), ({"hourly_rate_cents": -1}, "hourly_rate_cents"),
    ({"email": "nobody"}, "email"), ({"first_name": ""}, "first_name"), ({"user_id": str(new_id())}, "user_id")])
def test_bad_staff_input_is_refused_by_field_and_writes_nothing(ctx, practice, data, field):
    with pytest.raises(ValidationError) as err:
        with transaction(ctx.engine) as conn:
            staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "C", "last_name": "Cole",
                                                             "role": "STAFF", **data})
    assert field in str(err.value) and "9-5" not in str(err.value) and "nobody" not in str(err.value)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(Staff.__table__)).first() is None


def test_a_practitioner_reads_staff_but_may_not_add_them(ctx, practice):
    with pytest.raises(PermissionDenied):
        with transaction(ctx.engine) as conn:
            staff_repo.create_staff(conn, as_role(Role.PRACTITIONER), practice,
                                    {"first_name": "D", "last_name": "Dale", "role": "STAFF"})
    with transaction(ctx.engine) as conn:
        assert staff_repo.list_staff(conn, as_role(Role.PRACTITIONER), practice) == []


# --- services -------------------------------------------------------------------------

def test_service_catalogue_round_trip_in_integer_cents(ctx, practice):
    with transaction(ctx.engine) as conn:
        a = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Initial assessment", "category": "assessment", "duration_minutes": 90, "price_cents": 18000})
        services_repo.create_service(conn, as_role(Role.ADMIN), practice, {
            "name": "Follow-up", "category": "therapy", "duration_minutes": 50, "price_cents": 12000,
            "description": "Standard session"})
        services_repo.update_service(conn, SYSTEM, a, {"active": False})
        listed = services_repo.list_services(conn, as_role(Role.PRACTITIONER), practice)
        everything = services_repo.list_services(conn, SYSTEM, practice, include_inactive=True)
    assert [s["name"] for s in listed] == ["Follow-up"] and listed[0]["price_cents"] == 12000
    assert {s["name"]: s["active"] for s in everything} == {"Initial assessment": False, "Follow-up": True}
    row = stored(ctx, Service.__table__, a)
    assert row["data_checksum"] == row_checksum(row)


@pytest.mark.parametrize("changes, field", [
    ({"price_cents": 12.5}, "price_cents"), ({"duration_minutes": 0}, "duration_minutes"),
    ({"name": ""}, "name"), ({"category": "c" * 101}, "category"), ({"practice_id": "x"}, "may change only")])
def test_bad_service_changes_are_refused_by_field_and_change_nothing(ctx, practice, changes, field):
    with transaction(ctx.engine) as conn:
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Couples", "category": "therapy", "duration_minutes": 80, "price_cents": 16000})
    before = stored(ctx, Service.__table__, service)
    with pytest.raises(ValidationError, match=field):
        with transaction(ctx.engine) as conn:
            services_repo.update_service(conn, SYSTEM, service, changes)
    assert stored(ctx, Service.__table__, service) == before
    with pytest.raises(NotFoundError):
        with transaction(ctx.engine) as conn:
            services_repo.update_service(conn, SYSTEM, new_id(), {"active": False})


# --- sessions as appointments ---------------------------------------------------------

@pytest.fixture
def booking(ctx, practice):
    with transaction(ctx.engine) as conn:
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Follow-up", "category": "therapy", "duration_minutes": 50, "price_cents": 12000})
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "E", "last_name": "Eve",
                                                                 "role": "PRACTITIONER"})
    return service, staff


CLINICAL = {"soap_summary": "S: low mood. O: calm. A: improving. P: continue.", "billing_codes": "90834",
            "insurance_info": "Acme Health plan 7781-22"}


def test_an_appointment_names_its_service_and_staff_and_takes_the_service_price(ctx, client, booking):
    service, staff = booking
    with transaction(ctx.engine) as conn:
        session_id = sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client, "starts_at": WHEN, "service_id": service, "staff_id": staff,
            "status": "CONFIRMED", "session_number": 3, "consent_verified": True, **CLINICAL})
        sessions_repo.update_session(conn, ctx.keyring, SYSTEM, session_id,
                                     {"reminder_sent": True, "payment_status": "PAID"})
        (shown,) = sessions_repo.list_sessions(conn, ctx.keyring, SYSTEM, client)
        (masked,) = sessions_repo.list_sessions(conn, ctx.keyring, as_role(Role.STAFF), client)
    assert shown["price_cents"] == 12000 and shown["service_id"] == service and shown["staff_id"] == staff
    assert shown["reminder_sent"] is True and shown["payment_status"] == "PAID" and shown["status"] == "CONFIRMED"
    assert shown["session_number"] == 3 and shown["consent_verified"] is True
    assert {k: shown[k] for k in CLINICAL} == CLINICAL
    assert {k: masked[k] for k in CLINICAL} == dict.fromkeys(CLINICAL, REDACTED)
    row = stored(ctx, TherapySession.__table__, session_id)
    for name, value in CLINICAL.items():
        assert value.encode() not in row[f"{name}_enc"] and key_id_of(row[f"{name}_enc"]) == row["key_id"]
    assert row["data_checksum"] == row_checksum(row)


def test_crypto_shredding_the_client_makes_the_clinical_fields_unreadable(ctx, client, booking):
    with transaction(ctx.engine) as conn:
        session_id = sessions_repo.create_session(conn, ctx.keyring, SYSTEM,
                                                  {"client_id": client, "starts_at": WHEN, **CLINICAL})
        ctx.keyring.destroy_client_keys(conn, client)
    ctx.keyring.forget(stored(ctx, TherapySession.__table__, session_id)["key_id"])
    row = stored(ctx, TherapySession.__table__, session_id)
    with pytest.raises(KeyUnavailableError):
        with ctx.engine.connect() as conn:
            ctx.keyring.cipher(conn, row["key_id"])
    with pytest.raises(KeyUnavailableError):
        with transaction(ctx.engine) as conn:
            sessions_repo.list_sessions(conn, ctx.keyring, SYSTEM, client)


@pytest.mark.parametrize("data, field", [
    ({"status": "DONE"}, "status"), ({"payment_status": "OWED"}, "payment_status"),
    ({"session_number": 0}, "session_number"), ({"billing_codes": "9" * 2001}, "billing_codes"),
    ({"service_id": "other"}, "service_id"), ({"staff_id": "other"}, "staff_id")])
def test_bad_appointment_input_is_refused_by_field_and_writes_nothing(ctx, practice, client, booking, data, field):
    other = create_other_practice_rows(ctx)
    data = {k: other[k] if v == "other" else v for k, v in data.items()}
    with pytest.raises(ValidationError) as err:
        with transaction(ctx.engine) as conn:
            sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {"client_id": client, "starts_at": WHEN, **data})
    assert field in str(err.value) and "DONE" not in str(err.value) and "OWED" not in str(err.value)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(TherapySession.__table__)).first() is None


def create_other_practice_rows(ctx) -> dict:
    """A service and a staff member of another practice: a session may not name them."""
    with transaction(ctx.engine) as conn:
        other = create_practice(conn, SYSTEM, "Other Practice")
        return {"service_id": services_repo.create_service(conn, SYSTEM, other, {
                    "name": "X", "category": "x", "duration_minutes": 30, "price_cents": 1}),
                "staff_id": staff_repo.create_staff(conn, SYSTEM, other, {"first_name": "X", "last_name": "X",
                                                                          "role": "STAFF"})}


def test_erasing_the_client_clears_the_sessions_clinical_ciphertext_and_keeps_the_booking(ctx, client, booking):
    from strongroom.core.files.store import open_files_target
    from strongroom.core.retention import erasure

    service, staff = booking
    with transaction(ctx.engine) as conn:
        session_id = sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client, "starts_at": WHEN, "service_id": service, "staff_id": staff,
            "notes": "n", **CLINICAL})
        request = erasure.request_erasure(conn, client_id=client, actor="user:alice", reason="ref 7")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob", files=open_files_target(ctx.settings))
    row = stored(ctx, TherapySession.__table__, session_id)
    assert row["deleted_at"] is not None and row["data_checksum"] == row_checksum(row)
    assert all(row[f"{name}_enc"] is None for name in ("notes", *CLINICAL))
    assert row["service_id"] == service and row["staff_id"] == staff


def test_a_system_key_rotation_reseals_the_practice_secrets(ctx, practice):
    from strongroom.core.crypto.system_key_rotation import rotate_system_key

    with transaction(ctx.engine) as conn:
        update_practice(conn, ctx.keyring, SYSTEM, practice, {"tax_id": "TX-2", "license_number": "L-2"})
    before = stored(ctx, Practice.__table__, practice)
    rotation = rotate_system_key(ctx, actor="user:op")
    after = stored(ctx, Practice.__table__, practice)
    assert rotation.rows_reencrypted.get("practices") == 1
    assert str(key_id_of(after["tax_id_enc"])) == rotation.new_key_id != str(key_id_of(before["tax_id_enc"]))
    assert after["data_checksum"] == row_checksum(after) and after["sync_version"] > before["sync_version"]
    with transaction(ctx.engine) as conn:
        assert get_practice(conn, ctx.keyring, SYSTEM, practice)["license_number"] == "L-2"
