"""How the CLI reaches a running strongroomd: where its socket is, the CURVE keys for
one on another machine, the stored token, and one call that runs a command's requests
and maps the daemon's error replies to exit codes.

The socket is found from the data directory's config (or --socket / --connect); the
token is the one `strongroom login` stored (mode 0600), or, for the service account
and root on the daemon's machine, the daemon's local operator token.
"""
from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState
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


def call_daemon(state: CliState, socket_path: str | None, cmd: str, args: dict) -> Any:
    """One control command and its answer: what most remote commands do, so each of them
    need not write the run_remote lambda (and its error mapping stays run_remote's)."""
    return run_remote(state, socket_path, lambda client: client.call(cmd, args))


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
