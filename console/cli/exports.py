"""`strongroom export` (start one) and `strongroom exports list|show|tables`.

Exports are jobs: they go through the daemon (recorded, audited, rate-limited, with the
requester's own permissions deciding what is masked). The ZIP password is read from a
file or typed at a prompt, never taken from the command line (where `ps` and shell
history would keep it), and the daemon seals it before the run is recorded.
"""
from __future__ import annotations

import sys
import uuid

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.jobs import dry_run as dry_run_job
from strongroom.console.cli.jobs import start_job, wait_for_run
from strongroom.console.cli.transport import run_remote
from strongroom.core.errors import ValidationError

FORMATS = ("csv", "ndjson", "json", "xml", "pdf")
RANGES = ("last_30_days", "last_90_days", "this_month", "last_quarter")   # core.export.spec.RANGES


def parse_fields(values: tuple[str, ...], tables: tuple[str, ...]) -> dict[str, list[str]]:
    """`--fields clients=id,ssn` per table; a bare `--fields id,ssn` with exactly one table."""
    out: dict[str, list[str]] = {}
    for value in values:
        table, sep, names = value.partition("=")
        if not sep:
            if len(tables) != 1:
                raise ValidationError("--fields: say which table, as TABLE=field,field (more than one --table)")
            table, names = tables[0], value
        out.setdefault(table.strip(), []).extend(n.strip() for n in names.split(",") if n.strip())
    return out


def read_password(password_file) -> str:
    if password_file is not None:
        return password_file.read().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ValidationError("--encrypt needs --password-file (no terminal to ask on)")
    return click.prompt("ZIP password", hide_input=True, confirmation_prompt=True, err=True)


def request_of(tables, fields, fmt, since, until, practice_id, client_id, masking, encrypt, password_file,
               configuration, more_filters: dict | None = None) -> dict:
    if configuration:
        args: dict = {"configuration": configuration}
    else:
        if not tables:
            raise ValidationError("export: name at least one --table (or --configuration NAME)")
        if not fmt:
            raise ValidationError("export: choose a --format (" + ", ".join(FORMATS) + ")")
        filters = {k: str(v) for k, v in (("since", since), ("until", until), ("practice_id", practice_id),
                                          ("client_id", client_id), *(more_filters or {}).items()) if v}
        args = {"tables": list(tables), "fields": parse_fields(fields, tables), "format": fmt,
                "filters": filters, "masking": masking, "encrypt": encrypt}
    if encrypt or password_file is not None:
        args["password"] = read_password(password_file)
    return args


def _print_result(run: dict) -> None:
    click.echo(f"export run {run['id']} {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    result = run.get("result") or {}
    if result.get("location"):
        rows = ", ".join(f"{t} {n}" for t, n in (result.get("rows") or {}).items())
        click.echo(f"  {result['row_count']} rows ({rows}), {result['format']}"
                   f"{', AES-256 ZIP' if result.get('encrypted') else ''}, {result['masking_profile']}")
        if result.get("client_files_content"):
            content = result["client_files_content"]
            click.echo(f"  client files' content: {content['files']} files, {content['bytes']} bytes"
                       + (f" ({content['left_out_quarantined']} quarantined left out)"
                          if content.get("left_out_quarantined") else ""))
        click.echo(f"  {result['location']}")
        click.echo(f"  manifest sha256 {result['sha256']}")


@click.command(name="export", short_help="Export tables through the daemon.")
@click.option("--table", "tables", multiple=True, metavar="TABLE", help="A table to export (repeat for more).")
@click.option("--fields", multiple=True, metavar="[TABLE=]F1,F2", help="Fields to export (default: all).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Output format.")
@click.option("--since", metavar="DATE", help="From this ISO date or datetime (sessions: starts_at; else created_at).")
@click.option("--until", metavar="DATE", help="Up to this ISO date (the whole day) or datetime.")
@click.option("--range", "period", type=click.Choice(RANGES),
              help="A relative period, whole days in the practice's time zone, fixed when submitted.")
@click.option("--client-status", metavar="S1,S2", help="Clients with these statuses (ACTIVE, INACTIVE, VIP).")
@click.option("--session-status", metavar="S1,S2",
              help="Sessions with these statuses (SCHEDULED, CONFIRMED, CANCELLED, COMPLETED).")
@click.option("--payment-status", metavar="S1,S2",
              help="Sessions with these payment statuses (PENDING, PAID, FAILED, REFUNDED).")
@click.option("--practice", "practice_id", type=click.UUID, help="Only this practice.")
@click.option("--client", "client_id", type=click.UUID, help="Only this client.")
@click.option("--masking", type=click.Choice(["masked", "full"]), default="masked", show_default=True,
              help="full needs phi:read.")
@click.option("--bom", is_flag=True, help="CSV: start each file with a UTF-8 byte order mark (for Excel).")
@click.option("--encrypt", is_flag=True, help="Put the files in an AES-256 ZIP (asks for a password).")
@click.option("--with-files", "with_files", is_flag=True,
              help="With --table client_files --encrypt --masking full: the files' content in the ZIP too.")
@click.option("--password-file", type=click.File("r"), help="Read the ZIP password from this file.")
@click.option("--configuration", "-c", help="Run a saved export configuration by name instead.")
@click.option("--save-as", metavar="NAME", help="Save this request as a named configuration (does not run it).")
@click.option("--retention-days", type=int, metavar="DAYS",
              help="With --save-as: keep its exports' files this many days (1-3650; default [export] retention_days).")
@click.option("--schedule", metavar="CRON",
              help='With --save-as: run it on this crontab(5) schedule (UTC), e.g. "0 6 * * 1".')
@click.option("--password-credential", metavar="NAME",
              help="With --save-as --encrypt --schedule: the systemd credential holding the ZIP password.")
@click.option("--wait", is_flag=True, help="Show progress; exit non-zero unless the export succeeds.")
@remote_options()
def export_cmd(state: CliState, tables, fields, fmt, since, until, period, client_status, session_status,
               payment_status, practice_id, client_id, masking, bom: bool, encrypt, with_files: bool,
               password_file, configuration,
               save_as, retention_days, schedule, password_credential, wait: bool, socket_path, as_json: bool) -> None:
    """Export tables through the daemon (e.g. --table clients --format csv --since 2025-01-01)."""
    more_filters = {"range": period, "client_status": client_status, "session_status": session_status,
                    "payment_status": payment_status}
    kept = {"retention_days": retention_days, "schedule": schedule, "password_credential": password_credential}
    kept = {k: v for k, v in kept.items() if v is not None}
    if kept and not save_as:
        raise ValidationError("--retention-days, --schedule and --password-credential belong to a saved "
                              "configuration: use them with --save-as")
    if save_as:
        if bom or with_files:
            raise ValidationError("--bom and --with-files are not kept in a saved configuration: give them when "
                                  "running one (-c NAME --bom)")
        args = request_of(tables, fields, fmt, since, until, practice_id, client_id, masking, False, None, None,
                          more_filters)
        saved = run_remote(state, socket_path, lambda c: c.call("export.configuration.create", {
            "name": save_as, **args, "encrypt": encrypt, **kept}))
        emit(as_json, saved, lambda s: click.echo(f"saved export configuration {s['name']}: run it with "
                                                  f"strongroom export -c {s['name']}"))
        return
    args = request_of(tables, fields, fmt, since, until, practice_id, client_id, masking, encrypt,
                      password_file, configuration, more_filters)
    if bom:
        args["bom"] = True
    if with_files:
        args["files"] = True
    if not wait:
        run = run_remote(state, socket_path, lambda c: c.call("export.run", args))
        emit(as_json, run, lambda r: click.echo(f"started export run {r['id']}"))
        return
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json, cmd="export.run"))
    emit(as_json, final, _print_result)
    if final["status"] != "succeeded":
        sys.exit(1)


@click.group(name="exports")
def group() -> None:
    """Export history and what may be exported."""


def _print_history(page: dict) -> None:
    for e in page["items"]:
        click.echo(f"{e['id']}  {str(e['created_at'])[:19]}  {e['status']:<9} {e['format']:<6} "
                   f"{e['row_count'] if e['row_count'] is not None else '-':>7}  {e['requested_by']}"
                   + (f"  {e['error']}" if e.get("error") else ""))
    click.echo(f"{len(page['items'])} of {page['total']} (offset {page['offset']})")


@group.command(name="list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--offset", default=0, type=click.IntRange(0))
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "interrupted", "expired"]))
@remote_options()
def list_cmd(state: CliState, limit: int, offset: int, status, socket_path, as_json: bool) -> None:
    """Exports, newest first."""
    args = {"limit": limit, "offset": offset, **({"status": status} if status else {})}
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("export.list", args)), _print_history)


def _print_export(e: dict) -> None:
    click.echo(f"export {e['id']}: {e['status']}, {e['format']}, requested by {e['requested_by']}")
    click.echo(f"  created {e['created_at']}, finished {e['finished_at'] or '-'}, rows {e['row_count']}")
    if e.get("error"):
        click.echo(f"  error: {e['error']}")
    if e.get("location"):
        state = {True: "matches", False: "MISSING OR CHANGED", None: "-"}[e.get("manifest_ok")]
        click.echo(f"  {e['location']} (manifest {state})")
    for f in (e.get("manifest") or {}).get("files", []):
        click.echo(f"    {f['name']:<24} {f['bytes']:>10} bytes  sha256 {f['sha256']}")


@group.command(name="show")
@click.argument("export_id", type=click.UUID)
@remote_options()
def show_cmd(state: CliState, export_id: uuid.UUID, socket_path, as_json: bool) -> None:
    """One export with its manifest."""
    data = run_remote(state, socket_path, lambda c: c.call("export.show", {"export_id": str(export_id)}))
    emit(as_json, data, _print_export)


def _print_tables(data: dict) -> None:
    for t in data["tables"]:
        click.echo(f"{t['table']} (dates: {t['date_field']})")
        click.echo("  " + ", ".join(f + ("*" if f in t["phi"] else "") for f in t["fields"]))
    click.echo("* PHI: masked unless --masking full (needs phi:read)")
    click.echo("formats: " + ", ".join(data["formats"]))
    if data["configurations"]:
        click.echo("saved: " + ", ".join(c["name"] for c in data["configurations"]))


@group.command(name="tables")
@remote_options()
def tables_cmd(state: CliState, socket_path, as_json: bool) -> None:
    """The tables and fields one may export."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("export.table.list")), _print_tables)


def _print_configurations(data: dict) -> None:
    for c in data["items"]:
        when = f"{c['schedule']} (next {str(c['next_export_at'])[:16]} UTC)" if c["schedule"] else "by hand"
        secret = (f"ZIP password from credential {c['password_credential']}" if c["password_credential"]
                  else "ZIP password asked at each run" if c["encryption_enabled"] else "not encrypted")
        days = c["retention_days"] or f"{data['retention_days']} (default)"
        # A scheduled run exports as whoever saved the configuration, with their rights then.
        owner = c.get("created_by") or "the system"
        click.echo(f"{c['name']:<20} {c['format']:<6} {c['masking_profile']:<7} {when}; {secret}; "
                   f"kept {days} days; saved by {owner}")
    if not data["items"]:
        click.echo("no saved export configurations")


@group.command(name="configurations")
@remote_options()
def configurations_cmd(state: CliState, socket_path, as_json: bool) -> None:
    """Saved export configurations: schedule, next run, password source, retention."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("export.configuration.list")),
         _print_configurations)


@group.command(name="configure")
@click.argument("name")
@click.option("--schedule", metavar="CRON", help='crontab(5) expression (UTC); "" runs it by hand only.')
@click.option("--password-credential", metavar="NAME", help='systemd credential holding its ZIP password.')
@click.option("--retention-days", metavar="DAYS", help='Days its exports are kept (1-3650); "" the default.')
@remote_options()
def configure_cmd(state: CliState, name: str, schedule, password_credential, retention_days, socket_path,
                  as_json: bool) -> None:
    """Change a saved configuration's schedule, password credential or retention."""
    changes = {k: v for k, v in (("schedule", schedule), ("password_credential", password_credential),
                                 ("retention_days", retention_days)) if v is not None}
    if not changes:
        raise ValidationError("exports configure: give --schedule, --password-credential or --retention-days")
    data = run_remote(state, socket_path, lambda c: c.call("export.configuration.set", {"name": name, **changes}))
    emit(as_json, data, lambda c: click.echo(
        f"export configuration {c['name']}: " + (f"runs {c['schedule']}, next {str(c['next_export_at'])[:16]} UTC"
                                                  if c["schedule"] else "runs by hand")))


def _print_expiry(result: dict) -> None:
    verb = "would delete" if result["dry_run"] else "deleted"
    count = result.get("would_delete", 0) if result["dry_run"] else result["deleted"]
    click.echo(f"{result['checked']} finished exports, {result['due']} past their retention: {verb} {count}, "
               f"kept under a legal hold {result['held']}, failed {result['failed']}")
    for e in result["exports"]:
        click.echo(f"  {e['export_id']}  {e['outcome']:<12} (retention {e['retention_days']} days)")


@group.command(name="expire")
@click.option("--dry-run", is_flag=True, help="List the exports past their retention; delete nothing.")
@click.option("--wait", is_flag=True, help="Follow the run; exit non-zero unless it succeeds.")
@remote_options()
def expire_cmd(state: CliState, dry_run: bool, wait: bool, socket_path, as_json: bool) -> None:
    """Delete the files of exports past their retention (the export_retention job)."""
    if dry_run:
        dry_run_job(state, socket_path, "export_retention", {}, as_json=as_json, human=_print_expiry)
        return
    start_job(state, socket_path, "export_retention", {}, wait=wait, as_json=as_json)


COMMANDS = (export_cmd, group)
