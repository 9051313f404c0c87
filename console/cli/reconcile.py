"""`strongroom reconcile run|list|show|merge|dismiss|undo`: duplicate clients.

The reconcile job (through the daemon) finds clients of a practice who are likely one
person and records them as open pairs: ids, a score and reason codes (`name~0.93`,
`swapped`, `dob=`, `phone=`, `email=`). `show` puts both clients side by side (masked
without phi:read); `merge` moves every session and file of one to the other, `undo`
moves exactly those back, `dismiss` says they are two people.
"""
from __future__ import annotations

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.jobs import start_job
from strongroom.console.cli.transport import run_remote

FIELDS = ("first_name", "last_name", "date_of_birth", "phone", "email", "address", "status", "created_at")


@click.group(name="reconcile")
def group() -> None:
    """Duplicate clients: find them, compare side by side, merge (undoable) or dismiss."""


@group.command(name="run")
@click.option("--practice", "practice_id", metavar="UUID", help="Only this practice (default: every practice).")
@click.option("--wait", is_flag=True, help="Follow the run; exit non-zero unless it succeeds.")
@remote_options()
def run_cmd(state: CliState, practice_id: str | None, wait: bool, socket_path, as_json: bool) -> None:
    """Find likely duplicate clients (the reconcile job)."""
    start_job(state, socket_path, "reconcile", {"practice_id": practice_id} if practice_id else {},
              wait=wait, as_json=as_json)


def _print_pairs(data: dict) -> None:
    if not data["items"]:
        click.echo("no pairs")
    for p in data["items"]:
        click.echo(f"{p['pair_id']}  {p['score']:.2f}  {p['status']:<9} {p['client_a']} {p['client_b']}  "
                   + " ".join(p["reasons"]))
    if data.get("next"):
        click.echo(f"more: --after {data['next']}")


@group.command(name="list")
@click.option("--status", type=click.Choice(["open", "merged", "dismissed"]), default="open", show_default=True)
@click.option("--practice", "practice_id", metavar="UUID", help="Only this practice.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--after", metavar="PAIR_ID", help="Continue after this pair (the `more: --after` of the page before).")
@remote_options()
def list_cmd(state: CliState, status: str, practice_id: str | None, limit: int, after: str | None,
             socket_path, as_json: bool) -> None:
    """Candidate pairs, best score first, a page at a time."""
    args = {"status": status, "limit": limit, **({"practice_id": practice_id} if practice_id else {}),
            **({"after": after} if after else {})}
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("reconcile.list", args)), _print_pairs)


def _print_pair(p: dict) -> None:
    click.echo(f"pair {p['pair_id']}: score {p['score']:.2f}, {p['status']}; reasons: {' '.join(p['reasons'])}")
    if p.get("decided_by"):
        click.echo(f"  decided by {p['decided_by']} at {p['decided_at']}")
    record = p.get("merge_record")
    if record:
        click.echo(f"  merged into {record['survivor']}: {len(record['therapy_sessions'])} session(s), "
                   f"{len(record['client_files'])} file(s) moved")
    clients = p.get("clients")
    if clients:
        a, b = clients
        click.echo(f"  {'':<14} {'A ' + str(a['id']):<40} {'B ' + str(b['id'])}")
        for field in FIELDS:
            mark = "=" if a.get(field) == b.get(field) else " "
            click.echo(f"  {field:<14}{mark}{str(a.get(field) or '-'):<40} {b.get(field) or '-'}")


@group.command(name="show")
@click.argument("pair_id")
@remote_options()
def show_cmd(state: CliState, pair_id: str, socket_path, as_json: bool) -> None:
    """One pair with both clients side by side (masked without phi:read)."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("reconcile.show", {"pair_id": pair_id})),
         _print_pair)


@group.command(name="merge")
@click.argument("pair_id")
@click.option("--survivor", metavar="CLIENT_UUID", help="The client who keeps everything (default: client A).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@remote_options()
def merge_cmd(state: CliState, pair_id: str, survivor: str | None, yes: bool, socket_path, as_json: bool) -> None:
    """Merge a pair: every session and file moves to the survivor; the other is retired (undoable)."""
    if not yes:
        click.confirm(f"merge pair {pair_id}?", abort=True, err=True)
    args = {"pair_id": pair_id, **({"survivor": survivor} if survivor else {})}
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("reconcile.merge", args)), _print_pair)


@group.command(name="dismiss")
@click.argument("pair_id")
@remote_options()
def dismiss_cmd(state: CliState, pair_id: str, socket_path, as_json: bool) -> None:
    """Mark a pair as two different people; later runs leave it dismissed."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("reconcile.dismiss", {"pair_id": pair_id})),
         _print_pair)


@group.command(name="undo")
@click.argument("pair_id")
@remote_options()
def undo_cmd(state: CliState, pair_id: str, socket_path, as_json: bool) -> None:
    """Undo a merge: exactly the rows it moved go back, the other client returns, the pair reopens."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("reconcile.undo", {"pair_id": pair_id})),
         _print_pair)


COMMANDS = (group,)
