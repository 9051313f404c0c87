"""`strongroom appointments list|show|add|set`: a client's appointments (the therapy
sessions the practice books), with the service and staff member, price, status, payment
status and whether a reminder went out.

Everything goes through the daemon (daemon/commands_appointments.py), which checks each
value: numbers, times and statuses are passed on as typed (statuses upper-cased) so a
bad one is refused by the daemon naming the field, never echoing what was typed. Money
is in integer cents. Notes are PHI: they are read from a file (`--notes-file`, `-` for
standard input), never taken from the command line, which every user of the machine
can see in `ps`.
"""
from __future__ import annotations

from typing import Any

import click

from strongroom.console.cli import CliState, echo_rows, emit, remote_options
from strongroom.console.cli.options import clear_fields, given_options
from strongroom.console.cli.transport import call_daemon

_STATUS = ("SCHEDULED", "CONFIRMED", "CANCELLED", "COMPLETED")
_PAYMENT = ("PENDING", "PAID", "FAILED", "REFUNDED")
_COLUMNS = ("id", "starts_at", "duration_minutes", "session_type", "status", "payment_status", "price_cents")


def _upper(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else value.upper()


def _notes(_ctx: click.Context, _param: click.Parameter, handle) -> str | None:
    return None if handle is None else handle.read()


@click.group(name="appointments")
def group() -> None:
    """Appointments: list, show, add, set (status, payment, service, staff, price)."""


def _print(a: dict) -> None:
    echo_rows([a], _COLUMNS, "")
    click.echo(f"  client {a['client_id']}; service {a.get('service_id') or '-'}; staff {a.get('staff_id') or '-'}; "
               f"reminder {'sent' if a.get('reminder_sent') else 'not sent'}")
    if a.get("notes") is not None:
        click.echo(f"  notes: {a['notes']}")


def _appointment_options(func):
    for option in reversed([
        click.option("--duration", "duration_minutes", metavar="MINUTES", help="5 to 600 (default 50)."),
        click.option("--type", "session_type", metavar="TYPE", help="individual (default), couple, intake..."),
        click.option("--status", callback=_upper, metavar="STATUS", help=", ".join(_STATUS) + "."),
        click.option("--payment-status", callback=_upper, metavar="STATUS", help=", ".join(_PAYMENT) + "."),
        click.option("--price", "price_cents", metavar="CENTS",
                     help="The price in integer cents (default: the service's price)."),
        click.option("--service", "service_id", metavar="UUID", help="One of the practice's services."),
        click.option("--staff", "staff_id", metavar="UUID", help="One of the practice's staff."),
        click.option("--notes-file", "notes", type=click.File("r", encoding="utf-8"), callback=_notes,
                     metavar="PATH", help="Session notes (PHI) from this file, - for standard input."),
    ]):
        func = option(func)
    return func


@group.command(name="list")
@click.argument("client_id")
@click.option("--limit", default="100", show_default=True, metavar="N",
              help="At most this many, newest first (1 to 1000).")
@remote_options()
def list_cmd(state: CliState, client_id: str, limit: str, socket_path, as_json: bool) -> None:
    """List a client's appointments, newest first (notes masked without phi:read)."""
    data = call_daemon(state, socket_path, "appointment.list", {"client_id": client_id, "limit": limit})
    emit(as_json, data, lambda d: echo_rows(d["items"], _COLUMNS, "no appointments"))


@group.command(name="show")
@click.argument("appointment_id")
@remote_options()
def show_cmd(state: CliState, appointment_id: str, socket_path, as_json: bool) -> None:
    """Show one appointment (notes masked without phi:read; opening them is audited)."""
    emit(as_json, call_daemon(state, socket_path, "appointment.show", {"appointment_id": appointment_id}), _print)


@group.command(name="add")
@click.argument("client_id")
@click.option("--starts", "starts_at", required=True, metavar="ISO",
              help="When it starts, ISO 8601 with a timezone (2031-03-04T10:00+01:00).")
@_appointment_options
@remote_options()
def add_cmd(state: CliState, client_id: str, socket_path, as_json: bool, **fields: Any) -> None:
    """Book an appointment for a client (--starts at least)."""
    emit(as_json, call_daemon(state, socket_path, "appointment.add", {"client_id": client_id, **given_options(**fields)}),
         _print)


@group.command(name="set")
@click.argument("appointment_id")
@click.option("--starts", "starts_at", metavar="ISO", help="When it starts, ISO 8601 with a timezone.")
@_appointment_options
@click.option("--reminder-sent/--reminder-not-sent", default=None, help="Whether the reminder went out.")
@click.option("--clear", multiple=True, type=click.Choice(["price-cents", "service-id", "staff-id", "notes"]),
              help="Empty a field (repeatable).")
@remote_options()
def set_cmd(state: CliState, appointment_id: str, clear: tuple[str, ...], socket_path, as_json: bool,
            **fields: Any) -> None:
    """Change an appointment's fields (only those given)."""
    args = {**given_options(**fields), **clear_fields(clear)}
    if not args:
        raise click.UsageError("give at least one field to change")
    emit(as_json, call_daemon(state, socket_path, "appointment.set", {"appointment_id": appointment_id, **args}), _print)
