"""`strongroom console`: the Textual admin console, on the daemon's control socket."""
from __future__ import annotations

from pathlib import Path

import click
from strongroom.console.cli import CliState, pass_state, socket_option
from strongroom.console.cli.remote import RemoteError, _client_info, _endpoints, run_remote
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
@pass_state
def command(state: CliState, socket_path: str | None, token_from_operator: bool,
            demo_admin: bool) -> None:
    """Open the admin console (login, overview, jobs, backups, audit, security, compliance)."""
    from strongroom.console.app import StrongroomConsole
    from strongroom.console.client import stored_token

    endpoint, events, runtime = _endpoints(state, socket_path)
    token = None
    if demo_admin:
        token = demo_admin_token(state, socket_path)
    elif token_from_operator:
        token = stored_token(endpoint, runtime)
        if token is None:
            raise AuthError(f"no stored session and no readable operator token in {runtime}; "
                            "log in on the console's login screen instead")
    StrongroomConsole(endpoint, events, token=token).run()


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
