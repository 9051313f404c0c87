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
    from strongroom.console.client import Client, ClientError, Curve

_ERROR_EXIT = {"bad_request": 2, "not_found": 3, "conflict": 4, "unauthenticated": 7,
               "rate_limited": 7, "forbidden": 8, "not_implemented": 10, "unavailable": 12}


class RemoteError(StrongroomError):
    """An error reply from the daemon, shown as the daemon worded it."""

    def __init__(self, err: ClientError) -> None:
        super().__init__(f"{err.message} [{err.code}]")
        self.exit_code = _ERROR_EXIT.get(err.code, 1)


def _endpoints(state: CliState, socket_path: str | None) -> tuple[str, str, Path | None]:
    from strongroom.core.endpoints import control_endpoint, events_endpoint, runtime_dir_for

    if state.connect and socket_path:
        raise click.UsageError("--connect and --socket both given: use one (a remote daemon or a local socket)")
    if state.connect:
        host, port = _parse_connect(state.connect)
        # The daemon publishes events on the port after its control port (daemon/control.py).
        return f"tcp://{host}:{port}", f"tcp://{host}:{port + 1}", None
    if socket_path:
        path = Path(socket_path)
        return f"ipc://{path}", f"ipc://{path.with_name('events.sock')}", path.parent
    runtime = runtime_dir_for(state.settings)
    return control_endpoint(runtime), events_endpoint(runtime), runtime


# --- a daemon on another machine: CURVE over TCP -----------------------------------------

_Z85_KEY_LENGTH = 40            # a 32-byte CURVE key in Z85 text


def _parse_connect(value: str) -> tuple[str, int]:
    """HOST and PORT of --connect tcp://HOST:PORT (HOST may be [IPv6]). The value is not
    repeated in the error: it is the user's text, and the option names the field."""
    import re

    match = re.fullmatch(r"tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})", value.strip())
    if not match or not 0 < int(match.group(2)) < 65535:
        raise click.UsageError("--connect: expected tcp://HOST:PORT (the daemon's daemon.tcp_endpoint; "
                               "its event port is PORT + 1)")
    return match.group(1), int(match.group(2))


def _z85_key(text: str) -> bytes | None:
    """`text` as a Z85 CURVE key, or None when it is not one."""
    from zmq.utils import z85

    text = text.strip()
    if len(text) != _Z85_KEY_LENGTH:
        return None
    try:
        z85.decode(text)
    except (ValueError, KeyError, TypeError):
        return None
    return text.encode("ascii")


def _load_key_file(path: str, option: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) from a ZeroMQ key certificate file."""
    import zmq.auth

    if not os.path.isfile(path):
        raise click.UsageError(f"{option}: no such key file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError, UnicodeDecodeError):
        raise click.UsageError(f"{option}: not a CURVE key file (one `strongroom keys client-key` or "
                               "zmq.auth writes)") from None
    if public is None or _z85_key(public.decode("ascii", "replace")) is None:
        raise click.UsageError(f"{option}: the file holds no valid CURVE public key")
    return public, secret


def curve_for(state: CliState) -> "Curve | None":
    """The CURVE keys for --connect, or None for the local socket. Both keys are needed:
    the server's to know it talks to the right daemon, this client's to be let in."""
    from strongroom.console.client import Curve

    if not state.connect:
        return None
    if not state.server_key:
        raise click.UsageError("--connect needs --server-key (the daemon's CURVE public key, Z85 or its file)")
    if not state.client_key:
        raise click.UsageError("--connect needs --client-key (the secret key file `strongroom keys client-key` "
                               "wrote)")
    server = _z85_key(state.server_key)
    if server is None:
        if len(state.server_key.strip()) == _Z85_KEY_LENGTH and not os.path.exists(state.server_key):
            raise click.UsageError("--server-key: not a valid Z85 key")
        server = _load_key_file(state.server_key, "--server-key")[0]
    public, secret = _load_key_file(state.client_key, "--client-key")
    if secret is None:
        raise click.UsageError("--client-key: the file holds no secret key (give the client.key_secret file, "
                               "not the public client.key)")
    return Curve(server, public, secret)


def write_client_key(out: Path, name: str = "client") -> tuple[Path, Path, str]:
    """A new CURVE key pair in `out`: NAME.key_secret (0600) and NAME.key (the public
    certificate to copy into the daemon's curve_allowed_clients_dir), each written to a
    temp name, fsynced and renamed. Refuses to replace an existing secret: a lost key is
    a new device, and the old one may still be in use. Returns both paths and the key."""
    import datetime

    import zmq

    import re

    from strongroom.core.fsutil import write_atomic

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise click.UsageError("--name: use 1 to 64 letters, digits, - or _")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret_path, public_path = out / f"{name}.key_secret", out / f"{name}.key"
    if secret_path.exists() or public_path.exists():
        raise click.UsageError(f"--out: {secret_path.name} or {public_path.name} already exists there; "
                               "choose another directory (an existing key is never overwritten)")
    public, secret = zmq.curve_keypair()
    made = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    head = (f"#   ****  Generated on {made} by strongroom keys client-key  ****\n"
            "#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change "
            "its permissions.\n\n")
    body = f'metadata\ncurve\n    public-key = "{public.decode()}"\n'
    write_atomic(secret_path, (head + body + f'    secret-key = "{secret.decode()}"\n').encode(), mode=0o600)
    public_head = (f"#   ****  Generated on {made} by strongroom keys client-key  ****\n"
                   "#   ZeroMQ CURVE Public Certificate\n#   Exchange securely, or use a secure mechanism to "
                   "verify the contents of this file after exchange.\n\n")
    write_atomic(public_path, (public_head + body).encode(), mode=0o644)
    return secret_path, public_path, public.decode()


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
        if err.code == "unavailable" and client.endpoint.startswith("tcp://"):
            # A CURVE handshake that fails (wrong server key, client key not allow-listed)
            # is silent by design: all the client sees is no answer.
            raise DaemonNotRunning(f"strongroomd {where} does not answer within {probe:g} s: not running or "
                                   "unreachable, the wrong --server-key, or this client's public key is not in "
                                   "the daemon's curve_allowed_clients_dir; STRONGROOM_CONNECT_TIMEOUT sets "
                                   "the wait") from None
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
    curve = curve_for(state)
    where = ("at --connect" if state.connect else "at the --socket path" if socket_path
             else f"at {endpoint.split('://', 1)[-1]}")
    require_listening(endpoint, where)
    found = find_token(endpoint, runtime)
    token = found.value if found else None
    if need_token and token is None:
        raise AuthError("not logged in: run `strongroom login` (or use the daemon's account)")

    async def go() -> Any:
        client = Client(endpoint, events_endpoint=events, token=token, curve=curve,
                        timeout=float(os.environ.get("STRONGROOM_TIMEOUT", "30")))
        try:
            await answers(client, where)
            if announce and found is not None and found.source == SAVED_SESSION:
                await _announce_identity(client)
            result = await fn(client)
            _warn_low_allowance(client.rates)
            return result
        finally:
            client.close()
    try:
        return asyncio.run(go())
    except ClientError as err:
        raise RemoteError(err) from None


def _warn_low_allowance(rates: dict[str, dict]) -> None:
    """Say on stderr when this account has a tenth or less of an hourly command allowance
    left (the daemon's rate limits per user, daemon/ratelimit.py), before it runs out."""
    for cls, rate in sorted(rates.items()):
        limit, remaining = rate.get("limit"), rate.get("remaining")
        if isinstance(limit, int) and isinstance(remaining, int) and remaining <= max(1, limit // 10):
            click.echo(f"strongroom: {remaining} of {limit} {cls} commands left this hour for this account",
                       err=True)


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
