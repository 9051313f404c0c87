"""`strongroom sync ...`: sync between sites, through the daemon.

`sync run [PEER] [--wait]` starts a pass (a `sync` job; needs job:sync:run) and can
follow it; `sync status` shows per peer and table where sync stands; `sync peer
add|list|remove|pause|resume` manages peers (changing them needs config:write);
`sync quarantine` lists rows a peer sent that failed validation, never their content.

The conflict queue (`conflicts|show|resolve`) needs `sync:resolve`. The daemon decides
what a person may see: PHI is masked for anyone without `phi:read`, the queue names the
fields that differ, never their values, and `show` gives the values of those fields only
(`show ID --field NAME` opens one other, audited as a read of that field). Resolving sends a choice per field (local,
remote or base), never a value, so an operator resolves a conflict without any plaintext
reaching the terminal.

A peer's address is printed only as the daemon gives it: with any password masked.
"""
from __future__ import annotations

import re

import sys
import uuid

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.jobs import wait_for_run
from strongroom.console.cli.transport import run_remote
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:  # ZeroMQ loads when a command runs, not for its help
    from strongroom.console.client import Client

CHOICES = ("local", "remote", "base")
PAGE = 500   # the daemon's largest page


@click.group(name="sync")
def group() -> None:
    """Sync between sites: passes, status, peers, the quarantine and the conflict queue."""


# --- passes and status -------------------------------------------------------------------

@group.command(name="run")
@click.argument("peer", required=False)
@click.option("--wait", is_flag=True, help="Show progress and exit non-zero unless every pass succeeds.")
@remote_options()
def run_cmd(state: CliState, peer: str | None, wait: bool, socket_path, as_json: bool) -> None:
    """Sync now with PEER, or with every active peer (a `sync` job run by the daemon)."""
    args = {"peer": peer} if peer else {}
    if not wait:
        run = run_remote(state, socket_path, lambda c: c.call("sync.run", args))
        emit(as_json, run, lambda r: click.echo(f"started sync run {r['id']} "
                                                f"(follow it: strongroom jobs get {r['id']})"))
        return
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json, cmd="sync.run"))
    emit(as_json, final, _run_human)
    if final["status"] != "succeeded":
        sys.exit(1)


def _run_human(run: dict) -> None:
    click.echo(f"sync run {run['id']} {run['status']}")
    for p in (run.get("result") or {}).get("peers") or []:
        if "skipped" in p:
            click.echo(f"  {p['peer']}: skipped, {p['skipped']} (next attempt {str(p['next_attempt_at'])[:19]})")
        elif "error" in p:
            click.echo(f"  {p['peer']}: failed: {p['error']}")
        else:
            click.echo(f"  {p['peer']}: sent {p['sent']}, received {p['received']}, conflicts {p['conflicts']}, "
                       f"quarantined {p['quarantined']}, rule decisions {p['decisions']}, "
                       f"keys destroyed {p['keys_destroyed']} in {p['seconds']}s")
    if run["status"] != "succeeded" and not (run.get("result") or {}).get("peers") and run.get("error"):
        click.echo(f"  {run['error']}")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit} ago"
    return f"{seconds:.0f}s ago"


@group.command(name="check")
@click.argument("peer")
@remote_options()
def check_cmd(state: CliState, peer: str, socket_path, as_json: bool) -> None:
    """Compare this site with PEER by ranges of rows (checksums, nothing decrypted): the
    rows missing on either side or differing, per table. Exit 1 when they differ."""
    data = run_remote(state, socket_path, lambda c: c.call("sync.check", {"peer": peer}))

    def human(d: dict) -> None:
        click.echo(f"sync check with {d['peer']}: {'identical' if d['consistent'] else 'the sites differ'}")
        for t in d["tables"]:
            click.echo(f"  {t['table']:<17} {t['rows_here']:>8} rows here, {t['rows_there']:>8} there; "
                       f"missing here {t['missing_here']}, missing there {t['missing_there']}, "
                       f"differing {t['differing']}")
            for e in t["examples"][:10]:
                click.echo(f"    {e['problem']:<13} {e['row_id']}")
    emit(as_json, data, human)
    if not data["consistent"]:
        sys.exit(1)


@group.command(name="status")
@remote_options()
def status_cmd(state: CliState, socket_path, as_json: bool) -> None:
    """Per peer and table: watermarks, lag in time and rows, failures, clock skew,
    open conflicts and quarantined rows."""
    data = run_remote(state, socket_path, lambda c: c.call("sync.status.get"))
    emit(as_json, data, _status_human)


def _status_human(d: dict) -> None:
    if not d["peers"]:
        click.echo("no sync peers (add one: strongroom sync peer add NAME URL)")
    for p in d["peers"]:
        flags = [word for word, on in (("paused", not p["is_active"] and not p["inbound"]),
                                       ("inbound", p["inbound"]), ("LAGGING", p["lagging"]),
                                       ("CLOCK SKEW", p["skew_exceeded"])) if on]
        click.echo(f"{p['name']}  {p['direction']}  {p['url']}" + (f"  [{', '.join(flags)}]" if flags else ""))
        pending = "?" if p["pending_rows"] is None else p["pending_rows"]
        click.echo(f"  last sync {_ago(p['lag_seconds'])}, {pending} rows not yet sent, "
                   f"{p['open_conflicts']} open conflicts, {p['quarantined']} quarantined"
                   + (f", clock skew {p['clock_skew_seconds']}s" if p["clock_skew_seconds"] is not None else ""))
        if p["failures"]:
            click.echo(f"  {p['failures']} failed passes in a row; last error: {p['last_error']}; "
                       f"next attempt {str(p['next_attempt_at'])[:19]}")
        for t in p["tables"]:
            pending = "-" if t["pending_rows"] is None else t["pending_rows"]
            click.echo(f"    {t['table']:<17} push {t['push_watermark']:>10}  pull {t['pull_watermark']:>10}  "
                       f"pending {pending:>6}  moved {str(t['last_moved_at'] or 'never')[:19]}")
    click.echo(f"open conflicts: {d['open_conflicts']}; quarantined rows: {d['quarantined']}")


@group.command(name="quarantine")
@click.option("--all", "show_all", is_flag=True, help="Include rows already dealt with.")
@remote_options()
def quarantine_cmd(state: CliState, show_all: bool, socket_path, as_json: bool) -> None:
    """Rows a peer sent that failed validation, with the reason (never their content)."""
    rows = run_remote(state, socket_path, lambda c: _every(c, "sync.quarantine.list", "all" if show_all else "open"))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no quarantined rows")
        for q in items:
            click.echo(f"{q['id']}  {q['status']:<8} {q['table']:<16} row {q['row_id']}  peer {q['peer'] or '?'}  "
                       f"{str(q['received_at'])[:19]}  {q['reason']}: {q['detail']}")
    emit(as_json, rows, human)


# --- peers -------------------------------------------------------------------------------

@group.group(name="peer")
def peer_group() -> None:
    """Sync peers: add, list, remove, pause, resume."""


@peer_group.command(name="add")
@click.argument("name")
@click.argument("url")
@click.option("--direction", type=click.Choice(["both", "push", "pull"]), default="both", show_default=True)
@remote_options()
def peer_add_cmd(state: CliState, name: str, url: str, direction: str, socket_path, as_json: bool) -> None:
    """Add peer NAME reached at database URL (sqlite:////path/strongroom.db, or
    postgresql+psycopg://user@host/db?sslmode=verify-full off this machine)."""
    peer = run_remote(state, socket_path, lambda c: c.call("sync.peer.add",
                                                           {"name": name, "url": url, "direction": direction}))
    emit(as_json, peer, lambda p: click.echo(f"added sync peer {p['name']} ({p['direction']}) at {p['url']}; "
                                             f"sync with it: strongroom sync run {p['name']}"))


def _peer_line(p: dict) -> str:
    state = "inbound" if p["inbound"] else ("active" if p["is_active"] else "paused")
    pending = "?" if p["pending_changes"] is None else p["pending_changes"]
    line = (f"{p['name']:<20} {state:<8} {p['direction']:<5} last sync {_ago(p['seconds_since_sync'])}, "
            f"{pending} not yet sent, {p['open_conflicts']} open conflicts  {p['url']}")
    if p["failures"]:
        line += f"  [{p['failures']} failures]"
    return line


@peer_group.command(name="list")
@remote_options()
def peer_list_cmd(state: CliState, socket_path, as_json: bool) -> None:
    """Peers with their lag and state; addresses with any password masked."""
    rows = run_remote(state, socket_path, lambda c: c.call("sync.peer.list"))
    emit(as_json, rows, lambda items: click.echo("\n".join(_peer_line(p) for p in items) or "no sync peers"))


def _peer_change(verb: str, done: str):
    @peer_group.command(name=verb)
    @click.argument("name")
    @remote_options()
    def change(state: CliState, name: str, socket_path, as_json: bool) -> None:
        result = run_remote(state, socket_path, lambda c: c.call(f"sync.peer.{verb}", {"name": name}))
        emit(as_json, result, lambda r: click.echo(f"sync peer {r['name']} {done}"))
    return change


peer_remove_cmd = _peer_change("remove", "removed (its resolved conflicts stay as evidence)")
peer_remove_cmd.help = ("Forget peer NAME and its watermarks (refused while it has open conflicts). A peer "
                        "still in the config file comes back on the next start or reload.")
peer_pause_cmd = _peer_change("pause", "paused: no passes with it until it is resumed")
peer_pause_cmd.help = "Pause peer NAME: no pass with it, scheduled or asked for."
peer_resume_cmd = _peer_change("resume", "resumed")
peer_resume_cmd.help = "Resume peer NAME (its retry backoff is cleared too)."


# --- the conflict queue ------------------------------------------------------------------


async def _every(client: Client, command: str, status: str) -> list[dict]:
    """Every row of a listing the daemon pages by id (the conflict queue, the quarantine)."""
    rows: list[dict] = []
    args: dict = {"status": status, "limit": PAGE}
    while True:
        page = await client.call(command, args)
        rows.extend(page)
        if len(page) < PAGE:
            return rows
        args["after_id"] = page[-1]["id"]


async def _queue(client: Client, status: str) -> list[dict]:
    return await _every(client, "sync.conflict.list", status)


async def _summary(client: Client, conflict_id: uuid.UUID) -> dict:
    """One conflict as the queue shows it: which fields differ, without opening any value
    (`sync.conflict.get` opens them, and audits that as a read of the row for phi:read). The
    queue pages by id, so the page that starts just below this id begins with it."""
    args: dict = {"status": "all", "limit": 1}
    if conflict_id.int:
        args["after_id"] = str(uuid.UUID(int=conflict_id.int - 1))
    page = await client.call("sync.conflict.list", args)
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
@remote_options()
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
@click.option("--field", "field", metavar="NAME",
              help="Show this one field instead (any field the conflict carries, differing or not).")
@remote_options()
def show_cmd(state: CliState, conflict_id: uuid.UUID, field: str | None, socket_path, as_json: bool) -> None:
    """One conflict side by side: base, local and remote for the fields that differ, and
    the names of the others (PHI masked without phi:read; with it, the daemon audits the
    view as a read of the differing fields). --field NAME shows one other field, audited
    as a read of that field alone."""
    if field is not None:
        args = {"conflict_id": str(conflict_id), "field": field}
        one = run_remote(state, socket_path, lambda c: c.call("sync.conflict.field.get", args))
        emit(as_json, one, _field_human)
        return
    data = run_remote(state, socket_path, lambda c: c.call("sync.conflict.get", {"conflict_id": str(conflict_id)}))
    emit(as_json, data, _show_human)


def _header() -> None:
    click.echo(f"  {'field':<22} {'base':<22} {'local':<22} {'remote':<22} chosen")


def _field_row(f: dict) -> None:
    cells = [(f[v] if f[v] is not None else ("(absent)" if v in f["absent"] else "(empty)"))[:22]
             for v in ("base", "local", "remote")]
    mark = "≠" if f["differs"] else " "
    click.echo(f"{mark} {f['name']:<22} {cells[0]:<22} {cells[1]:<22} {cells[2]:<22} {f['chosen'] or ''}")


def _show_human(d: dict) -> None:
    click.echo(_line(d))
    if d["masked"]:
        click.echo("  PHI masked: you lack phi:read; resolving needs only a choice per field")
    if not d["has_base"]:
        click.echo("  no base version: no common ancestor is known, choose local or remote")
    _header()
    for f in d["field_values"]:
        _field_row(f)
    others = d.get("other_fields") or []
    if others:
        click.echo(f"  the same on both sides, not shown: {', '.join(o['name'] for o in others)}")
        click.echo(f"  show one: strongroom sync show {d['id']} --field NAME")


def _field_human(d: dict) -> None:
    click.echo(f"conflict {d['id']}  {d['table']} row {d['row_id']}  field {d['field']['name']}"
               + ("  (PHI masked: you lack phi:read)" if d["masked"] else ""))
    _header()
    _field_row(d["field"])


def _field_choices(specs: tuple[str, ...]) -> dict[str, str]:
    choices: dict[str, str] = {}
    for spec in specs:
        name, sep, choice = spec.partition("=")
        name, choice = name.strip(), choice.strip()
        if not sep or not name:
            raise click.BadParameter("each value must be NAME=local|remote|base", param_hint="--field")
        shown = name if re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name) else "(a field name that is not one)"
        if choice not in CHOICES:
            raise click.BadParameter(f"field {shown}: the choice must be one of {', '.join(CHOICES)}",
                                     param_hint="--field")
        if choices.get(name, choice) != choice:
            raise click.BadParameter(f"field {shown} is given twice, as {choices[name]} and {choice}",
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
@remote_options()
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
    result = run_remote(state, socket_path, lambda c: c.call("sync.conflict.resolve", args))
    emit(as_json, result, lambda r: click.echo(
        f"resolved conflict {r['id']} ({r['table']} row {r['row_id']}) keeping {_described(choices)}; "
        f"by {r['resolved_by']}"))


def _described(choices: dict[str, str]) -> str:
    return ", ".join(f"{name} ← {choice}" for name, choice in choices.items())
