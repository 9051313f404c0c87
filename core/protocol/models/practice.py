"""practice.*, staff.*, service.*: the practice's details, its staff and its services."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result

_TEXT = Field(default=None, max_length=5000)


class PracticeArgs(Args):
    practice_id: uuid.UUID | None = Field(default=None, description="default: the only practice")


class PracticeSetArgs(PracticeArgs):
    name: str | None = _TEXT
    address: str | None = _TEXT
    phone: str | None = _TEXT
    email: str | None = _TEXT
    tax_id: str | None = _TEXT
    license_number: str | None = _TEXT
    clear: list[Literal["address", "phone", "email", "tax_id", "license_number"]] = Field(
        default_factory=list, description="fields to empty")


class ListArgs(PracticeArgs):
    include_inactive: bool = False


class StaffFields(Args):
    first_name: str | None = _TEXT
    last_name: str | None = _TEXT
    role: str | None = Field(default=None, max_length=24, description="ADMIN, MANAGER, PRACTITIONER or STAFF")
    user_id: uuid.UUID | None = Field(default=None, description="the user account, if they have one")
    specializations: list[str] | None = Field(default=None, max_length=100)
    phone: str | None = _TEXT
    email: str | None = _TEXT
    working_hours: dict[str, Any] | None = Field(default=None, description='weekday -> ["HH:MM-HH:MM", ...]')
    hourly_rate_cents: int | None = None
    active: bool | None = None


class StaffAddArgs(StaffFields, PracticeArgs):
    pass


class StaffSetArgs(StaffFields):
    staff_id: uuid.UUID
    clear: list[Literal["user_id", "phone", "email", "hourly_rate_cents"]] = Field(
        default_factory=list, description="fields to empty")


class ServiceFields(Args):
    name: str | None = _TEXT
    category: str | None = _TEXT
    description: str | None = _TEXT
    duration_minutes: int | None = None
    price_cents: int | None = Field(default=None, description="integer cents")
    active: bool | None = None


class ServiceAddArgs(ServiceFields, PracticeArgs):
    pass


class ServiceSetArgs(ServiceFields):
    service_id: uuid.UUID
    clear: list[Literal["description"]] = Field(default_factory=list, description="fields to empty")


class PracticeInfo(Result):
    """tax_id and license_number: opened for an editor only, else a redaction mark (None: not set)."""
    id: uuid.UUID
    name: str
    timezone: str
    address: str | None
    phone: str | None
    email: str | None
    tax_id: str | None
    license_number: str | None


class StaffMember(Result):
    id: uuid.UUID
    first_name: str
    last_name: str
    role: str
    user_id: uuid.UUID | None
    specializations: list[str]
    phone: str | None
    email: str | None
    working_hours: dict[str, list[str]]     # weekday -> ["HH:MM-HH:MM", ...]
    hourly_rate_cents: int | None
    active: bool
    updated_at: datetime


class StaffPage(Result):
    items: list[StaffMember]


class Service(Result):
    id: uuid.UUID
    name: str
    category: str
    description: str | None
    duration_minutes: int
    price_cents: int
    active: bool
    updated_at: datetime


class ServicePage(Result):
    items: list[Service]
