"""`strongroom practice show|set`, `strongroom staff list|add|set`, `strongroom services
list|add|set`: the practice's details, its people and its service catalogue (issue 20).

Everything goes through the daemon (daemon/commands_practice.py), which checks each
value: numbers are passed on as typed so a bad one is refused by the daemon naming the
field, never echoing what was typed. Money is in integer cents. Working hours are given
one weekday at a time, `--hours mon=09:00-12:00,13:00-17:00`.
"""
from __future__ import annotations

from typing import Any

import click

from strongroom.console.cli import CliState, echo_rows, emit, remote_options
from strongroom.console.cli.options import clear_fields, given_options
from strongroom.console.cli.transport import call_daemon

_PRACTICE = click.option("--practice", "practice_id", metavar="UUID", help="Which practice (default: the only one).")
_ALL = click.option("--all", "include_inactive", is_flag=True, help="Include inactive ones.")


def _hours(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict | None:
    if not values:
        return None
    hours: dict[str, list[str]] = {}
    for value in values:
        day, sep, spans = value.partition("=")
        if not sep:
            raise click.BadParameter("give one weekday as DAY=HH:MM-HH:MM[,HH:MM-HH:MM...]")
        hours[day.strip().lower()] = [s.strip() for s in spans.split(",") if s.strip()]
    return hours


# --- practice ---------------------------------------------------------------------------

@click.group(name="practice")
def practice_group() -> None:
    """The practice's details: address, phone, email, tax id and licence number."""


def _print_practice(p: dict) -> None:
    for name in ("name", "address", "phone", "email", "tax_id", "license_number", "id"):
        click.echo(f"{name:<15} {p.get(name) or '-'}")


@practice_group.command(name="show")
@_PRACTICE
@remote_options()
def practice_show_cmd(state: CliState, practice_id: str | None, socket_path, as_json: bool) -> None:
    """Show the practice's details (tax id and licence masked unless you may edit them)."""
    emit(as_json, call_daemon(state, socket_path, "practice.show", given_options(practice_id=practice_id)), _print_practice)


@practice_group.command(name="set")
@_PRACTICE
@click.option("--name")
@click.option("--address")
@click.option("--phone")
@click.option("--email")
@click.option("--tax-id")
@click.option("--license-number")
@click.option("--clear", multiple=True, type=click.Choice(["address", "phone", "email", "tax-id", "license-number"]),
              help="Empty a field (repeatable).")
@remote_options()
def practice_set_cmd(state: CliState, practice_id: str | None, name, address, phone, email, tax_id,
                     license_number, clear: tuple[str, ...], socket_path, as_json: bool) -> None:
    """Change the practice's details (only the fields given)."""
    args = {**given_options(practice_id=practice_id, name=name, address=address, phone=phone, email=email, tax_id=tax_id,
                     license_number=license_number), **clear_fields(clear)}
    if not args.keys() - {"practice_id"}:
        raise click.UsageError("give at least one field to change")
    emit(as_json, call_daemon(state, socket_path, "practice.set", args), _print_practice)


# --- staff ------------------------------------------------------------------------------

@click.group(name="staff")
def staff_group() -> None:
    """The practice's staff: list, add, set (role, specializations, working hours, rate)."""


_STAFF_COLUMNS = ("id", "last_name", "first_name", "role", "active", "hourly_rate_cents")


def _print_staff(s: dict) -> None:
    hours = "; ".join(f"{day} {','.join(spans)}" for day, spans in (s.get("working_hours") or {}).items())
    click.echo(f"{s['id']}  {s['first_name']} {s['last_name']}  {s['role']}  "
               f"{'active' if s['active'] else 'inactive'}")
    click.echo(f"  specializations: {', '.join(s.get('specializations') or []) or '-'}; hours: {hours or '-'}; "
               f"rate (cents/hour): {s.get('hourly_rate_cents') if s.get('hourly_rate_cents') is not None else '-'}")


def _staff_options(func):
    for option in reversed([
        click.option("--first-name"), click.option("--last-name"),
        click.option("--role", help="ADMIN, MANAGER, PRACTITIONER or STAFF."),
        click.option("--user-id", metavar="UUID", help="Their user account, if they have one."),
        click.option("--specialization", "specializations", multiple=True, help="Repeatable."),
        click.option("--phone"), click.option("--email"),
        click.option("--hours", "working_hours", multiple=True, callback=_hours, metavar="DAY=HH:MM-HH:MM[,...]",
                     help="Working hours of one weekday (mon..sun); repeatable."),
        click.option("--hourly-rate-cents", metavar="CENTS"),
    ]):
        func = option(func)
    return func


@staff_group.command(name="list")
@_PRACTICE
@_ALL
@remote_options()
def staff_list_cmd(state: CliState, practice_id: str | None, include_inactive: bool, socket_path,
                   as_json: bool) -> None:
    """List the practice's staff (active ones unless --all)."""
    data = call_daemon(state, socket_path, "staff.list", {**given_options(practice_id=practice_id),
                                                    "include_inactive": include_inactive})
    emit(as_json, data, lambda d: echo_rows(d["items"], _STAFF_COLUMNS, "no staff"))


@staff_group.command(name="add")
@_PRACTICE
@_staff_options
@remote_options()
def staff_add_cmd(state: CliState, practice_id: str | None, socket_path, as_json: bool, **fields: Any) -> None:
    """Add a staff member (--first-name, --last-name and --role at least)."""
    emit(as_json, call_daemon(state, socket_path, "staff.add", given_options(practice_id=practice_id, **fields)), _print_staff)


@staff_group.command(name="set")
@click.argument("staff_id")
@_staff_options
@click.option("--active/--inactive", default=None, help="Retire a staff member, or bring them back.")
@click.option("--clear", multiple=True, type=click.Choice(["user-id", "phone", "email", "hourly-rate-cents"]),
              help="Empty a field (repeatable).")
@remote_options()
def staff_set_cmd(state: CliState, staff_id: str, clear: tuple[str, ...], socket_path, as_json: bool,
                  **fields: Any) -> None:
    """Change a staff member's fields (only those given)."""
    args = {**given_options(**fields), **clear_fields(clear)}
    if not args:
        raise click.UsageError("give at least one field to change")
    emit(as_json, call_daemon(state, socket_path, "staff.set", {"staff_id": staff_id, **args}), _print_staff)


# --- services ---------------------------------------------------------------------------

@click.group(name="services")
def services_group() -> None:
    """The practice's service catalogue: list, add, set (duration, price in cents, active)."""


_SERVICE_COLUMNS = ("id", "category", "name", "duration_minutes", "price_cents", "active")


def _print_service(s: dict) -> None:
    echo_rows([s], _SERVICE_COLUMNS, "")


def _service_options(func):
    for option in reversed([
        click.option("--name"), click.option("--category"), click.option("--description"),
        click.option("--duration-minutes", metavar="MINUTES"),
        click.option("--price-cents", metavar="CENTS", help="The price in integer cents (12500 is 125.00)."),
    ]):
        func = option(func)
    return func


@services_group.command(name="list")
@_PRACTICE
@_ALL
@remote_options()
def services_list_cmd(state: CliState, practice_id: str | None, include_inactive: bool, socket_path,
                      as_json: bool) -> None:
    """List the service catalogue (active services unless --all)."""
    data = call_daemon(state, socket_path, "service.list", {**given_options(practice_id=practice_id),
                                                       "include_inactive": include_inactive})
    emit(as_json, data, lambda d: echo_rows(d["items"], _SERVICE_COLUMNS, "no services"))


@services_group.command(name="add")
@_PRACTICE
@_service_options
@remote_options()
def services_add_cmd(state: CliState, practice_id: str | None, socket_path, as_json: bool, **fields: Any) -> None:
    """Add a service (--name, --category, --duration-minutes, --price-cents)."""
    emit(as_json, call_daemon(state, socket_path, "service.add", given_options(practice_id=practice_id, **fields)),
         _print_service)


@services_group.command(name="set")
@click.argument("service_id")
@_service_options
@click.option("--active/--inactive", default=None, help="Retire a service (its sessions keep it), or bring it back.")
@click.option("--clear", multiple=True, type=click.Choice(["description"]), help="Empty a field.")
@remote_options()
def services_set_cmd(state: CliState, service_id: str, clear: tuple[str, ...], socket_path, as_json: bool,
                     **fields: Any) -> None:
    """Change a service's fields (only those given)."""
    args = {**given_options(**fields), **clear_fields(clear)}
    if not args:
        raise click.UsageError("give at least one field to change")
    emit(as_json, call_daemon(state, socket_path, "service.set", {"service_id": service_id, **args}), _print_service)
