"""`strongroom console`: the Textual admin console, on the daemon's control socket (or,
with the root's --connect, on another machine's daemon over CURVE TCP)."""
from __future__ import annotations

import re
from pathlib import Path

import click
from strongroom.console.cli import CliState, pass_state, socket_option
from strongroom.console.cli.transport import RemoteError, _client_info, _endpoints, run_remote
from strongroom.core.errors import AuthError, ConfigError

DEMO_CREDENTIALS = "demo-credentials.txt"


@click.command(name="console")
@socket_option
@click.option("--token-from-operator", is_flag=True,
              help="Skip the login screen: use the stored session, else the daemon's local operator "
                   "token (readable by the service account and root only).")
@click.option("--demo-admin", is_flag=True,
              help="Log in as the demo admin that `strongroom init --demo` created and printed "
                   "(reads demo-credentials.txt in the data directory; demo data only).")
@click.option("--serve", is_flag=True,
              help="Serve the console to web browsers (textual-serve); each session starts at the login screen.")
@click.option("--bind", default=None, metavar="ADDR:PORT",
              help="With --serve: where to listen (default 127.0.0.1:8000). Off loopback, TLS is required.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="With --serve: PEM certificate (chain) for HTTPS.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="With --serve: PEM private key of --tls-cert.")
@click.option("--public-url", default=None, metavar="URL",
              help="With --serve: the URL browsers use, when not the bind address (e.g. behind NAT).")
@pass_state
def command(state: CliState, socket_path: str | None, token_from_operator: bool,
            demo_admin: bool, serve: bool, bind: str | None, tls_cert: Path | None, tls_key: Path | None,
            public_url: str | None) -> None:
    """Open the admin console (login, overview, jobs, backups, audit, security, compliance)."""
    from strongroom.console.app import StrongroomConsole
    from strongroom.console.client import stored_token

    if serve:
        return _serve(state, socket_path, token_from_operator or demo_admin, bind, tls_cert, tls_key, public_url)
    if bind or tls_cert or tls_key or public_url:
        raise click.UsageError("--bind, --tls-cert, --tls-key and --public-url go with --serve")
    endpoint, events, runtime = _endpoints(state, socket_path)
    token = None
    if demo_admin:
        token = demo_admin_token(state, socket_path)
    elif token_from_operator:
        token = stored_token(endpoint, runtime)
        if token is None:
            raise AuthError("no stored session and no readable operator token "
                            f"{'(none over --connect)' if runtime is None else f'in {runtime}'}; "
                            "log in on the console's login screen instead")
    StrongroomConsole(endpoint, events, token=token, client=_client(state, endpoint, events, token)).run()


def _client(state: CliState, endpoint: str, events: str, token: str | None):
    """The console's client: CURVE-keyed for --connect (another machine's daemon)."""
    from strongroom.console.app import CALL_TIMEOUT
    from strongroom.console.cli.transport import curve_for
    from strongroom.console.client import Client

    return Client(endpoint, events_endpoint=events, token=token, curve=curve_for(state), timeout=CALL_TIMEOUT)


def read_demo_credentials(data_dir: Path) -> dict[str, str]:
    """username, password and totp_secret from the file `init --demo` wrote. Only a demo
    data directory has one: this is a real login with printed credentials, not a bypass."""
    path = data_dir / DEMO_CREDENTIALS
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist: --demo-admin works only on a data directory "
                          "made by `strongroom init --demo`") from None
    creds = dict(line.split("=", 1) for line in lines if "=" in line)
    missing = {"username", "password", "totp_secret"} - set(creds)
    if missing:
        raise ConfigError(f"{path}: missing {', '.join(sorted(missing))}")
    return creds


def demo_admin_token(state: CliState, socket_path: str | None) -> str:
    """The demo admin's session token: the saved one while the daemon still accepts it,
    else a fresh login (password + the current TOTP code), saved like `strongroom login`.
    Reusing a live session keeps a quick second `make demo` from replaying a TOTP code."""
    import pyotp

    from strongroom.console.client import save_token, session_file

    creds = read_demo_credentials(Path(state.settings.data_dir))
    endpoint, _, _ = _endpoints(state, socket_path)
    if session_file(endpoint).exists():
        try:
            who = run_remote(state, socket_path, lambda c: c.call("whoami"))
            if who.get("actor") == f"user:{creds['username']}":
                return session_file(endpoint).read_text().strip()
        except RemoteError:
            pass                                  # expired or revoked: log in afresh

    async def go(client):
        return await client.call("auth.login", {
            "username": creds["username"], "password": creds["password"],
            "totp": pyotp.TOTP(creds["totp_secret"]).now(), "client": _client_info()})
    result = run_remote(state, socket_path, go, need_token=False)
    save_token(endpoint, result["token"])
    return result["token"]


def _serve(state: CliState, socket_path: str | None, token_flag: bool, bind: str | None, tls_cert: Path | None,
           tls_key: Path | None, public_url: str | None) -> None:
    """`console --serve`: checks everything before listening, then serves until stopped."""
    from strongroom.console import serve

    if token_flag:
        # A browser session must log in: a shared token would make every visitor that account.
        raise click.UsageError("--serve logs every browser session in at the login screen: "
                               "--token-from-operator and --demo-admin do not apply")
    host, port = serve.parse_bind(bind or serve.DEFAULT_BIND)
    context = serve.tls_context(tls_cert, tls_key, host)
    if public_url is not None and not re.fullmatch(r"https?://[^\s/]+", public_url):
        raise click.UsageError("--public-url: expected http(s)://HOST[:PORT], no path")
    if public_url is not None and context is not None and not public_url.startswith("https://"):
        raise click.UsageError("--public-url: must be https:// when serving TLS")
    args = [a for name in ("data_dir", "config") if getattr(state, name)
            for a in (f"--{name.replace('_', '-')}", str(Path(getattr(state, name)).resolve()))]
    if socket_path:
        args += ["--socket", str(Path(socket_path).resolve())]
    for name in ("connect", "server_key", "client_key"):
        value = getattr(state, name)
        if value:
            is_file = name == "client_key" or (name == "server_key" and Path(value).exists())
            args += [f"--{name.replace('_', '-')}", str(Path(value).resolve()) if is_file else value]
    serve.serve(serve.console_command(args), host, port, context, public_url)
