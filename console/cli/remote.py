"""Commands that talk to a running strongroomd over its control socket.

The socket is found from the data directory's config (or --socket / --connect); the
token is the one `strongroom login` stored (mode 0600), or, for the service account
and root on the daemon's machine, the daemon's local operator token.
"""
from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, json_option, pass_state, socket_option
from strongroom.core.errors import AuthError, StrongroomError

if TYPE_CHECKING:  # ZeroMQ and the config models load only when a command talks to the daemon
    from strongroom.console.client import Client, ClientError

_ERROR_EXIT = {"bad_request": 2, "not_found": 3, "conflict": 4, "unauthenticated": 7,
               "rate_limited": 7, "forbidden": 8, "not_implemented": 10, "unavailable": 12}


class RemoteError(StrongroomError):
    """An error reply from the daemon, shown as the daemon worded it."""

    def __init__(self, err: ClientError) -> None:
        super().__init__(f"{err.message} [{err.code}]")
        self.exit_code = _ERROR_EXIT.get(err.code, 1)


def _endpoints(state: CliState, socket_path: str | None) -> tuple[str, str, Path | None]:
    from strongroom.core.endpoints import control_endpoint, events_endpoint, runtime_dir_for

    if socket_path:
        path = Path(socket_path)
        return f"ipc://{path}", f"ipc://{path.with_name('events.sock')}", path.parent
    runtime = runtime_dir_for(state.settings)
    return control_endpoint(runtime), events_endpoint(runtime), runtime


class DaemonNotRunning(StrongroomError):
    """No strongroomd listens where the CLI looks for it."""

    exit_code = 12          # as the protocol's `unavailable`


START_HINT = "start it with `systemctl start strongroomd`, or `strongroomd --data-dir DIR` in the foreground"


def require_listening(endpoint: str, where: str) -> None:
    """Answer at once when no daemon listens on an ipc endpoint: the socket is missing,
    or a stopped daemon left it behind (kill -9) and connecting is refused. Without this
    a request waits out the whole timeout for a reply nobody will send. `where` names the
    place for the message (the configured path, never a path the user typed)."""
    if not endpoint.startswith("ipc://"):
        return                                  # TCP: the request's own timeout answers
    path = endpoint[len("ipc://"):]
    if not os.path.exists(path):
        raise DaemonNotRunning(f"strongroomd is not running (no control socket {where}); {START_HINT}")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        raise DaemonNotRunning(f"strongroomd is not running (the control socket {where} is left from a "
                               f"stopped daemon); {START_HINT}") from None
    except PermissionError:
        raise AuthError(f"no permission to use the control socket {where} (mode 0600: run as the "
                        "daemon's user, or connect over CURVE TCP)") from None
    except OSError:
        return                                  # let the request itself report what is wrong
    finally:
        probe.close()


async def answers(client: Client, where: str) -> None:
    """A daemon that accepts connections but does not answer (stopped with SIGSTOP,
    wedged) is reported within STRONGROOM_CONNECT_TIMEOUT seconds (default 3), not after
    the request's own timeout: `help` is public and answered on the daemon's event loop."""
    from strongroom.console.client import ClientError

    probe = float(os.environ.get("STRONGROOM_CONNECT_TIMEOUT", "3"))
    try:
        await client.call("help", timeout=probe)
    except ClientError as err:
        if err.code == "unavailable":
            raise DaemonNotRunning(f"strongroomd {where} does not answer within {probe:g} s (stopped, or "
                                   "overloaded?); STRONGROOM_CONNECT_TIMEOUT sets the wait") from None


def run_remote(state: CliState, socket_path: str | None, fn: Callable[[Client], Awaitable[Any]],
               *, need_token: bool = True, announce: bool = True) -> Any:
    """Run `fn` with a client of the daemon, presenting the stored token. A command that
    acts with a session another command saved (not the obvious local:<uid>) says so on
    stderr first, unless `announce` is False (login, logout, whoami say it themselves)."""
    from strongroom.console.client import SAVED_SESSION, Client, ClientError, find_token

    endpoint, events, runtime = _endpoints(state, socket_path)
    where = "at the --socket path" if socket_path else f"at {endpoint.split('://', 1)[-1]}"
    require_listening(endpoint, where)
    found = find_token(endpoint, runtime)
    token = found.value if found else None
    if need_token and token is None:
        raise AuthError("not logged in: run `strongroom login` (or use the daemon's account)")

    async def go() -> Any:
        client = Client(endpoint, events_endpoint=events, token=token,
                        timeout=float(os.environ.get("STRONGROOM_TIMEOUT", "30")))
        try:
            await answers(client, where)
            if announce and found is not None and found.source == SAVED_SESSION:
                await _announce_identity(client)
            return await fn(client)
        finally:
            client.close()
    try:
        return asyncio.run(go())
    except ClientError as err:
        raise RemoteError(err) from None


async def _announce_identity(client: Client) -> None:
    """A saved session acts for whoever logged in, maybe in another command long ago:
    never silently (root's backups were once audited as the console's demo admin)."""
    from strongroom.console.client import ClientError

    try:
        me = await client.call("whoami")
    except ClientError:
        return                  # an ended session: the command itself is refused and says why
    click.echo(f"strongroom: acting as {me['actor']}, the session `strongroom login` saved "
               "(`strongroom logout` ends it)", err=True)


def _client_info() -> dict:
    from strongroom.core.version import VERSION

    return {"host": socket.gethostname(), "ssh_connection": os.environ.get("SSH_CONNECTION"),
            "name": "strongroom-cli", "version": VERSION}


# --- login / logout ---------------------------------------------------------------------

@click.command(name="login")
@click.option("--username", "-u", default=lambda: os.environ.get("USER"), show_default="$USER")
@click.option("--password-file", type=click.File("r"), help="Read the password from this file.")
@click.option("--totp", help="The current 6-digit code (prompted when omitted and needed).")
@socket_option
@pass_state
def login_cmd(state: CliState, username: str, password_file, totp: str | None, socket_path: str | None) -> None:
    """Log in to the daemon; keeps the session token in a 0600 file."""
    password = password_file.read().rstrip("\n") if password_file else getpass.getpass("Password: ")
    if totp is None and sys.stdin.isatty():
        totp = click.prompt("TOTP code (empty if none)", default="", show_default=False) or None
    from strongroom.console.client import save_token

    endpoint, _, _ = _endpoints(state, socket_path)

    async def go(client: Client) -> dict:
        return await client.call("auth.login", {"username": username, "password": password,
                                                "totp": totp, "client": _client_info()})
    result = run_remote(state, socket_path, go, need_token=False, announce=False)
    if result.get("enrolment_required"):
        result = _enrol(state, socket_path, result)
    path = save_token(endpoint, result["token"])
    click.echo(f"logged in as {username}; session {result['session_id']} (token in {path})")


def _enrol(state: CliState, socket_path: str | None, offer: dict) -> dict:
    """The account must enrol a second factor before it may log in: show the new secret
    (on the terminal only) and confirm it with a code from the authenticator."""
    if not sys.stdin.isatty():
        raise AuthError(f"{offer['message']}; run `strongroom login` in a terminal, or log in from the console")
    enrolment = offer["enrolment"]
    click.echo(f"{offer['message']}.\nScan this QR code into an authenticator app, or type the secret:\n")
    click.echo(enrolment["qr_text"])
    click.echo(f"secret: {enrolment['secret']}\nURI:    {enrolment['uri']}\n")
    code = click.prompt("Code from the authenticator", prompt_suffix=": ").strip()
    args = {"enrolment_token": enrolment["token"], "totp": code, "client": _client_info()}
    return run_remote(state, socket_path, lambda c: c.call("auth.enrol", args), need_token=False, announce=False)


@click.command(name="logout")
@socket_option
@pass_state
def logout_cmd(state: CliState, socket_path: str | None) -> None:
    """End this session and forget its token."""
    from strongroom.console.client import forget_token

    endpoint, _, _ = _endpoints(state, socket_path)
    try:
        run_remote(state, socket_path, lambda c: c.call("auth.logout"), announce=False)
    finally:
        forget_token(endpoint)
    click.echo("logged out")


@click.command(name="whoami")
@socket_option
@json_option
@pass_state
def whoami_cmd(state: CliState, socket_path: str | None, as_json: bool) -> None:
    """Which identity commands act as now, and where it comes from."""
    from strongroom.console.client import LOCAL_OPERATOR, find_token

    endpoint, _, runtime = _endpoints(state, socket_path)
    found = find_token(endpoint, runtime)
    if found is None:
        raise AuthError("nobody: no saved session and no readable local operator token; run `strongroom login`")
    me = run_remote(state, socket_path, lambda c: c.call("whoami"), announce=False)
    data = {**me, "source": found.source, "token_file": str(found.path)}

    def human(d: dict) -> None:
        click.echo(d["actor"])
        if d["source"] == LOCAL_OPERATOR:
            click.echo("  the daemon's local operator token: the daemon takes the uid from the operating "
                       "system, not from the token; it may not file or approve four-eyes requests")
        else:
            click.echo(f"  a session `strongroom login` saved in {d['token_file']}; every command acts as "
                       "it until `strongroom logout`")
        click.echo(f"  {len(d['permissions'])} permission(s); `--json` lists them")
    emit(as_json, data, human)


# --- status -----------------------------------------------------------------------------

@click.command(name="status")
@socket_option
@json_option
@pass_state
def status_cmd(state: CliState, socket_path: str | None, as_json: bool) -> None:
    """What the daemon is doing: role, uptime, running jobs, next runs."""
    data = run_remote(state, socket_path, lambda c: c.call("status"))

    def human(d: dict) -> None:
        click.echo(f"strongroomd {d['version']} on {d['host']} (pid {d['pid']}): {d['role']}, "
                   f"up {d['uptime_seconds']:.0f}s, database {d['database']}")
        for job in d["running_jobs"]:
            total = f"/{job['total']}" if job["total"] else ""
            click.echo(f"  running  {job['kind']:<14} {job['done']}{total}  {job['message']}")
        for kind, when in sorted(d["next_runs"].items()):
            click.echo(f"  next     {kind:<14} {when}")
        if not d["running_jobs"] and not d["next_runs"]:
            click.echo("  no jobs running, none scheduled")
    emit(as_json, data, human)


# --- jobs -------------------------------------------------------------------------------

@click.group(name="jobs")
def jobs_group() -> None:
    """Job runs: list, run, inspect, cancel; the kinds and their params."""


def _print_runs(rows: list[dict]) -> None:
    for r in rows:
        click.echo(f"{r['id']}  {r['job_kind']:<13} {r['status']:<11} {r['trigger']:<9} "
                   f"{(r['queued_at'] or '')[:19]}  {r['error'] or ''}")


@jobs_group.command(name="list")
@click.option("--kind")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "interrupted", "cancelled"]))
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@socket_option
@json_option
@pass_state
def jobs_list(state: CliState, kind, status, limit, socket_path, as_json) -> None:
    """Recent runs, newest first."""
    args = {"kind": kind, "status": status, "limit": limit}
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("jobs.list", args)), _print_runs)


def _print_kinds(kinds: list[dict]) -> None:
    from strongroom.core.protocol import schema_type

    for k in kinds:
        how = "planned, not in this release" if k["planned"] else (
            "on request only" if k["on_request_only"] else "schedulable")
        click.echo(f"{k['kind']:<14} {k['summary']}  [{how}{', per backup configuration' if k['per_configuration'] else ''}]")
        schema = k["params"]
        for name, spec in schema.get("properties", {}).items():
            given = "required" if name in schema.get("required", []) else f"default {json.dumps(spec.get('default'))}"
            click.echo(f"    {name:<16} {schema_type(spec, null=False):<22} {given:<16} {spec.get('description', '')}")


@jobs_group.command(name="kinds")
@socket_option
@json_option
@pass_state
def jobs_kinds(state: CliState, socket_path, as_json) -> None:
    """Every job kind, how it may be started, and the params `jobs run --param` takes."""
    emit(as_json, run_remote(state, socket_path, lambda c: c.call("jobs.kinds")), _print_kinds)


def _params(values: tuple[str, ...]) -> dict:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE", param_hint="--param")
        out[key] = value
    return out


@jobs_group.command(name="run")
@click.argument("kind")
@click.option("--param", "params", multiple=True,
              help="KEY=VALUE passed to the job (repeatable); `strongroom jobs kinds` lists each kind's.")
@click.option("--wait", is_flag=True, help="Show progress and exit non-zero if the job fails.")
@socket_option
@json_option
@pass_state
def jobs_run(state: CliState, kind: str, params: tuple[str, ...], wait: bool, socket_path, as_json) -> None:
    """Start a job now."""
    start_job(state, socket_path, kind, _params(params), wait=wait, as_json=as_json)


def start_job(state: CliState, socket_path: str | None, kind: str, params: dict, *,
              wait: bool, as_json: bool) -> None:
    """Start a run through the daemon; with `wait`, follow it and exit 1 unless it succeeds."""
    args = {"kind": kind, "params": params}
    if not wait:
        run = run_remote(state, socket_path, lambda c: c.call("job.run", args))
        emit(as_json, run, lambda r: click.echo(f"started {r['job_kind']} run {r['id']}"))
        return
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json))
    emit(as_json, final, lambda r: click.echo(f"{r['job_kind']} run {r['id']} {r['status']}"
                                              + (f": {r['error']}" if r["error"] else "")))
    if final["status"] != "succeeded":
        sys.exit(1)


def dry_run(state: CliState, socket_path: str | None, kind: str, params: dict, *, as_json: bool,
            human: Callable[[dict], None]) -> None:
    """Run a job with dry_run, wait for it and print the plan its result holds.

    A sysadmin who asks for a dry run wants the plan on the terminal, not a run id to
    look up: so the run is always followed (it changes nothing; it is still a recorded
    run, under the job's own permission, so its id comes with the plan). Exit 1 unless
    it succeeds."""
    args = {"kind": kind, "params": {**params, "dry_run": "true"}}
    final = run_remote(state, socket_path, lambda c: wait_for_run(c, args, quiet=as_json))
    if final["status"] != "succeeded":
        emit(as_json, final, lambda r: click.echo(f"{kind} dry run {r['id']} {r['status']}"
                                                  + (f": {r['error']}" if r["error"] else "")))
        sys.exit(1)
    emit(as_json, {**final["result"], "run_id": final["id"]}, human)


async def wait_for_run(client: Client, args: dict, *, quiet: bool, cmd: str = "job.run") -> dict:
    """Start a run (with `cmd`, job.run or a command that answers like it) and follow
    it: progress events for the bar, job.get as the truth (events can be missed; the
    job_runs row cannot)."""
    events = client.subscribe("job.")
    await asyncio.sleep(0.05)  # let the subscription reach the daemon before the run starts
    run = await client.call(cmd, args)
    run_id = run["id"]
    bar = None if quiet or not sys.stderr.isatty() else click.progressbar(length=100, label=run["job_kind"], file=sys.stderr)
    pending = asyncio.ensure_future(events.recv())
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=1.0)
            if done:
                _topic, data = pending.result()
                pending = asyncio.ensure_future(events.recv())
                if data.get("run_id") == run_id and data.get("total"):
                    pct = int(100 * data["done"] / data["total"])
                    if bar is not None:
                        bar.update(pct - bar.pos)
                    elif not quiet:
                        click.echo(f"  {data['done']}/{data['total']} {data.get('message', '')}", err=True)
                if data.get("run_id") != run_id or data.get("status") == "running":
                    continue
            current = await client.call("job.get", {"run_id": run_id})
            if current["status"] in ("succeeded", "failed", "cancelled", "interrupted"):
                if bar is not None:
                    bar.update(100 - bar.pos)
                    bar.render_finish()
                return current
    finally:
        pending.cancel()
        events.close()


@jobs_group.command(name="get")
@click.argument("run_id", type=click.UUID)
@socket_option
@json_option
@pass_state
def jobs_get(state: CliState, run_id: uuid.UUID, socket_path, as_json) -> None:
    """One run with progress, result and error."""
    data = run_remote(state, socket_path, lambda c: c.call("job.get", {"run_id": str(run_id)}))
    emit(as_json, data, lambda r: [click.echo(f"{k:>16}: {v}") for k, v in r.items()])


@jobs_group.command(name="cancel")
@click.argument("run_id", type=click.UUID)
@socket_option
@pass_state
def jobs_cancel(state: CliState, run_id: uuid.UUID, socket_path) -> None:
    """Ask a running job to stop at its next safe point."""
    run_remote(state, socket_path, lambda c: c.call("job.cancel", {"run_id": str(run_id)}))
    click.echo(f"cancel requested for {run_id}")


# --- sessions, security, notify, config -------------------------------------------------

@click.group(name="sessions")
def sessions_group() -> None:
    """Login sessions."""


@sessions_group.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include ended sessions.")
@socket_option
@json_option
@pass_state
def sessions_list(state: CliState, show_all: bool, socket_path, as_json) -> None:
    """Sessions with user, client host, address and program."""
    rows = run_remote(state, socket_path, lambda c: c.call("sessions.list", {"active_only": not show_all}))

    def human(items: list[dict]) -> None:
        for s in items:
            click.echo(f"{s['id']}  {s['username'] or '?':<14} {s['client_host'] or '-':<16} "
                       f"{s['client_addr'] or '-':<15} {s['client_name'] or '-'} {s['client_version'] or ''}  "
                       f"last seen {s['last_seen_at'][:19]}" + (f"  ended: {s['revoked_reason']}" if s["revoked_at"] else ""))
    emit(as_json, rows, human)


@sessions_group.command(name="revoke")
@click.argument("session_id", type=click.UUID)
@click.option("--reason", default="revoked by operator", show_default=True)
@socket_option
@pass_state
def sessions_revoke(state: CliState, session_id: uuid.UUID, reason: str, socket_path) -> None:
    """End a session now."""
    run_remote(state, socket_path, lambda c: c.call("session.revoke", {"session_id": str(session_id), "reason": reason}))
    click.echo(f"session {session_id} revoked")


@click.group(name="security")
def security_group() -> None:
    """Security events."""


@security_group.command(name="events")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 1000))
@click.option("--type", "event_type")
@socket_option
@json_option
@pass_state
def security_events(state: CliState, limit: int, event_type: str | None, socket_path, as_json) -> None:
    """Logins, failures, lockouts and grants, newest first."""
    rows = run_remote(state, socket_path, lambda c: c.call("security.events", {"limit": limit, "event_type": event_type}))
    emit(as_json, rows, lambda items: [click.echo(
        f"{e['id']:>7} {e['occurred_at'][:19]} {e['severity']:<8} {e['event_type']:<20} "
        f"{e['username'] or '-':<14} {e['ip_address'] or '-'}  {e['description']}") for e in items])


@click.group(name="notify")
def notify_group() -> None:
    """Notifications."""


@notify_group.command(name="test")
@socket_option
@json_option
@pass_state
def notify_test(state: CliState, socket_path, as_json) -> None:
    """Send a test notification to every configured channel."""
    rows = run_remote(state, socket_path, lambda c: c.call("notify.test"))

    def human(items: list[dict]) -> None:
        if not items:
            click.echo("no notification channels configured ([notify] in the config)")
        for d in items:
            click.echo(f"{'ok  ' if d['ok'] else 'FAIL'} {d['channel']:<8} {d['target']}  {d['detail']}")
    emit(as_json, rows, human)
    if any(not d["ok"] for d in rows):
        sys.exit(1)


@click.group(name="config")
def config_group() -> None:
    """The running configuration."""


@config_group.command(name="show")
@socket_option
@pass_state
def config_show(state: CliState, socket_path) -> None:
    """Print the daemon's configuration as JSON, secrets redacted."""
    import json

    click.echo(json.dumps(run_remote(state, socket_path, lambda c: c.call("config.show")), indent=2))


@click.group(name="compliance", invoke_without_command=True)
@socket_option
@json_option
@pass_state
@click.pass_context
def compliance_cmd(click_ctx: click.Context, state: CliState, socket_path, as_json) -> None:
    """Compliance score (source weights) and the HIPAA checklist with evidence.

    `report` writes the signed report an auditor keeps; `verify` checks one."""
    if click_ctx.invoked_subcommand is not None:
        return
    data = run_remote(state, socket_path, lambda c: c.call("compliance.report"))

    def human(d: dict) -> None:
        click.echo(f"compliance score {d['score']}/100")
        for name, area in d["areas"].items():
            if area.get("status") == "not configured":
                click.echo(f"  {name:<11} not configured: not evidenced, forgoes {area['weight']} points")
                continue
            lost = area.get("failed_or_missed_jobs")
            jobs = f", {lost} failed or missed scheduled runs" if lost else ""
            click.echo(f"  {name:<11} {area['points']:>5}/{area['weight']:<3} ({area['passed']}/{area['checks']} checks{jobs})")
        for c in d["checks"]:
            mark = "ok  " if c["passed"] else "FAIL"
            click.echo(f"  {mark} [{c['area']}] {c['name']}  ({c['safeguard']})")
            if not c["passed"] and c["remediation"]:
                click.echo(f"         -> {c['remediation']}")
    emit(as_json, data, human)


REPORT_FORMATS = ("pdf", "md", "json")


@compliance_cmd.command(name="report")
@click.option("--format", "fmt", required=True, metavar="pdf|md|json", help="pdf, md or json")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="the file to write (mode 0600; replaced atomically)")
@click.option("--since", default=None, metavar="DATE", help="start of the period (default: 90 days ago)")
@click.option("--until", default=None, metavar="DATE", help="end of the period (default: now)")
@socket_option
@json_option
@pass_state
def compliance_report_cmd(state: CliState, fmt: str, out: Path, since, until, socket_path, as_json) -> None:
    """Write the signed compliance report (score, HIPAA safeguards, audit-chain proof,
    the period's erasures) to FILE; `strongroom compliance verify FILE` checks it."""
    from strongroom.core.errors import ValidationError
    from strongroom.core.fsutil import write_atomic

    fmt = fmt.strip().lower()
    if fmt not in REPORT_FORMATS:    # refused here by name (never repeating it), before the daemon is asked
        raise ValidationError(f"compliance report: unknown format (known: {', '.join(REPORT_FORMATS)})")
    if not out.parent.is_dir():
        raise StrongroomError("compliance report: the --out file's directory does not exist")
    args = {"format": fmt, "since": since, "until": until}
    result = run_remote(state, socket_path, lambda c: c.call("compliance.document", args))
    write_atomic(out, base64.b64decode(result["data"]), mode=0o600)
    summary = {k: result[k] for k in ("format", "sha256", "size", "score")} | {"out": str(out)}
    emit(as_json, summary, lambda d: click.echo(
        f"wrote {d['out']} ({d['format']}, {d['size']} bytes, score {d['score']}/100, sha256 {d['sha256']})"))


# `compliance verify` is offline (it reads the signing key's public half from the
# database itself), so it lives with the offline commands.
from strongroom.console.cli.compliance_verify import verify_cmd  # noqa: E402

compliance_cmd.add_command(verify_cmd)

COMMANDS = (compliance_cmd, login_cmd, logout_cmd, status_cmd, jobs_group, sessions_group, security_group,
            notify_group, config_group)
