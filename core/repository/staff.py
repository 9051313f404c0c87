"""The practice's staff (issue 20): people who work there, with or without a user account.

A staff record holds no PHI: names, role, specializations, contact details, working
hours, hourly rate (integer cents) and whether they are active. Working hours are a JSON
document, weekday ("mon".."sun") -> list of "HH:MM-HH:MM" intervals, stored normalised
(weekdays sorted, intervals sorted, none overlapping) so two sites holding the same
hours hold the same document. A user account may back at most one staff record, and
only an account of the same practice.
"""
from __future__ import annotations

import re
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import Connection, select

from strongroom.core.db.models import Practice, Role, Staff, User
from strongroom.core.errors import ValidationError
from strongroom.core.principal import Principal
from strongroom.core.repository.practices import EMAIL, PHONE
from strongroom.core.repository.rows import check_changes, checked, insert_row, live_row, require, update_row

TABLE = "staff"
_staff = Staff.__table__
_users = User.__table__
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLINICAL_ROLES = (Role.ADMIN, Role.MANAGER, Role.PRACTITIONER, Role.STAFF)
_INTERVAL = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
_NAME = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _minutes(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def normalise_hours(value: object) -> dict[str, list[str]]:
    """Working hours checked and normalised; ValueError saying what is wrong (never the value)."""
    if not isinstance(value, dict):
        raise ValueError("must be an object of weekday -> list of HH:MM-HH:MM")
    out: dict[str, list[str]] = {}
    for day in value:
        if day not in WEEKDAYS:
            raise ValueError("weekdays are " + ", ".join(WEEKDAYS))
    for day in WEEKDAYS:
        if day not in value:
            continue
        intervals = value[day]
        if not isinstance(intervals, list) or len(intervals) > 8:
            raise ValueError(f"{day}: a list of at most 8 HH:MM-HH:MM intervals")
        spans = []
        for interval in intervals:
            match = _INTERVAL.match(interval) if isinstance(interval, str) else None
            if match is None:
                raise ValueError(f"{day}: intervals are HH:MM-HH:MM (24-hour)")
            start, end = _minutes(*match.group(1, 2)), _minutes(*match.group(3, 4))
            if not start < end <= 24 * 60:
                raise ValueError(f"{day}: an interval must end after it starts, by 24:00")
            spans.append((start, end, interval))
        spans.sort()
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            raise ValueError(f"{day}: intervals overlap")
        if spans:
            out[day] = [s[2] for s in spans]
    # Keys in the order PostgreSQL's jsonb keeps them (equal lengths: bytewise), so the
    # row's checksum (core.repository.changes) reads back the same on both engines.
    return dict(sorted(out.items()))


class StaffInput(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    first_name: _NAME
    last_name: _NAME
    role: Role
    user_id: uuid.UUID | None = None
    specializations: Annotated[list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                                     max_length=100)]],
                               Field(max_length=20)] = []
    phone: PHONE | None = None
    email: EMAIL | None = None
    working_hours: dict = {}
    hourly_rate_cents: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    active: bool = True

    @field_validator("role")
    @classmethod
    def _clinical(cls, value: Role) -> Role:
        if value not in CLINICAL_ROLES:
            raise ValueError("must be one of " + ", ".join(r.value for r in CLINICAL_ROLES))
        return value

    @field_validator("working_hours", mode="before")
    @classmethod
    def _hours(cls, value: object) -> dict:
        return normalise_hours(value)


EDITABLE = tuple(StaffInput.model_fields)


def _check_user(conn: Connection, practice_id: uuid.UUID, user_id: uuid.UUID | None,
                staff_id: uuid.UUID | None = None) -> None:
    if user_id is None:
        return
    if conn.execute(select(_users.c.id).where(_users.c.id == user_id, _users.c.practice_id == practice_id,
                                              _users.c.deleted_at.is_(None))).first() is None:
        raise ValidationError(f"{TABLE}: user_id: no such user in this practice")
    other = conn.execute(select(_staff.c.id).where(_staff.c.user_id == user_id)).scalar()
    if other is not None and other != staff_id:
        raise ValidationError(f"{TABLE}: user_id: that user is already linked to another staff member")


def _values(item: StaffInput, names) -> dict:
    return {name: getattr(item, name) for name in names}


def create_staff(conn: Connection, principal: Principal, practice_id: uuid.UUID, data: dict) -> uuid.UUID:
    require(principal, "table:staff:write")
    item = checked(StaffInput, data, TABLE)
    live_row(conn, Practice.__table__, practice_id)
    _check_user(conn, practice_id, item.user_id)
    return insert_row(conn, principal, _staff, practice_id, _values(item, EDITABLE))


def update_staff(conn: Connection, principal: Principal, staff_id: uuid.UUID, changes: dict) -> None:
    """Change a staff member's fields; all are checked before anything is written."""
    require(principal, "table:staff:write")
    check_changes(TABLE, changes, EDITABLE)
    row = live_row(conn, _staff, staff_id)
    item = checked(StaffInput, {**_values(row, EDITABLE), **changes}, TABLE)
    if "user_id" in changes:
        _check_user(conn, row["practice_id"], item.user_id, staff_id)
    update_row(conn, principal, _staff, row, _values(item, changes))


def _view(row) -> dict:
    return {"id": row["id"], **{name: row[name] for name in EDITABLE}, "role": row["role"].value,
            "updated_at": row["updated_at"]}


def list_staff(conn: Connection, principal: Principal, practice_id: uuid.UUID, *,
               include_inactive: bool = False) -> list[dict]:
    require(principal, "table:staff:read")
    query = select(_staff).where(_staff.c.practice_id == practice_id, _staff.c.deleted_at.is_(None))
    if not include_inactive:
        query = query.where(_staff.c.active.is_(True))
    return [_view(row) for row in conn.execute(query.order_by(_staff.c.last_name, _staff.c.first_name,
                                                              _staff.c.id)).mappings()]


def get_staff(conn: Connection, principal: Principal, staff_id: uuid.UUID) -> dict:
    require(principal, "table:staff:read")
    return _view(live_row(conn, _staff, staff_id))
