"""appointment.*: therapy sessions as the practice books them (`session.*` means login
sessions, so these are appointments on the wire)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result

# Values are checked by core.repository.sessions (ranges, enums, the service and staff
# member being the practice's), which names the field of a bad one; here only the types.

# The values status and payment_status take, for clients to offer (the console's pickers,
# the CLI's help). They mirror core.db.models' SessionStatus and PaymentStatus, which the
# protocol may not import (tests/test_architecture.py); tests/daemon/test_appointment_commands.py
# holds the two equal. The fields stay `str` so the repository refuses a bad one naming it.
AppointmentStatus = Literal["SCHEDULED", "CONFIRMED", "CANCELLED", "COMPLETED"]
AppointmentPaymentStatus = Literal["PENDING", "PAID", "FAILED", "REFUNDED"]
APPOINTMENT_STATUSES: tuple[str, ...] = get_args(AppointmentStatus)
PAYMENT_STATUSES: tuple[str, ...] = get_args(AppointmentPaymentStatus)
# What appointment.set may empty.
Clearable = Literal["price_cents", "service_id", "staff_id", "session_number", "notes", "soap_summary",
                    "billing_codes", "insurance_info"]
CLEARABLE: tuple[str, ...] = get_args(Clearable)


def _choices(values: tuple[str, ...]) -> str:
    """A field's description from its values (the first is the default), so the
    protocol's docs cannot drift from what clients offer."""
    return f"{values[0]} (default), {', '.join(values[1:-1])} or {values[-1]}"


# notes, soap_summary, billing_codes, insurance_info: PHI (billing codes name diagnoses).
_PHI = Field(default=None, max_length=200_000, description="PHI, sealed with the client's key")


class AppointmentListArgs(Args):
    client_id: uuid.UUID
    limit: int = Field(default=100, ge=1, le=1000)
    phi: bool = Field(default=True, description="false: clinical fields stay masked even with phi:read; "
                                                "nothing is opened and no READ is audited")


class AppointmentArgs(Args):
    appointment_id: uuid.UUID


class AppointmentFields(Args):
    starts_at: datetime | None = Field(default=None, description="ISO 8601 with a timezone")
    duration_minutes: int | None = Field(default=None, description="5 to 600 (default 50)")
    session_type: str | None = Field(default=None, max_length=40, description="default: individual")
    status: str | None = Field(default=None, max_length=40, description=_choices(APPOINTMENT_STATUSES))
    payment_status: str | None = Field(default=None, max_length=40, description=_choices(PAYMENT_STATUSES))
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
    clear: list[Clearable] = Field(default_factory=list, description="fields to empty")


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
