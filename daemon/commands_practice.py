"""Control commands for the practice's details, staff and service catalogue (issue 20).

Every practice role reads them (`table:practices|staff|services:read`); the practice
owner (ADMIN) and operator admins change them (`...:write`). The tax id and licence
number come back opened only for those who may change them, masked for everyone else.
Each `set` names the fields to change and nothing else; `clear` empties optional ones.
Values are checked by the repository (core.repository.practices/staff/services): a bad
one is refused naming the field, never echoing the value, and nothing is written.
"""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pydantic import Field
from sqlalchemy import Connection

from strongroom.core.db.engine import transaction
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.practices import get_practice, update_practice
from strongroom.core.principal import Principal

from strongroom.core.protocol.models.practice import ListArgs, PracticeArgs, PracticeInfo, PracticeSetArgs, Service, ServiceAddArgs, ServicePage, ServiceSetArgs, StaffAddArgs, StaffMember, StaffPage, StaffSetArgs
from strongroom.daemon.commands import Call, command, given_changes
from strongroom.daemon.tenancy import practice_for

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

_TEXT = Field(default=None, max_length=5000)


def _practice(conn: Connection, principal: Principal, given: uuid.UUID | None) -> uuid.UUID:
    return practice_for(conn, principal, given)


@command("practice.show", permission="table:practices:read", args=PracticeArgs, result=PracticeInfo)
def practice_show_cmd(d: "Daemon", call: Call) -> dict:
    """The practice's details (tax id and licence number masked unless the caller may edit them)."""
    with transaction(d.ctx.engine) as conn:
        return get_practice(conn, d.ctx.keyring, call.principal, _practice(conn, call.principal, call.args.practice_id))


@command("practice.set", permission="table:practices:write", args=PracticeSetArgs, result=PracticeInfo)
def practice_set_cmd(d: "Daemon", call: Call) -> dict:
    """Change the practice's name, address, phone, email, tax id or licence number."""
    with transaction(d.ctx.engine) as conn:
        practice = _practice(conn, call.principal, call.args.practice_id)
        update_practice(conn, d.ctx.keyring, call.principal, practice, given_changes(call.args, ("practice_id",)))
        return get_practice(conn, d.ctx.keyring, call.principal, practice)


@command("staff.list", permission="table:staff:read", args=ListArgs, result=StaffPage)
def staff_list_cmd(d: "Daemon", call: Call) -> dict:
    """The practice's staff by name (active ones unless include_inactive)."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = _practice(conn, call.principal, call.args.practice_id)
        return {"items": staff_repo.list_staff(conn, call.principal, practice,
                                               include_inactive=call.args.include_inactive)}


@command("staff.add", permission="table:staff:write", args=StaffAddArgs, result=StaffMember)
def staff_add_cmd(d: "Daemon", call: Call) -> dict:
    """Add a staff member (first_name, last_name and role at least); returns the record."""
    with transaction(d.ctx.engine) as conn:
        practice = _practice(conn, call.principal, call.args.practice_id)
        staff_id = staff_repo.create_staff(conn, call.principal, practice, given_changes(call.args, ("practice_id",)))
        return staff_repo.get_staff(conn, call.principal, staff_id)


@command("staff.set", permission="table:staff:write", args=StaffSetArgs, result=StaffMember)
def staff_set_cmd(d: "Daemon", call: Call) -> dict:
    """Change a staff member's fields (active: false retires them)."""
    with transaction(d.ctx.engine) as conn:
        staff_repo.update_staff(conn, call.principal, call.args.staff_id, given_changes(call.args, ("staff_id",)))
        return staff_repo.get_staff(conn, call.principal, call.args.staff_id)


@command("service.list", permission="table:services:read", args=ListArgs, result=ServicePage)
def services_list_cmd(d: "Daemon", call: Call) -> dict:
    """The service catalogue by category and name (active services unless include_inactive)."""
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = _practice(conn, call.principal, call.args.practice_id)
        return {"items": services_repo.list_services(conn, call.principal, practice,
                                                     include_inactive=call.args.include_inactive)}


@command("service.add", permission="table:services:write", args=ServiceAddArgs, result=Service)
def services_add_cmd(d: "Daemon", call: Call) -> dict:
    """Add a service (name, category, duration_minutes, price_cents); returns it."""
    with transaction(d.ctx.engine) as conn:
        practice = _practice(conn, call.principal, call.args.practice_id)
        service_id = services_repo.create_service(conn, call.principal, practice,
                                                  given_changes(call.args, ("practice_id",)))
        return services_repo.get_service(conn, call.principal, service_id)


@command("service.set", permission="table:services:write", args=ServiceSetArgs, result=Service)
def services_set_cmd(d: "Daemon", call: Call) -> dict:
    """Change a service's fields (active: false retires it; its sessions keep it)."""
    with transaction(d.ctx.engine) as conn:
        services_repo.update_service(conn, call.principal, call.args.service_id,
                                     given_changes(call.args, ("service_id",)))
        return services_repo.get_service(conn, call.principal, call.args.service_id)
