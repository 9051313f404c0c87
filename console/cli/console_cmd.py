"""`strongroom console`: the Textual admin console, on the daemon's control socket."""
from __future__ import annotations

import click
from strongroom.console.cli import CliState, pass_state
from strongroom.console.cli.remote import _endpoints, socket_option
from strongroom.console.client import stored_token
from strongroom.core.errors import AuthError


@click.command(name="console")
@socket_option
@click.option("--token-from-operator", is_flag=True,
              help="Skip the login screen: use the stored session, else the daemon's local operator "
                   "token (readable by the service account and root only).")
@pass_state
def command(state: CliState, socket_path: str | None, token_from_operator: bool) -> None:
    """Open the admin console (login, overview, jobs, audit, security, compliance)."""
    from strongroom.console.app import StrongroomConsole

    endpoint, events, runtime = _endpoints(state, socket_path)
    token = None
    if token_from_operator:
        token = stored_token(endpoint, runtime)
        if token is None:
            raise AuthError(f"no stored session and no readable operator token in {runtime}; "
                            "log in on the console's login screen instead")
    StrongroomConsole(endpoint, events, token=token).run()
