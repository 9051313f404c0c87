"""appointment.*: therapy sessions as the practice books them (`session.*` means login
sessions, so these are appointments on the wire)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result

# Values are checked by core.repository.sessions (ranges, enums, the service and staff
# member being the practice's), which names the field of a bad one; here only the types.
_PHI = Field(default=None, max_length=200_000, description="PHI, sealed with the client's key")


class AppointmentListArgs(Args):
    client_id: uuid.UUID
    limit: int = Field(default=100, ge=1, le=1000)


class AppointmentArgs(Args):
    appointment_id: uuid.UUID


class AppointmentFields(Args):
    starts_at: datetime | None = Field(default=None, description="ISO 8601 with a timezone")
    duration_minutes: int | None = Field(default=None, description="5 to 600 (default 50)")
    session_type: str | None = Field(default=None, max_length=40, description="default: individual")
    status: str | None = Field(default=None, max_length=40,
                               description="SCHEDULED (default), CONFIRMED, CANCELLED or COMPLETED")
    payment_status: str | None = Field(default=None, max_length=40,
                                       description="PENDING (default), PAID, FAILED or REFUNDED")
    price_cents: int | None = Field(default=None, description="integer cents; default: the service's price")
    service_id: uuid.UUID | None = Field(default=None, description="one of the practice's services")
    staff_id: uuid.UUID | None = Field(default=None, description="one of the practice's staff")
    reminder_sent: bool | None = None
    session_number: int | None = None
    consent_verified: bool | None = None
    notes: str | None = _PHI
    soap_summary: str | None = _PHI
    billing_codes: str | None = _PHI
    insurance_info: str | None = _PHI


class AppointmentAddArgs(AppointmentFields):
    client_id: uuid.UUID
    starts_at: datetime = Field(description="ISO 8601 with a timezone")


class AppointmentSetArgs(AppointmentFields):
    appointment_id: uuid.UUID
    clear: list[Literal["price_cents", "service_id", "staff_id", "session_number", "notes", "soap_summary",
                        "billing_codes", "insurance_info"]] = Field(default_factory=list,
                                                                    description="fields to empty")


class Appointment(Result):
    """notes, soap_summary, billing_codes, insurance_info: opened for phi:read on list and
    show (an audited READ), else a redaction mark; add and set answer them masked."""
    id: uuid.UUID
    client_id: uuid.UUID
    starts_at: datetime
    duration_minutes: int
    session_type: str
    status: str
    payment_status: str
    price_cents: int | None
    service_id: uuid.UUID | None
    staff_id: uuid.UUID | None
    reminder_sent: bool
    session_number: int | None
    consent_verified: bool
    notes: str | None
    soap_summary: str | None
    billing_codes: str | None
    insurance_info: str | None


class AppointmentPage(Result):
    items: list[Appointment]
