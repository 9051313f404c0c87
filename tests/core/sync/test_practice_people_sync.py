"""Staff, services, the practice's details and the sessions' new fields travel between
sites like the rest: same rows on both sides, readable where they land."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice, Service, Staff, TherapySession
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.practices import get_practice, only_practice, update_practice
from tests.core.conftest import client_ids

CLINICAL = {"soap_summary": "S: sleeping better. P: taper sessions.", "billing_codes": "90837",
            "insurance_info": "Northwind Mutual 55-1"}


def _rows(site, table):
    with transaction(site.engine, read_only=True) as conn:
        return {r["id"]: r["data_checksum"] for r in conn.execute(select(table)).mappings()}


def _book(site) -> dict:
    with transaction(site.engine) as conn:
        practice = only_practice(conn)
        update_practice(conn, site.keyring, SYSTEM, practice, {"tax_id": "TX-77", "phone": "+1 555 0199"})
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Follow-up", "category": "therapy", "duration_minutes": 50, "price_cents": 12500})
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Noor", "last_name": "Vale", "role": "PRACTITIONER",
            "working_hours": {"wed": ["10:00-16:00"]}, "hourly_rate_cents": 8000})
    client = client_ids(site)[0]
    with transaction(site.engine) as conn:
        session = sessions_repo.create_session(conn, site.keyring, SYSTEM, {
            "client_id": client, "starts_at": datetime(2026, 4, 1, 10, tzinfo=timezone.utc),
            "service_id": service, "staff_id": staff, "session_number": 4, "consent_verified": True,
            "reminder_sent": True, **CLINICAL})
    return {"practice": practice, "service": service, "staff": staff, "client": client, "session": session}


def test_staff_services_practice_details_and_clinical_fields_reach_a_joined_site(first_site, join_site):
    laptop = join_site("laptop")
    booked = _book(first_site)
    result = laptop.sync(first_site)
    assert result["pull"]["staff"]["applied"] == 1 and result["pull"]["services"]["applied"] == 1
    for table in (Staff.__table__, Service.__table__, TherapySession.__table__, Practice.__table__):
        assert _rows(laptop, table) == _rows(first_site, table)
    with transaction(laptop.engine) as conn:
        (shown,) = [s for s in sessions_repo.list_sessions(conn, laptop.keyring, SYSTEM, booked["client"])
                    if s["id"] == booked["session"]]
        practice = get_practice(conn, laptop.keyring, SYSTEM, booked["practice"])
        staff = staff_repo.get_staff(conn, SYSTEM, booked["staff"])
    assert {k: shown[k] for k in CLINICAL} == CLINICAL
    assert shown["service_id"] == booked["service"] and shown["staff_id"] == booked["staff"]
    assert shown["price_cents"] == 12500 and shown["session_number"] == 4 and shown["reminder_sent"] is True
    assert practice["tax_id"] == "TX-77" and staff["working_hours"] == {"wed": ["10:00-16:00"]}


def test_catalogue_and_staff_edits_travel_back_and_the_later_write_wins(first_site, join_site):
    laptop = join_site("laptop")
    booked = _book(first_site)
    laptop.sync(first_site)
    with transaction(laptop.engine) as conn:
        services_repo.update_service(conn, SYSTEM, booked["service"], {"price_cents": 13000})
        staff_repo.update_staff(conn, SYSTEM, booked["staff"], {"active": False})
        sessions_repo.update_session(conn, laptop.keyring, SYSTEM, booked["session"],
                                     {"billing_codes": "90834", "payment_status": "PAID"})
    with transaction(first_site.engine) as conn:      # later: wins
        services_repo.update_service(conn, SYSTEM, booked["service"], {"price_cents": 14000})
    laptop.sync(first_site)
    laptop.sync(first_site)
    for site in (first_site, laptop):
        with transaction(site.engine) as conn:
            assert services_repo.get_service(conn, SYSTEM, booked["service"])["price_cents"] == 14000
            assert staff_repo.get_staff(conn, SYSTEM, booked["staff"])["active"] is False
            (shown,) = [s for s in sessions_repo.list_sessions(conn, site.keyring, SYSTEM, booked["client"])
                        if s["id"] == booked["session"]]
            assert shown["billing_codes"] == "90834" and shown["payment_status"] == "PAID"
    for table in (Staff.__table__, Service.__table__, TherapySession.__table__):
        assert _rows(laptop, table) == _rows(first_site, table)


def test_writes_made_outside_strongroom_to_staff_services_and_the_practice_sync_on_postgresql(first_site, join_site):
    if first_site.engine.dialect.name != "postgresql":
        pytest.skip("writes bypassing the application are caught by PostgreSQL triggers")
    laptop = join_site("laptop")
    booked = _book(first_site)
    laptop.sync(first_site)
    with first_site.engine.begin() as conn:        # psql, another program: no strongroom.app marker
        conn.exec_driver_sql("UPDATE staff SET working_hours = '{\"tue\": [\"08:00-12:00\"], \"mon\": []}', "
                             "specializations = '[\"DBT\"]' WHERE id = %(id)s", {"id": booked["staff"]})
        conn.exec_driver_sql("UPDATE services SET price_cents = 15000 WHERE id = %(id)s", {"id": booked["service"]})
        conn.exec_driver_sql("UPDATE practices SET settings = settings || '{\"encryption_level\": \"standard\", "
                             "\"a\": 1.50}' WHERE id = %(id)s", {"id": booked["practice"]})
    for table in (Staff.__table__, Service.__table__, Practice.__table__):
        with transaction(first_site.engine, read_only=True) as conn:
            for row in conn.execute(select(table)).mappings():
                assert row["data_checksum"] == row_checksum(dict(row)), table.name
    result = laptop.sync(first_site)
    for table in ("staff", "services", "practices"):
        assert result["pull"][table]["applied"] == 1 and result["pull"][table]["quarantined"] == 0, table
    for table in (Staff.__table__, Service.__table__, Practice.__table__):
        assert _rows(laptop, table) == _rows(first_site, table)
    with transaction(laptop.engine) as conn:
        assert staff_repo.get_staff(conn, SYSTEM, booked["staff"])["working_hours"] == {"tue": ["08:00-12:00"], "mon": []}
        assert services_repo.get_service(conn, SYSTEM, booked["service"])["price_cents"] == 15000
