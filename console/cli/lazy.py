"""The root group of `strongroom`: loads a command's module only when that command runs.

Every CLI call pays for what is imported before the command line is parsed. Importing
every command module up front pulled in SQLAlchemy, pydantic, ZeroMQ and the models
(about a second of CPU) even for `strongroom --help`. Here the root group knows each
command by name, where it lives and its one-line summary, so `strongroom --help` and
`strongroom <command> --help` import only the one module they show.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping

import click


class LazyGroup(click.Group):
    """A click group whose subcommands are `module:attribute` paths, loaded on first use.

    `lazy` maps a command name to (path relative to `package`, one-line summary). The
    summary is what the root help shows without loading the module; a test holds it
    equal to the command's own docstring summary.
    """

    def __init__(self, *args, lazy: Mapping[str, tuple[str, str]], package: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self.package = package

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(self._load(cmd_name), cmd_name)
        return self.commands.get(cmd_name)

    def summary(self, cmd_name: str) -> str:
        """The one line the root help shows for `cmd_name`."""
        if cmd_name in self.lazy:
            return self.lazy[cmd_name][1]
        return self.commands[cmd_name].get_short_help_str(limit=1000)

    def _load(self, cmd_name: str) -> click.Command:
        module_name, _, attribute = self.lazy[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(f"{self.package}.{module_name}"), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{self.lazy[cmd_name][0]} is not the command {cmd_name!r}")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Like click's, from the summaries, so showing the list loads no command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _shorten(self.summary(name), limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 3, 1)].rstrip() + "..."


class LazyChoice(click.Choice):
    """A Choice whose values come from a module the help alone should not import (the
    roles and audit actions live beside the database models); resolved on first use."""

    def __init__(self, load: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        self._load = load
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._load())
        return self._choices
