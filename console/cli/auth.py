"""Logging in and out, who commands act as, and the login sessions of the daemon."""
from __future__ import annotations

import getpass
import os
import sys
import uuid

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, remote_options
from strongroom.console.cli.transport import _client_info, _endpoints, run_remote
from strongroom.core.errors import AuthError

if TYPE_CHECKING:  # ZeroMQ and the config models load only when a command talks to the daemon
    from strongroom.console.client import Client


# --- login / logout ---------------------------------------------------------------------

@click.command(name="login")
@click.option("--username", "-u", default=lambda: os.environ.get("USER"), show_default="$USER")
@click.option("--password-file", type=click.File("r"), help="Read the password from this file.")
@click.option("--totp", help="The current 6-digit code (prompted when omitted and needed).")
@click.option("--invitation-file", type=click.File("r"),
              help="First login of an invited account: the invitation from this file; the password "
                   "(prompted twice, or --password-file) becomes the account's own.")
@remote_options(json=False)
def login_cmd(state: CliState, username: str, password_file, totp: str | None, invitation_file,
              socket_path: str | None) -> None:
    """Log in to the daemon; keeps the session token in a 0600 file."""
    if invitation_file is not None:
        _accept_invitation(state, socket_path, invitation_file.read().strip(), password_file)
        return
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


def _accept_invitation(state: CliState, socket_path: str | None, invitation: str, password_file) -> None:
    """Set an invited account's own password and log in with it (enrolling a second
    factor next where the role requires one). The invitation is read from a file, never
    taken on the command line, where other users of the machine could read it."""
    if not invitation:
        raise click.UsageError("the invitation file is empty")
    if password_file is not None:
        password = password_file.read().rstrip("\n")
    else:
        password = click.prompt("Choose a password", hide_input=True, confirmation_prompt=True)
    from strongroom.console.client import save_token

    endpoint, _, _ = _endpoints(state, socket_path)
    args = {"invitation": invitation, "password": password, "client": _client_info()}
    result = run_remote(state, socket_path, lambda c: c.call("auth.invitation.accept", args),
                        need_token=False, announce=False)
    if result.get("enrolment_required"):
        result = _enrol(state, socket_path, result)
    path = save_token(endpoint, result["token"])
    click.echo(f"password set and logged in; session {result['session_id']} (token in {path})")


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
@remote_options(json=False)
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
@remote_options()
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


# --- sessions ---------------------------------------------------------------------------

@click.group(name="sessions")
def sessions_group() -> None:
    """Login sessions."""


@sessions_group.command(name="list")
@click.option("--all", "show_all", is_flag=True, help="Include ended sessions.")
@remote_options()
def sessions_list(state: CliState, show_all: bool, socket_path, as_json) -> None:
    """Sessions with user, client host, address and program."""
    rows = run_remote(state, socket_path, lambda c: c.call("session.list", {"active_only": not show_all}))

    def human(items: list[dict]) -> None:
        for s in items:
            click.echo(f"{s['id']}  {s['username'] or '?':<14} {s['client_host'] or '-':<16} "
                       f"{s['client_addr'] or '-':<15} {s['client_name'] or '-'} {s['client_version'] or ''}  "
                       f"last seen {s['last_seen_at'][:19]}" + (f"  ended: {s['revoked_reason']}" if s["revoked_at"] else ""))
    emit(as_json, rows, human)


@sessions_group.command(name="revoke")
@click.argument("session_id", type=click.UUID)
@click.option("--reason", default="revoked by operator", show_default=True)
@remote_options(json=False)
def sessions_revoke(state: CliState, session_id: uuid.UUID, reason: str, socket_path) -> None:
    """End a session now."""
    run_remote(state, socket_path, lambda c: c.call("session.revoke", {"session_id": str(session_id), "reason": reason}))
    click.echo(f"session {session_id} revoked")
