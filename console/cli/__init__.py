"""The `strongroom` command.

Offline admin commands (init, db, demo, user, keys, audit, clients) work on a data
directory directly, before any daemon exists; they act as `local:<uid>` with the admin
role, and everything they change is audited like any other action.

Errors are mapped to exit codes in exactly one place (`main`): a StrongroomError prints
one line `strongroom: error: ...` and exits with its class's exit code (2 for bad
configuration or arguments), never a traceback.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import update_wrapper
from typing import TYPE_CHECKING, Any

import click

from strongroom.console.cli.lazy import LazyGroup
from strongroom.console.cli.options import data_dir_options, json_option, refuse_unused, root_options, socket_option
from strongroom.core.bulk import skip_final_collection
from strongroom.core.errors import StrongroomError

if TYPE_CHECKING:  # loading these costs SQLAlchemy and pydantic: only commands that need them do
    from strongroom.core.config import Settings
    from strongroom.core.context import Context

__all__ = ["CliState", "cli", "echo_rows", "emit", "json_option", "local_actor", "main", "pass_state", "socket_option"]


class CliState:
    """What the global options say (the root's, replaced by a command's own where given);
    the settings and context are opened lazily, on first use."""

    def __init__(self, config: str | None, data_dir: str | None, *, as_json: bool = False,
                 socket_path: str | None = None, connect: str | None = None,
                 server_key: str | None = None, client_key: str | None = None) -> None:
        self.config = config
        self.data_dir = data_dir
        self.as_json = as_json
        self.socket_path = socket_path
        self.connect, self.server_key, self.client_key = connect, server_key, client_key  # transport.py reads them
        self._settings: Settings | None = None
        self._ctx: Context | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from strongroom.core.config import load_settings, locate_config

            self._settings = load_settings(locate_config(self.config, self.data_dir))
        return self._settings

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            from strongroom.core.context import open_context

            self._ctx = open_context(self.settings)
        return self._ctx

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()


def local_actor() -> str:
    """How offline commands appear in the audit log: the operating-system user."""
    return f"local:{os.getuid()}"


def pass_state(func: Callable[..., Any]) -> Callable[..., Any]:
    """Hand the command the CliState; it also takes --data-dir and --config after its name."""
    @click.pass_context
    def wrapper(click_ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return click_ctx.invoke(func, click_ctx.find_object(CliState), *args, **kwargs)

    return data_dir_options(update_wrapper(wrapper, func))


def remote_options(*, json: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """What every command that talks to the daemon wears, in one order: --socket, --json
    (unless the command prints no JSON), then the CliState; the function takes them as
    `state`, `socket_path` and `as_json`."""
    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        func = pass_state(func)
        if json:
            func = json_option(func)
        return socket_option(func)
    return apply


def emit(as_json: bool, data: Any, human: Callable[[Any], None]) -> None:
    """Print `data` as JSON for scripts, or hand it to `human` to format."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human(data)


def echo_rows(items: list[dict], columns: tuple[str, ...], empty: str) -> None:
    """A list's human output: one line per item with `columns` in order ("-" for an empty
    value, so the columns stay aligned for cut/awk), or `empty` when there is none."""
    if not items:
        click.echo(empty)
    for item in items:
        click.echo("  ".join(str(item.get(c) if item.get(c) is not None else "-") for c in columns))


# Each command by name: where it lives (in this package) and the summary the root help
# shows without importing it (a test holds these equal to the commands' docstrings).
COMMANDS: dict[str, tuple[str, str]] = {
    "appointments": ("appointments:group",
                     "Appointments: list, show, add, set (status, payment, service, staff, price, "
                     "clinical fields)."),
    "audit": ("audit:group", "The audit trail."),
    "backup": ("backup:group", "Snapshots: run, list, show, verify, drill, prune, forget, approve."),
    "clients": ("clients:group", "Client records (masked unless --reveal)."),
    "compliance": ("compliance:compliance_cmd", "Compliance score (source weights) and the HIPAA checklist with evidence."),
    "config": ("status:config_group", "The running configuration."),
    "console": ("console_cmd:command",
                "Open the admin console (login, overview, jobs, backups, audit, security, compliance)."),
    "db": ("db:group", "Database schema."),
    "demo": ("demo:group", "Synthetic demo data."),
    "encryption": ("encryption:group", "Encryption level: what is in force and its evidence; set another."),
    "erasure": ("retention:erasure_group",
                "Erasure requests: filed by one person, approved (and carried out) by another."),
    "export": ("exports:export_cmd", "Export tables through the daemon."),
    "exports": ("exports:group", "Export history and what may be exported."),
    "files": ("files:group", "Client files: add, list, get, remove (content encrypted with the client's key)."),
    "hold": ("retention:hold_group", "Legal holds: while one is in force, nothing of its client or practice is "
                                     "archived, deleted or erased."),
    "init": ("init:group", "Create a data directory (mode 0700): config, key file, migrated database."),
    "jobs": ("jobs:jobs_group", "Job runs: list, run, inspect, cancel; the kinds and their params."),
    "keys": ("keys:group", "Encryption keys: status, rotation, recovery kit."),
    "login": ("auth:login_cmd", "Log in to the daemon; keeps the session token in a 0600 file."),
    "logout": ("auth:logout_cmd", "End this session and forget its token."),
    "notify": ("notify:notify_group", "Notifications."),
    "practice": ("practice:practice_group",
                 "The practice's details: address, phone, email, tax id and licence number."),
    "reconcile": ("reconcile:group",
                  "Duplicate clients: find them, compare side by side, merge (undoable) or dismiss."),
    "restore": ("backup:restore_cmd", "Restore a snapshot into an empty database, proven against its manifest."),
    "retention": ("retention:group",
                  "Records retention: per-table policies, the plan of upcoming actions, the job."),
    "security": ("security:security_group", "Security events."),
    "sessions": ("auth:sessions_group", "Login sessions."),
    "services": ("practice:services_group",
                 "The practice's service catalogue: list, add, set (duration, price in cents, active)."),
    "staff": ("practice:staff_group",
              "The practice's staff: list, add, set (role, specializations, working hours, rate)."),
    "status": ("status:status_cmd", "What the daemon is doing: role, uptime, running jobs, next runs."),
    "sync": ("sync:group", "Sync between sites: passes, status, peers, the quarantine and the conflict queue."),
    "user": ("user:group", "Manage users: add, list, lock, unlock, grants, 2FA reset, passwords."),
    "whoami": ("auth:whoami_cmd", "Which identity commands act as now, and where it comes from."),
}


class RootGroup(LazyGroup):
    """The root: refuses a global option the command it leads to would ignore."""

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, command, rest = super().resolve_command(ctx, args)
        path, leaf, leaf_args = [name], command, rest
        while isinstance(leaf, click.Group) and leaf_args and not leaf_args[0].startswith("-"):
            sub = leaf.get_command(ctx, leaf_args[0])
            if sub is None:
                break                     # the group reports the unknown name itself
            path.append(leaf_args[0])
            leaf, leaf_args = sub, leaf_args[1:]
        if leaf is not None and not isinstance(leaf, click.Group) and not {"--help", "-h"} & set(leaf_args):
            refuse_unused(ctx, path, leaf)
        return name, command, rest


@click.group(cls=RootGroup, lazy=COMMANDS, package=__name__,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@root_options
@click.version_option(package_name="strongroom")
@click.pass_context
def cli(click_ctx: click.Context, data_dir: str | None, config: str | None, as_json: bool,
        socket_path: str | None, connect: str | None, server_key: str | None, client_key: str | None) -> None:
    """Strongroom: protect, prove and operate a practice's records.

    The global options (--data-dir, --config, --json, --socket) go before or after the
    command, with the same meaning; given in both places, the one nearer the command wins.
    --connect, --server-key and --client-key (a daemon on another machine) go before it.
    """
    state = CliState(config, data_dir, as_json=as_json, socket_path=socket_path, connect=connect,
                     server_key=server_key, client_key=client_key)
    click_ctx.obj = state
    click_ctx.call_on_close(state.close)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to exit codes."""
    os.umask(0o077)  # everything we create (database, WAL, exports) is the owner's alone
    skip_final_collection()
    try:
        cli.main(args=argv, prog_name="strongroom", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except StrongroomError as exc:
        click.echo(f"strongroom: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        from strongroom.core.db.engine import translate_error

        error = translate_error(exc)
        if error is None:
            raise
        click.echo(f"strongroom: error: {error}", err=True)
        sys.exit(error.exit_code)
