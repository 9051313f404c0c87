"""`strongroom sync conflicts|show|resolve`: the sync conflict queue, through the daemon.

Everything here needs `sync:resolve`. The daemon decides what a person may see: PHI is
masked for anyone without `phi:read`, and the queue names the fields that differ, never
their values. Resolving sends a choice per field (local, remote or base), never a value,
so an operator resolves a conflict without any plaintext reaching the terminal.
"""
from __future__ import annotations

import sys
import uuid

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, json_option, pass_state, socket_option
from strongroom.console.cli.remote import run_remote
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:  # ZeroMQ loads when a command runs, not for its help
    from strongroom.console.client import Client

CHOICES = ("local", "remote", "base")
PAGE = 500   # the daemon's largest page


@click.group(name="sync")
def group() -> None:
    """Sync between sites: the conflict queue and resolving it field by field."""


async def _queue(client: Client, status: str) -> list[dict]:
    rows: list[dict] = []
    args: dict = {"status": status, "limit": PAGE}
    while True:
        page = await client.call("sync.conflicts", args)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        args["after_id"] = page[-1]["id"]


async def _summary(client: Client, conflict_id: uuid.UUID) -> dict:
    """One conflict as the queue shows it: which fields differ, without opening any value
    (`sync.conflict` opens them, and audits that as a read of the row for phi:read). The
    queue pages by id, so the page that starts just below this id begins with it."""
    args: dict = {"status": "all", "limit": 1}
    if conflict_id.int:
        args["after_id"] = str(uuid.UUID(int=conflict_id.int - 1))
    page = await client.call("sync.conflicts", args)
    if not page or page[0]["id"] != str(conflict_id):
        raise NotFoundError(f"sync conflict {conflict_id} does not exist")
    return page[0]


def _line(c: dict) -> str:
    fields = ", ".join(c["fields"]) if c["fields"] is not None else f"unreadable: {c['problem']}"
    line = (f"{c['id']}  {c['status']:<8} {c['table']:<16} row {c['row_id']}  peer {c['peer'] or '?'}  "
            f"since {str(c['created_at'])[:19]}  fields: {fields}" + ("  [PHI]" if c["phi"] else ""))
    if c["status"] == "resolved":
        line += f"  resolved by {c['resolved_by']} at {str(c['resolved_at'])[:19]}"
    return line


@group.command(name="conflicts")
@click.option("--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True)
@socket_option
@json_option
@pass_state
def conflicts_cmd(state: CliState, status: str, socket_path, as_json: bool) -> None:
    """The conflict queue, oldest first, naming the fields that differ (never their values)."""
    rows = run_remote(state, socket_path, lambda c: _queue(c, status))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no conflicts" if status == "all" else f"no {status} conflicts")
        for c in items:
            click.echo(_line(c))
    emit(as_json, rows, human)


@group.command(name="show")
@click.argument("conflict_id", type=click.UUID)
@socket_option
@json_option
@pass_state
def show_cmd(state: CliState, conflict_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """One conflict side by side: base, local and remote per field (PHI masked without
    phi:read; with it, the daemon audits the view as a read of the row)."""
    data = run_remote(state, socket_path, lambda c: c.call("sync.conflict", {"conflict_id": str(conflict_id)}))
    emit(as_json, data, _show_human)


def _show_human(d: dict) -> None:
    click.echo(_line(d))
    if d["masked"]:
        click.echo("  PHI masked: you lack phi:read; resolving needs only a choice per field")
    if not d["has_base"]:
        click.echo("  no base version: no common ancestor is known, choose local or remote")
    click.echo(f"  {'field':<22} {'base':<22} {'local':<22} {'remote':<22} chosen")
    for f in d["field_values"]:
        cells = [(f[v] if f[v] is not None else ("(absent)" if v in f["absent"] else "(empty)"))[:22]
                 for v in ("base", "local", "remote")]
        mark = "≠" if f["differs"] else " "
        click.echo(f"{mark} {f['name']:<22} {cells[0]:<22} {cells[1]:<22} {cells[2]:<22} {f['chosen'] or ''}")


def _field_choices(specs: tuple[str, ...]) -> dict[str, str]:
    choices: dict[str, str] = {}
    for spec in specs:
        name, sep, choice = spec.partition("=")
        name, choice = name.strip(), choice.strip()
        if not sep or not name:
            raise click.BadParameter(f"{spec!r}: expected NAME=local|remote|base", param_hint="--field")
        if choice not in CHOICES:
            raise click.BadParameter(f"field {name}: the choice must be one of {', '.join(CHOICES)}",
                                     param_hint="--field")
        if choices.get(name, choice) != choice:
            raise click.BadParameter(f"field {name} is given twice, as {choices[name]} and {choice}",
                                     param_hint="--field")
        choices[name] = choice
    return choices


def _choices_for(summary: dict, explicit: dict[str, str], every: str | None) -> dict[str, str]:
    """--all for every differing field, --field overriding it; checked against the fields
    the queue names so a doomed resolution is not offered for confirmation (the daemon
    checks again, and is the authority)."""
    cid, fields = summary["id"], summary["fields"]
    if fields is None:
        raise ValidationError(f"conflict {cid} cannot be resolved field by field: {summary['problem']}")
    choices = {**({name: every for name in fields} if every else {}), **explicit}
    unknown = sorted(set(choices) - set(fields))
    if unknown:
        raise ValidationError(f"conflict {cid} has no differing field {', '.join(unknown)}; "
                              f"its differing fields are: {', '.join(fields) or 'none'}")
    missing = [name for name in fields if name not in choices]
    if missing:
        raise ValidationError(f"conflict {cid}: choose a version for every differing field; "
                              f"missing: {', '.join(missing)} (or use --all local|remote)")
    return choices


@group.command(name="resolve")
@click.argument("conflict_id", type=click.UUID)
@click.option("--field", "fields", multiple=True, metavar="NAME=local|remote|base",
              help="The version to keep for one differing field (repeatable).")
@click.option("--all", "every", type=click.Choice(["local", "remote"]),
              help="Keep this version for every differing field not named with --field.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@socket_option
@json_option
@pass_state
def resolve_cmd(state: CliState, conflict_id: uuid.UUID, fields: tuple[str, ...], every: str | None, yes: bool,
                socket_path, as_json: bool) -> None:
    """Resolve a conflict by choosing local, remote or base for every differing field.
    Only the choices travel; the row gets a new sync version and reaches the peer on the
    next sync."""
    explicit = _field_choices(fields)
    if not explicit and not every:
        raise click.UsageError("choose a version: --field NAME=local|remote|base for each differing field, "
                               "or --all local|remote")
    summary = run_remote(state, socket_path, lambda c: _summary(c, conflict_id))
    if summary["status"] != "open":
        raise ConflictError(f"conflict {conflict_id} is already {summary['status']} (by "
                            f"{summary['resolved_by'] or 'unknown'} at {str(summary['resolved_at'])[:19]})")
    choices = _choices_for(summary, explicit, every)
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError("resolving a conflict needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"Resolve conflict {conflict_id} ({summary['table']} row {summary['row_id']}, "
                      f"peer {summary['peer']}) keeping {_described(choices)}? The row changes now and "
                      "reaches the peer on the next sync", abort=True)
    args = {"conflict_id": str(conflict_id), "choices": choices}
    result = run_remote(state, socket_path, lambda c: c.call("sync.resolve", args))
    emit(as_json, result, lambda r: click.echo(
        f"resolved conflict {r['id']} ({r['table']} row {r['row_id']}) keeping {_described(choices)}; "
        f"by {r['resolved_by']}"))


def _described(choices: dict[str, str]) -> str:
    return ", ".join(f"{name} ← {choice}" for name, choice in choices.items())
