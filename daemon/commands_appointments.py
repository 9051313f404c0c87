"""Control commands for appointments: the therapy sessions a practice books, with the
service and staff member, price, payment status and whether a reminder went out.

They are `appointment.*` because `session.*` already means login sessions. Reading needs
`table:therapy_sessions:read`, booking and changing `...:write` (the front desk has both);
the clinical fields (notes, SOAP summary, billing codes, insurance info) are opened only
for `phi:read`, on list and show, and that READ is audited; add and set answer them
masked. Values are checked by core.repository.sessions: a bad one is refused naming the
field, never echoing it, and nothing is written; the service and staff member must be of
the client's practice.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from strongroom.core.db.engine import transaction
from strongroom.core.repository import sessions as sessions_repo

from strongroom.core.protocol.models.appointments import (Appointment, AppointmentAddArgs, AppointmentArgs,
                                                          AppointmentListArgs, AppointmentPage, AppointmentSetArgs)
from strongroom.daemon.commands import Call, command, given_changes

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


@command("appointment.list", permission="table:therapy_sessions:read", args=AppointmentListArgs,
         result=AppointmentPage)
def appointment_list_cmd(d: "Daemon", call: Call) -> dict:
    """A client's appointments, newest first (clinical fields masked without phi:read, or
    when the caller asks for none with phi=false)."""
    a: AppointmentListArgs = call.args
    with transaction(d.ctx.engine) as conn:
        return {"items": sessions_repo.list_sessions(conn, d.ctx.keyring, call.principal, a.client_id,
                                                     limit=a.limit, reveal=a.phi)}


@command("appointment.show", permission="table:therapy_sessions:read", args=AppointmentArgs, result=Appointment)
def appointment_show_cmd(d: "Daemon", call: Call) -> dict:
    """One appointment (clinical fields masked without phi:read)."""
    with transaction(d.ctx.engine) as conn:
        return sessions_repo.get_session(conn, d.ctx.keyring, call.principal, call.args.appointment_id)


@command("appointment.add", permission="table:therapy_sessions:write", args=AppointmentAddArgs,
         result=Appointment)
def appointment_add_cmd(d: "Daemon", call: Call) -> dict:
    """Book an appointment for a client (starts_at at least; a service's price unless
    price_cents is given); returns it, clinical fields masked."""
    a: AppointmentAddArgs = call.args
    with transaction(d.ctx.engine) as conn:
        session_id = sessions_repo.create_session(conn, d.ctx.keyring, call.principal,
                                                  {"client_id": a.client_id, **given_changes(a, ("client_id",))})
        return sessions_repo.get_session(conn, d.ctx.keyring, call.principal, session_id, reveal=False)


@command("appointment.set", permission="table:therapy_sessions:write", args=AppointmentSetArgs,
         result=Appointment)
def appointment_set_cmd(d: "Daemon", call: Call) -> dict:
    """Change an appointment's fields (only those given; `clear` empties optional ones);
    returns it, clinical fields masked."""
    a: AppointmentSetArgs = call.args
    with transaction(d.ctx.engine) as conn:
        sessions_repo.update_session(conn, d.ctx.keyring, call.principal, a.appointment_id,
                                     given_changes(a, ("appointment_id",)))
        return sessions_repo.get_session(conn, d.ctx.keyring, call.principal, a.appointment_id, reveal=False)
