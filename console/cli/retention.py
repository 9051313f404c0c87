"""`strongroom retention|hold|erasure ...`: records retention through the daemon.

`retention policies` lists (or with --table sets) the per-table policies; `retention
plan` shows what is due to be archived or deleted and what legal holds block; `retention
run` starts the retention job. `hold` places and releases legal holds. `erasure`
requests a client's erasure and lets a different person approve it, which destroys the
client's keys at once, or reject it. Output names ids, dates and counts, never PHI.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from collections.abc import Callable

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.jobs import dry_run as dry_run_job
from strongroom.console.cli.jobs import start_job
from strongroom.console.cli.transport import run_remote
from strongroom.core.errors import ValidationError


@click.group(name="retention")
def group() -> None:
    """Records retention: per-table policies, the plan of upcoming actions, the job."""


def _days(value) -> str:
    return "-" if value is None else f"{value}d"


@group.command(name="policies")
@click.option("--table", "table_name", help="Set this table's policy (clients, therapy_sessions, client_files).")
@click.option("--archive-after", "archive_after_days", type=int, help="Days after which rows are archived.")
@click.option("--delete-after", "delete_after_days", type=int, help="Days after which archived rows are deleted.")
@click.option("--inactive", is_flag=True, help="Keep the policy but stop applying it.")
@remote_options()
def policies_cmd(state: CliState, table_name: str | None, archive_after_days: int | None,
                 delete_after_days: int | None, inactive: bool, socket_path, as_json: bool) -> None:
    """List the policies; with --table, create or replace that table's policy."""
    if table_name is None:
        if archive_after_days is not None or delete_after_days is not None or inactive:
            raise ValidationError("--archive-after, --delete-after and --inactive need --table")
        rows = run_remote(state, socket_path, lambda c: c.call("retention.policy.list"))

        def human(items: list[dict]) -> None:
            if not items:
                click.echo("no retention policies")
            for p in items:
                click.echo(f"{p['table_name']:<18} archive after {_days(p['archive_after_days']):>7}  "
                           f"delete after {_days(p['delete_after_days']):>7}  "
                           f"{'active' if p['active'] else 'inactive'}  updated {str(p['updated_at'])[:19]}")
        emit(as_json, rows, human)
        return
    args = {"table_name": table_name, "archive_after_days": archive_after_days,
            "delete_after_days": delete_after_days, "active": not inactive}
    policy = run_remote(state, socket_path, lambda c: c.call("retention.policy.set", args))
    emit(as_json, policy, lambda p: click.echo(
        f"policy for {p['table_name']}: archive after {_days(p['archive_after_days'])}, "
        f"delete after {_days(p['delete_after_days'])}, {'active' if p['active'] else 'inactive'}"))


@group.command(name="plan")
@click.option("--days", "horizon_days", type=click.IntRange(0, 3650), default=30, show_default=True,
              help="Also show what falls due within this many days.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@remote_options()
def plan_cmd(state: CliState, horizon_days: int, limit: int, socket_path, as_json: bool) -> None:
    """What retention archives and deletes now and soon, and what legal holds block."""
    result = run_remote(state, socket_path, lambda c: c.call("retention.plan.get", {"horizon_days": horizon_days,
                                                                                "limit": limit}))
    emit(as_json, result, _print_plan)


def _print_plan(p: dict) -> None:
    if not p["summary"]:
        click.echo("no active retention policies: nothing is archived or deleted")
        return
    click.echo(f"as of {str(p['now'])[:19]}, looking {p['horizon_days']} days ahead; "
               f"{p['holds_in_force']} legal hold(s) in force")
    for s in p["summary"]:
        click.echo(f"  {s['action']:<7} {s['table']:<18} due now {s['due_now']:>6}  "
                   f"upcoming {s['upcoming']:>6}  blocked by holds {s['blocked']:>6}")
    for a in p["actions"]:
        held = f"  BLOCKED by hold {a['blocked_by']}" if a["blocked_by"] else ""
        click.echo(f"{str(a['due_at'])[:10]}  {a['action']:<7} {a['table']:<18} {a['row_id']}  "
                   f"client {a['client_id']}  ({a['reason']}){held}")
    if p["truncated"]:
        click.echo(f"(first {len(p['actions'])} by due date; `retention plan --limit` shows more)")


def _print_dry_run(p: dict) -> None:
    click.echo(f"dry run of retention run {p['run_id']}: nothing changed; what it would do now:")
    _print_plan(p)


@group.command(name="run")
@click.option("--dry-run", is_flag=True,
              help="Print what the run would archive and delete now, and why, and what holds block; change "
                   "nothing. Waits for the run.")
@click.option("--wait", is_flag=True, help="Follow the run; exit non-zero unless it succeeds.")
@remote_options()
def run_cmd(state: CliState, dry_run: bool, wait: bool, socket_path, as_json: bool) -> None:
    """Run the retention job now (needs job:retention:run)."""
    if dry_run:
        dry_run_job(state, socket_path, "retention", {}, as_json=as_json, human=_print_dry_run)
        return
    start_job(state, socket_path, "retention", {}, wait=wait, as_json=as_json)


def _listing(state: CliState, socket_path, as_json: bool, cmd: str, args: dict, line: Callable[[dict], str],
             empty: str) -> None:
    """A list command: the daemon's rows as JSON, or one line each (`empty` for none)."""
    rows = run_remote(state, socket_path, lambda c: c.call(cmd, args))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo(empty)
        for item in items:
            click.echo(line(item))
    emit(as_json, rows, human)


# --- legal holds -----------------------------------------------------------------------

@click.group(name="hold")
def hold_group() -> None:
    """Legal holds: while one is in force, nothing of its client or practice is archived,
    deleted or erased."""


def _hold_line(h: dict) -> str:
    scope = f"client {h['client_id']}" if h["client_id"] else f"practice {h['practice_id']}"
    line = f"{h['id']}  {scope}  by {h['created_by']} at {str(h['created_at'])[:19]}  reason: {h['reason']}"
    if h["released_at"]:
        line += f"  released by {h['released_by']} at {str(h['released_at'])[:19]}"
    return line


@hold_group.command(name="list")
@click.option("--all", "include_released", is_flag=True, help="Also released holds.")
@remote_options()
def hold_list_cmd(state: CliState, include_released: bool, socket_path, as_json: bool) -> None:
    """Legal holds, newest first (in force only, unless --all)."""
    _listing(state, socket_path, as_json, "hold.list", {"include_released": include_released}, _hold_line,
             "no legal holds" if include_released else "no legal holds in force")


@hold_group.command(name="place")
@click.option("--client", "client_id", type=click.UUID, help="Hold one client (else the whole practice).")
@click.option("--practice", "practice_id", type=click.UUID, help="The practice (default: the only one).")
@click.option("--reason", required=True, help="A matter or case reference; no clinical details.")
@remote_options()
def hold_place_cmd(state: CliState, client_id: uuid.UUID | None, practice_id: uuid.UUID | None, reason: str,
                   socket_path, as_json: bool) -> None:
    """Place a legal hold on one client, or on a whole practice."""
    args = {"reason": reason, "client_id": str(client_id) if client_id else None,
            "practice_id": str(practice_id) if practice_id else None}
    hold = run_remote(state, socket_path, lambda c: c.call("hold.place", args))
    emit(as_json, hold, lambda h: click.echo("placed " + _hold_line(h)))


@hold_group.command(name="release")
@click.argument("hold_id", type=click.UUID)
@remote_options()
def hold_release_cmd(state: CliState, hold_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """Release a legal hold; retention and erasure may then proceed for what it covered."""
    hold = run_remote(state, socket_path, lambda c: c.call("hold.release", {"hold_id": str(hold_id)}))
    emit(as_json, hold, lambda h: click.echo("released " + _hold_line(h)))


# --- erasure ------------------------------------------------------------------------------

@click.group(name="erasure")
def erasure_group() -> None:
    """Erasure requests: filed by one person, approved (and carried out) by another."""


def _request_line(r: dict) -> str:
    line = (f"{r['id']}  {r['status']:<8} client {r['client_id']}  by {r['requested_by']}  "
            f"filed {str(r['created_at'])[:19]}  expires {str(r['expires_at'])[:19]}")
    if r.get("held_by"):
        line += f"  BLOCKED by hold {r['held_by']}"
    if r.get("approved_by"):
        line += f"  approved by {r['approved_by']}"
    if r.get("rejected_by"):
        line += f"  rejected by {r['rejected_by']}"
    return line


@erasure_group.command(name="list")
@click.option("--all", "include_closed", is_flag=True, help="Also executed, rejected and expired requests.")
@remote_options()
def erasure_list_cmd(state: CliState, include_closed: bool, socket_path, as_json: bool) -> None:
    """Erasure requests, newest first (pending ones unless --all)."""
    _listing(state, socket_path, as_json, "erasure.list", {"include_closed": include_closed}, _request_line,
             "no erasure requests" if include_closed else "no pending erasure requests")


@erasure_group.command(name="request")
@click.argument("client_id", type=click.UUID)
@click.option("--reason", required=True, help="E.g. the reference of the client's written request.")
@remote_options()
def erasure_request_cmd(state: CliState, client_id: uuid.UUID, reason: str, socket_path, as_json: bool) -> None:
    """File a request to erase a client; a different person must approve it."""
    row = run_remote(state, socket_path, lambda c: c.call("erasure.request", {"client_id": str(client_id),
                                                                              "reason": reason}))
    emit(as_json, row, lambda r: click.echo(f"filed erasure request {r['id']} for client {r['client_id']}; "
                                            f"a different person must approve it by {str(r['expires_at'])[:19]}"))


@erasure_group.command(name="approve")
@click.argument("request_id", type=click.UUID)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@remote_options()
def erasure_approve_cmd(state: CliState, request_id: uuid.UUID, yes: bool, socket_path, as_json: bool) -> None:
    """Approve an erasure request: the client's keys are destroyed now, irreversibly."""
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError("approving an erasure needs confirmation: run it in a terminal or add --yes")
        click.confirm(f"approve erasure request {request_id}: the client's data keys are destroyed now, and its "
                      "records become unreadable everywhere, old backups included. This cannot be undone. "
                      "Continue?", abort=True)
    row = run_remote(state, socket_path, lambda c: c.call("erasure.approve", {"request_id": str(request_id)}))

    def show(r: dict) -> None:
        click.echo(f"erased client {r['client_id']}: {r['erased']['keys_destroyed']} key(s) destroyed, "
                   f"{r['erased']['therapy_sessions']} session(s) and {r['erased']['client_files']} file(s) "
                   "tombstoned")
        cert = r.get("certificate") or {}
        pending = [c["configuration"] for c in cert.get("repositories", ()) if c["status"] == "pending"]
        click.echo(f"backup repositories: {'every one updated' if not pending else 'NOT reached: ' + ', '.join(pending)}"
                   f"; certificate: strongroom erasure certificate {r['id']}")
    emit(as_json, row, show)


@erasure_group.command(name="certificate")
@click.argument("request_id", type=click.UUID)
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False), help="Also write it as a PDF file.")
@click.option("--reissue", is_flag=True,
              help="Retry the backup repositories not reached yet, then issue a new certificate.")
@remote_options()
def erasure_certificate_cmd(state: CliState, request_id: uuid.UUID, pdf_path: str | None, reissue: bool,
                            socket_path, as_json: bool) -> None:
    """The signed certificate of an executed erasure: as text, JSON (--json) or PDF (--pdf).

    Check one handed over with `strongroom audit verify --certificate FILE` (JSON)."""
    from strongroom.core.fsutil import write_atomic
    from strongroom.core.retention import certificate

    cert = run_remote(state, socket_path, lambda c: c.call("erasure.certificate.get", {
        "request_id": str(request_id), "reissue": reissue}))
    if pdf_path:
        write_atomic(Path(pdf_path), certificate.as_pdf(cert), mode=0o600)
    emit(as_json, cert, lambda c: click.echo(certificate.as_text(c), nl=False))


@erasure_group.command(name="reject")
@click.argument("request_id", type=click.UUID)
@remote_options()
def erasure_reject_cmd(state: CliState, request_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """Reject a pending erasure request (not one's own)."""
    row = run_remote(state, socket_path, lambda c: c.call("erasure.reject", {"request_id": str(request_id)}))
    emit(as_json, row, lambda r: click.echo(f"rejected erasure request {r['id']}"))


GROUPS = (group, hold_group, erasure_group)
