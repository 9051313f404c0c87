"""A backup and restore carries the practice's people and services, its sealed details
and the sessions' new fields exactly (every column type they use has a COPY text form):
the restored rows equal the originals and open with only the key file."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import select

from strongroom.core import audit
from strongroom.core.backup.repository import open_repository
from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import Practice, Service, Staff, TherapySession
from strongroom.core import restore
from strongroom.core.jobs import backup
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.practices import get_practice, only_practice, update_practice
from strongroom.core.storage import open_target
from tests.core.conftest import seed_clients, with_backup_target

CLINICAL = {"soap_summary": "S: tab\there.\nP: review", "billing_codes": "90791, 90834",
            "insurance_info": "Plan \\ 42"}
TABLES = (Practice.__table__, Staff.__table__, Service.__table__, TherapySession.__table__)


def _all(engine) -> dict:
    with engine.connect() as conn:
        return {t.name: sorted((dict(r) for r in conn.execute(select(t)).mappings()), key=lambda r: r["id"])
                for t in TABLES}


def test_backup_and_restore_round_trip_the_practice_people_services_and_session_fields(ctx, tmp_path):
    target = with_backup_target(ctx, tmp_path)
    client = seed_clients(ctx, n=3)[0]
    with transaction(ctx.engine) as conn:
        practice = only_practice(conn)
        update_practice(conn, ctx.keyring, SYSTEM, practice, {
            "address": "3 Mill Lane", "email": "front@mill.example", "tax_id": "TX-31", "license_number": "L-9"})
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Intake", "category": "assessment", "duration_minutes": 90, "price_cents": 20000,
            "description": "First visit"})
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Ines", "last_name": "Oak", "role": "MANAGER", "specializations": ["DBT", "family"],
            "working_hours": {"fri": ["09:00-12:30"], "mon": ["08:00-16:00"]}, "active": False})
        sessions_repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client, "starts_at": datetime(2026, 5, 4, 15, tzinfo=timezone.utc), "service_id": service,
            "staff_id": staff, "session_number": 1, "consent_verified": True, "reminder_sent": True, **CLINICAL})
    original = _all(ctx.engine)
    assert all(row["data_checksum"] == row_checksum(row) for rows in original.values() for row in rows)
    snapshot = backup.run(ctx, {}, lambda *a: None)

    fresh = Keyring(load_keks(ctx.settings.keys))       # only the key file and the repository
    dest = f"sqlite:///{tmp_path / 'restored.db'}"
    restore.restore(open_repository(open_target(str(target)), fresh), uuid.UUID(snapshot["snapshot_id"]), dest)
    restored = make_engine(dest)
    try:
        assert _all(restored) == original
        audit.seal_with(restored, fresh)
        with transaction(restored) as conn:
            details = get_practice(conn, fresh, SYSTEM, practice)
            shown = [s for s in sessions_repo.list_sessions(conn, fresh, SYSTEM, client) if s["service_id"]]
            staff_row = staff_repo.get_staff(conn, SYSTEM, staff)
    finally:
        restored.dispose()
    assert details["tax_id"] == "TX-31" and details["license_number"] == "L-9"
    assert {k: shown[0][k] for k in CLINICAL} == CLINICAL and shown[0]["staff_id"] == staff
    assert staff_row["working_hours"] == {"mon": ["08:00-16:00"], "fri": ["09:00-12:30"]}
    assert staff_row["active"] is False and staff_row["specializations"] == ["DBT", "family"]
