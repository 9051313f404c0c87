"""Exports of sessions carry the appointment and clinical fields of issue 20: service,
staff member, reminder sent, session number, consent verified in the clear, and the SOAP
summary, billing codes and insurance info as PHI (masked unless the export is full); the
XML of it validates against the published schema."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.export.spec import EXPORTABLE, phi_fields
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.practices import create_practice
from tests.core.export.conftest import needs_xmllint, xmllint

CLINICAL = {"soap_summary": "S: Ängste <ok> & better", "billing_codes": "90834", "insurance_info": "Plan 12-A"}
NEW = ("service_id", "staff_id", "reminder_sent", "session_number", "consent_verified", *CLINICAL)


@pytest.fixture
def booked(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Export Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        client = clients_repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Li", "last_name": "Wu"})
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Follow-up", "category": "therapy", "duration_minutes": 50, "price_cents": 9900})
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "A", "last_name": "B",
                                                                 "role": "PRACTITIONER"})
        sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client, "starts_at": datetime(2025, 3, 5, 10, tzinfo=timezone.utc), "service_id": service,
            "staff_id": staff, "reminder_sent": True, "session_number": 2, "consent_verified": True, **CLINICAL})
        sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client, "starts_at": datetime(2025, 3, 12, 10, tzinfo=timezone.utc)})
    return {"service": str(service), "staff": str(staff)}


def test_sessions_export_names_the_new_fields_and_counts_the_clinical_ones_as_phi():
    assert set(NEW) <= set(EXPORTABLE["therapy_sessions"])
    assert set(CLINICAL) <= set(phi_fields("therapy_sessions"))
    assert not {f for f in EXPORTABLE["therapy_sessions"] if f.endswith("_enc")}


@pytest.mark.parametrize("masking", ["full", "masked"])
def test_a_sessions_export_carries_the_new_fields_masked_unless_full(ctx, booked, masking):
    result = export.run(ctx, {"actor": "user:mgr", "tables": ["therapy_sessions"], "format": "ndjson",
                              "masking": masking}, lambda *a: None)
    (path,) = Path(result["location"]).glob("*.ndjson")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    (row,) = [r for r in rows if r.get("service_id")]
    assert row["service_id"] == booked["service"] and row["staff_id"] == booked["staff"]
    assert row["reminder_sent"] is True and row["consent_verified"] is True and row["session_number"] == 2
    assert row["price_cents"] == 9900
    text = path.read_text(encoding="utf-8")
    if masking == "full":
        assert {k: row[k] for k in CLINICAL} == CLINICAL
    else:
        assert all(row[k] != CLINICAL[k] for k in CLINICAL)
        assert not any(value in text for value in CLINICAL.values())


@needs_xmllint
@pytest.mark.parametrize("masking", ["full", "masked"])
def test_the_xml_of_it_validates(ctx, booked, masking):
    result = export.run(ctx, {"actor": "user:mgr", "tables": ["therapy_sessions"], "format": "xml",
                              "masking": masking}, lambda *a: None)
    checked = xmllint(Path(result["location"]) / "therapy_sessions.xml")
    assert checked.returncode == 0, checked.stderr
