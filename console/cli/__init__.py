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
from typing import Any

import click

from strongroom.core.config import Settings, load_settings, locate_config
from strongroom.core.context import Context, open_context
from strongroom.core.db.engine import translate_error
from strongroom.core.errors import StrongroomError


class CliState:
    """What the root group parsed; the context is opened lazily, on first use."""

    def __init__(self, config: str | None, data_dir: str | None) -> None:
        self.config = config
        self.data_dir = data_dir
        self._settings: Settings | None = None
        self._ctx: Context | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(locate_config(self.config, self.data_dir))
        return self._settings

    @property
    def ctx(self) -> Context:
        if self._ctx is None:
            self._ctx = open_context(self.settings)
        return self._ctx

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()


def local_actor() -> str:
    """How offline commands appear in the audit log: the operating-system user."""
    return f"local:{os.getuid()}"


def pass_state(func: Callable[..., Any]) -> Callable[..., Any]:
    @click.pass_context
    def wrapper(click_ctx: click.Context, *args: Any, **kwargs: Any) -> Any:
        return click_ctx.invoke(func, click_ctx.find_object(CliState), *args, **kwargs)

    return update_wrapper(wrapper, func)


def emit(as_json: bool, data: Any, human: Callable[[Any], None]) -> None:
    """Print `data` as JSON for scripts, or hand it to `human` to format."""
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        human(data)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--data-dir", envvar="STRONGROOM_DATA_DIR", type=click.Path(file_okay=False),
              help="Data directory holding strongroom.toml (env STRONGROOM_DATA_DIR).")
@click.option("--config", "config", envvar="STRONGROOM_CONFIG", type=click.Path(dir_okay=False),
              help="Configuration file (env STRONGROOM_CONFIG); overrides --data-dir.")
@click.version_option(package_name="strongroom")
@click.pass_context
def cli(click_ctx: click.Context, data_dir: str | None, config: str | None) -> None:
    """Strongroom: protect, prove and operate a practice's records."""
    state = CliState(config, data_dir)
    click_ctx.obj = state
    click_ctx.call_on_close(state.close)


def _register() -> None:
    from strongroom.console.cli import audit, backup, clients, console_cmd, db, demo, init, keys, remote, sync, user

    for module in (init, db, demo, user, keys, audit, clients, sync):
        cli.add_command(module.group)
    for command in remote.COMMANDS:
        cli.add_command(command)
    cli.add_command(console_cmd.command)
    cli.add_command(backup.group)
    cli.add_command(backup.restore_cmd)
    from strongroom.console.cli import exports

    for export_command in exports.COMMANDS:
        cli.add_command(export_command)
    from strongroom.console.cli import retention

    for retention_group in retention.GROUPS:
        cli.add_command(retention_group)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map errors to exit codes."""
    os.umask(0o077)  # everything we create (database, WAL, exports) is the owner's alone
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
        error = translate_error(exc)
        if error is None:
            raise
        click.echo(f"strongroom: error: {error}", err=True)
        sys.exit(error.exit_code)
