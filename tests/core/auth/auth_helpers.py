"""Shared constants and helpers for the auth tests (fixtures live in conftest.py)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from strongroom.core.auth import totp
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, SecurityEvent

PASSWORD = "correct horse battery staple"
T0 = datetime(2030, 1, 15, 9, 0, 0, tzinfo=timezone.utc)


def code_for(enrolment, moment: datetime, offset: int = 0) -> str:
    return totp.code_at(enrolment.secret, totp.time_step(moment) + offset)


def events(engine, event_type: str | None = None) -> list[dict]:
    table = SecurityEvent.__table__
    query = select(table).order_by(table.c.id)
    if event_type:
        query = query.where(table.c.event_type == event_type)
    with transaction(engine, read_only=True) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def audit_actions(engine) -> list[str]:
    table = AuditLog.__table__
    with transaction(engine, read_only=True) as conn:
        return list(conn.execute(select(table.c.action).order_by(table.c.id)).scalars())


def audit_count(engine) -> int:
    with transaction(engine, read_only=True) as conn:
        return conn.execute(select(func.count()).select_from(AuditLog.__table__)).scalar_one()
