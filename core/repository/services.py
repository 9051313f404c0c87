"""The practice's service catalogue (issue 20): what an appointment can be booked as.

A service has a name, a category, an optional description, a duration in minutes and a
price in integer cents (never floating point money), and is active or retired; a retired
service stays on the sessions booked with it. No PHI.
"""
from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, select

from strongroom.core.db.models import Practice, Service
from strongroom.core.principal import Principal
from strongroom.core.repository.rows import check_changes, checked, insert_row, live_row, require, update_row

TABLE = "services"
_services = Service.__table__


class ServiceInput(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    category: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    duration_minutes: Annotated[int, Field(ge=5, le=600)]
    price_cents: Annotated[int, Field(ge=0, le=10_000_000)]
    active: bool = True


EDITABLE = tuple(ServiceInput.model_fields)


def create_service(conn: Connection, principal: Principal, practice_id: uuid.UUID, data: dict) -> uuid.UUID:
    require(principal, "table:services:write")
    item = checked(ServiceInput, data, TABLE)
    live_row(conn, Practice.__table__, practice_id)
    return insert_row(conn, principal, _services, practice_id, item.model_dump())


def update_service(conn: Connection, principal: Principal, service_id: uuid.UUID, changes: dict) -> None:
    require(principal, "table:services:write")
    check_changes(TABLE, changes, EDITABLE)
    row = live_row(conn, _services, service_id)
    item = checked(ServiceInput, {**{n: row[n] for n in EDITABLE}, **changes}, TABLE)
    update_row(conn, principal, _services, row, {name: getattr(item, name) for name in changes})


def _view(row) -> dict:
    return {"id": row["id"], **{name: row[name] for name in EDITABLE}, "updated_at": row["updated_at"]}


def list_services(conn: Connection, principal: Principal, practice_id: uuid.UUID, *,
                  include_inactive: bool = False) -> list[dict]:
    require(principal, "table:services:read")
    query = select(_services).where(_services.c.practice_id == practice_id, _services.c.deleted_at.is_(None))
    if not include_inactive:
        query = query.where(_services.c.active.is_(True))
    return [_view(row) for row in conn.execute(query.order_by(_services.c.category, _services.c.name,
                                                              _services.c.id)).mappings()]


def get_service(conn: Connection, principal: Principal, service_id: uuid.UUID) -> dict:
    require(principal, "table:services:read")
    return _view(live_row(conn, _services, service_id))
