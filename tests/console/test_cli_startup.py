"""`strongroom --help` and `strongroom <command> --help` are cheap: every CLI call pays
for what the command line imports before it parses anything, so the root group loads a
command's module only when that command runs, and command modules import SQLAlchemy,
pydantic, ZeroMQ, Textual and the core models inside the commands that need them."""
import json
import subprocess
import sys

import click
import pytest

from strongroom.console.cli import cli
from tests.console.cli_helpers import every_command, run_cli as run

HEAVY = ("sqlalchemy", "pydantic", "zmq", "textual", "strongroom.core.db", "strongroom.core.config",
         "strongroom.console.client")
COMMAND_MODULES = ("audit", "backup", "clients", "console_cmd", "db", "demo", "exports", "init", "keys", "remote",
                   "retention", "sync", "user")
TOP_LEVEL = cli.list_commands(click.Context(cli))


def imported_by(*argv: str) -> list[str]:
    """The modules `strongroom *argv` imports, from a fresh interpreter."""
    code = ("import json, sys\n"
            "from strongroom.console.cli import main\n"
            "try:\n"
            f"    main({list(argv)!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(proc.stderr.strip().splitlines()[-1])


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(HEAVY)]


def test_root_help_imports_no_heavy_library():
    modules = imported_by("--help")
    assert heavy(modules) == []
    command_modules = {f"strongroom.console.cli.{m}" for m in COMMAND_MODULES}
    assert command_modules.isdisjoint(modules)


@pytest.mark.parametrize("command", TOP_LEVEL)
def test_command_help_imports_no_heavy_library(command):
    assert heavy(imported_by(command, "--help")) == []


def test_backup_prune_help_imports_no_heavy_library():
    assert heavy(imported_by("backup", "prune", "--help")) == []


def test_the_root_help_lists_each_command_with_its_own_summary(capsys):
    """The root help is drawn from a table (so it loads no command module); each line
    must still say what the command's own docstring says."""
    ctx = click.Context(cli, info_name="strongroom")
    for name in TOP_LEVEL:
        command = cli.get_command(ctx, name)
        assert cli.summary(name) == command.get_short_help_str(limit=1000), name
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert all(f"  {name} " in out for name in TOP_LEVEL)


def test_an_unknown_command_is_refused_with_exit_2(capsys):
    code, _, err = run(capsys, "bakcup", "list")
    assert code == 2 and "No such command" in err


def test_every_command_help_names_its_own_full_path(capsys):
    for path, _ in every_command():
        code, out, err = run(capsys, *path, "--help")
        assert code == 0, err
        assert out.startswith(f"Usage: strongroom {' '.join(path)} "), out.splitlines()[0]
