"""The global options: --data-dir, --config, --json and --socket, before or after the command;
--connect, --server-key and --client-key (a daemon on another machine, over CURVE TCP) before it.

`strongroom --json backup list` and `strongroom backup list --json` mean the same. The
root group parses its copy into the CliState; each command that uses one declares its
own copy, which, when not given on the command line, takes the root's value. So a value
given in both places resolves to the one nearer the command, by ordinary parsing.

--data-dir and --config are taken by every command that works on a data directory
(through `pass_state`). --json belongs to the commands that print JSON and --socket to
those that talk to the daemon; the root refuses either for a command that has no use for
it, so a script asking for JSON never silently gets text. The remote options go to the
root only (or come from STRONGROOM_CONNECT, STRONGROOM_SERVER_KEY, STRONGROOM_CLIENT_KEY);
given on the command line to a command that does not talk to the daemon they are refused
too, while the environment's copies are simply unused by local commands.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
from click.core import ParameterSource

F = TypeVar("F", bound=Callable[..., Any])

ENV_DATA_DIR, ENV_CONFIG = "STRONGROOM_DATA_DIR", "STRONGROOM_CONFIG"  # as core.config reads them

PLACEMENT = "May also follow the command; given in both places, the one nearer the command wins."
DATA_DIR_HELP = "Data directory holding strongroom.toml (env STRONGROOM_DATA_DIR)."
CONFIG_HELP = "Configuration file (env STRONGROOM_CONFIG); overrides --data-dir."
JSON_HELP = "Print machine-readable JSON."
SOCKET_HELP = "Daemon control socket (default: from the data directory's config)."
ENV_CONNECT, ENV_SERVER_KEY, ENV_CLIENT_KEY = "STRONGROOM_CONNECT", "STRONGROOM_SERVER_KEY", "STRONGROOM_CLIENT_KEY"
CONNECT_HELP = ("A daemon's CURVE TCP endpoint, tcp://HOST:PORT (env STRONGROOM_CONNECT), instead of the "
                "local socket; needs --server-key and --client-key. Before the command only.")
SERVER_KEY_HELP = ("The daemon's CURVE public key: its 40-character Z85 text or its public key file "
                   "(env STRONGROOM_SERVER_KEY).")
CLIENT_KEY_HELP = ("This client's CURVE secret key file, made by `strongroom keys client-key` "
                   "(env STRONGROOM_CLIENT_KEY).")


def root_options(func: F) -> F:
    """The root group's copies, with the environment variables as their fallbacks."""
    for decorator in reversed((
        click.option("--data-dir", envvar=ENV_DATA_DIR, type=click.Path(file_okay=False),
                     help=f"{DATA_DIR_HELP} {PLACEMENT}"),
        click.option("--config", "config", envvar=ENV_CONFIG, type=click.Path(dir_okay=False),
                     help=f"{CONFIG_HELP} {PLACEMENT}"),
        click.option("--json", "as_json", is_flag=True,
                     help=f"{JSON_HELP} {PLACEMENT} Refused by commands without JSON output."),
        click.option("--socket", "socket_path", type=click.Path(dir_okay=False),
                     help=f"{SOCKET_HELP} {PLACEMENT} Refused by commands that do not use the daemon."),
        click.option("--connect", "connect", envvar=ENV_CONNECT, metavar="tcp://HOST:PORT", help=CONNECT_HELP),
        click.option("--server-key", "server_key", envvar=ENV_SERVER_KEY, metavar="Z85|PATH", help=SERVER_KEY_HELP),
        click.option("--client-key", "client_key", envvar=ENV_CLIENT_KEY, metavar="PATH",
                     type=click.Path(dir_okay=False), help=CLIENT_KEY_HELP),
    )):
        func = decorator(func)
    return func


def _state(ctx: click.Context) -> Any:
    from strongroom.console.cli import CliState

    return ctx.find_object(CliState)


def _onto_state(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """A command's --data-dir/--config: given here, it replaces the root's."""
    state = _state(ctx)
    if value is not None and state is not None:
        setattr(state, param.name, value)


def _or_root(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A command's --json/--socket: not given here, it is the root's."""
    if ctx.get_parameter_source(param.name) in (None, ParameterSource.DEFAULT):
        state = _state(ctx)
        if state is not None:
            return getattr(state, param.name)
    return value


def data_dir_options(func: F) -> F:
    """--data-dir and --config after the command (no env fallback here: the root has it)."""
    func = click.option("--config", "config", type=click.Path(dir_okay=False), expose_value=False,
                        callback=_onto_state, help=CONFIG_HELP)(func)
    return click.option("--data-dir", "data_dir", type=click.Path(file_okay=False), expose_value=False,
                        callback=_onto_state, help=DATA_DIR_HELP)(func)


json_option = click.option("--json", "as_json", is_flag=True, callback=_or_root, help=JSON_HELP)
socket_option = click.option("--socket", "socket_path", type=click.Path(dir_okay=False), callback=_or_root,
                             help=SOCKET_HELP)

_USES = {"as_json": ("--json", "has no JSON output"),
         "socket_path": ("--socket", "does not talk to the daemon")}
_REMOTE = {"connect": "--connect", "server_key": "--server-key", "client_key": "--client-key"}


def refuse_unused(ctx: click.Context, path: Sequence[str], command: click.Command) -> None:
    """A root --json or --socket that `command` would ignore is a usage error (exit 2)."""
    declared = {p.name for p in command.params}
    for name, (option, why) in _USES.items():
        if ctx.params.get(name) and name not in declared:
            raise click.UsageError(f"{option} given, but strongroom {' '.join(path)} {why}", ctx)
    for name, option in _REMOTE.items():
        # Only a command that takes --socket talks to the daemon; the environment's copies
        # may be set for a whole shell, so only the command line's are refused.
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE and "socket_path" not in declared:
            raise click.UsageError(f"{option} given, but strongroom {' '.join(path)} does not talk to the daemon",
                                   ctx)


# --- a command's own options into a control command's arguments -------------------------

def given_options(**options: Any) -> dict:
    """The options typed (None and empty tuples left out), tuples as lists: a *.set
    command changes only what it is sent, so an option not given must not be sent as
    None (which would mean something else) and the daemon's models take lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v not in (None, ())}


def clear_fields(values: tuple[str, ...]) -> dict:
    """`--clear price-cents --clear staff-id` as the daemon's `clear` list (field names
    spelled as on the wire); nothing at all when none is given, so a plain set sends no
    empty list."""
    return {"clear": [v.replace("-", "_") for v in values]} if values else {}
