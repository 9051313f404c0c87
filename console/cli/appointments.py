"""`strongroom appointments list|show|add|set`: a client's appointments (the therapy
sessions the practice books), with the service and staff member, price, status, payment
status, whether a reminder went out, and the clinical fields: session number, consent
verified, notes, SOAP summary, billing codes and insurance info.

Everything goes through the daemon (daemon/commands_appointments.py), which checks each
value: numbers, times and statuses are passed on as typed (statuses upper-cased) so a
bad one is refused by the daemon naming the field, never echoing what was typed. Money
is in integer cents. Notes, the SOAP summary, billing codes and insurance info are PHI
(the daemon seals each with the client's key; billing codes name diagnoses): they are
read from a file (`--notes-file`, `--soap-summary-file`, `--billing-codes-file`,
`--insurance-info-file`; `-` for standard input, for one of them), never taken from the
command line, which every user of the machine can see in `ps`.
"""
from __future__ import annotations

from typing import Any

import click

from strongroom.console.cli import CliState, echo_rows, emit, remote_options
from strongroom.console.cli.options import clear_fields, given_options
from strongroom.console.cli.transport import call_daemon


# The protocol's values (core/protocol/models/appointments.py), spelled out here because
# importing the protocol costs pydantic, which `--help` must not load
# (tests/console/test_cli_startup.py); tests/console/test_cli_appointments.py holds each
# equal to the protocol's.
APPOINTMENT_STATUSES = ("SCHEDULED", "CONFIRMED", "CANCELLED", "COMPLETED")
PAYMENT_STATUSES = ("PENDING", "PAID", "FAILED", "REFUNDED")
CLEARABLE = ("price_cents", "service_id", "staff_id", "session_number", "notes", "soap_summary", "billing_codes",
             "insurance_info")
# What `set --clear` empties, spelled as options are.
_CLEARABLE = [field.replace("_", "-") for field in CLEARABLE]
_COLUMNS = ("id", "starts_at", "duration_minutes", "session_type", "status", "payment_status", "price_cents")


def _upper(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else value.upper()


# The PHI fields, each read from a file: (field, option, what it holds).
_PHI_FILES = (("notes", "--notes-file", "Session notes"),
              ("soap_summary", "--soap-summary-file", "The SOAP summary"),
              ("billing_codes", "--billing-codes-file", "Billing codes (as the practice writes them)"),
              ("insurance_info", "--insurance-info-file", "Insurance info"))


def _phi_file(ctx: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """The text of the file `path` names (`-`: standard input). A file that cannot be read
    is refused naming the option, not the path (which may itself say something about the
    client). Standard input feeds one field only: a second `-` would read nothing and
    quietly store an empty field in place of what the person meant."""
    if path is None:
        return None
    if path == "-":
        taken = ctx.meta.setdefault("strongroom.appointments.stdin", param.name)
        if taken != param.name:
            raise click.BadParameter("standard input (-) already feeds another field; give a file", param=param)
        with click.open_file("-", "r", encoding="utf-8") as handle:
            return handle.read()
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        raise click.BadParameter("the file cannot be read (missing, a directory, no permission, or not UTF-8)",
                                 param=param) from None


def _phi_options() -> list:
    return [click.option(option, field, type=click.Path(allow_dash=True), callback=_phi_file,
                         metavar="PATH", help=f"{what} (PHI) from this file, - for standard input.")
            for field, option, what in _PHI_FILES]


@click.group(name="appointments")
def group() -> None:
    """Appointments: list, show, add, set (status, payment, service, staff, price, clinical fields)."""


def _print(a: dict) -> None:
    echo_rows([a], _COLUMNS, "")
    click.echo(f"  client {a['client_id']}; service {a.get('service_id') or '-'}; "
               f"staff {a.get('staff_id') or '-'}; reminder {'sent' if a.get('reminder_sent') else 'not sent'}")
    consent = {True: "verified", False: "not verified"}.get(a.get("consent_verified"), "-")
    click.echo(f"  session number {a.get('session_number') or '-'}; consent {consent}")
    # The PHI as the daemon answered it: opened for phi:read, else its redaction mark.
    for field, _, _ in _PHI_FILES:
        if a.get(field) is not None:
            click.echo(f"  {field.replace('_', ' ')}: {a[field]}")


def _appointment_options(func):
    for option in reversed([
        click.option("--duration", "duration_minutes", metavar="MINUTES", help="5 to 600 (default 50)."),
        click.option("--type", "session_type", metavar="TYPE", help="individual (default), couple, intake..."),
        click.option("--status", callback=_upper, metavar="STATUS", help=", ".join(APPOINTMENT_STATUSES) + "."),
        click.option("--payment-status", callback=_upper, metavar="STATUS",
                     help=", ".join(PAYMENT_STATUSES) + "."),
        click.option("--price", "price_cents", metavar="CENTS",
                     help="The price in integer cents (default: the service's price)."),
        click.option("--service", "service_id", metavar="UUID", help="One of the practice's services."),
        click.option("--staff", "staff_id", metavar="UUID", help="One of the practice's staff."),
        click.option("--session-number", metavar="N", help="Which session of the client's this is (1 or more)."),
        click.option("--consent-verified/--no-consent-verified", default=None,
                     help="Whether the client's consent was verified."),
        *_phi_options(),
    ]):
        func = option(func)
    return func


@group.command(name="list")
@click.argument("client_id")
@click.option("--limit", default="100", show_default=True, metavar="N",
              help="At most this many, newest first (1 to 1000).")
@remote_options()
def list_cmd(state: CliState, client_id: str, limit: str, socket_path, as_json: bool) -> None:
    """List a client's appointments, newest first (PHI masked without phi:read)."""
    data = call_daemon(state, socket_path, "appointment.list", {"client_id": client_id, "limit": limit})
    emit(as_json, data, lambda d: echo_rows(d["items"], _COLUMNS, "no appointments"))


@group.command(name="show")
@click.argument("appointment_id")
@remote_options()
def show_cmd(state: CliState, appointment_id: str, socket_path, as_json: bool) -> None:
    """Show one appointment (PHI masked without phi:read; opening it is audited)."""
    emit(as_json, call_daemon(state, socket_path, "appointment.show", {"appointment_id": appointment_id}), _print)


@group.command(name="add")
@click.argument("client_id")
@click.option("--starts", "starts_at", required=True, metavar="ISO",
              help="When it starts, ISO 8601 with a timezone (2031-03-04T10:00+01:00).")
@_appointment_options
@remote_options()
def add_cmd(state: CliState, client_id: str, socket_path, as_json: bool, **fields: Any) -> None:
    """Book an appointment for a client (--starts at least)."""
    args = {"client_id": client_id, **given_options(**fields)}
    emit(as_json, call_daemon(state, socket_path, "appointment.add", args), _print)


@group.command(name="set")
@click.argument("appointment_id")
@click.option("--starts", "starts_at", metavar="ISO", help="When it starts, ISO 8601 with a timezone.")
@_appointment_options
@click.option("--reminder-sent/--reminder-not-sent", default=None, help="Whether the reminder went out.")
@click.option("--clear", multiple=True, type=click.Choice(_CLEARABLE),
              help="Empty a field (repeatable).")
@remote_options()
def set_cmd(state: CliState, appointment_id: str, clear: tuple[str, ...], socket_path, as_json: bool,
            **fields: Any) -> None:
    """Change an appointment's fields (only those given)."""
    args = {**given_options(**fields), **clear_fields(clear)}
    if not args:
        raise click.UsageError("give at least one field to change")
    emit(as_json, call_daemon(state, socket_path, "appointment.set", {"appointment_id": appointment_id, **args}),
         _print)
