"""The global options --data-dir, --config, --json and --socket mean the same before the
command (`strongroom --json backup list`) and after it (`strongroom backup list --json`).
Given in both places, the one nearer the command wins. Given before a command that has
no use for it (--json to a command without JSON output, --socket to one that never
talks to the daemon), it is refused with exit 2 rather than silently ignored.

The first tests parse every command of the tree with each placement and record what the
command would receive; the last ones run real commands, on a real data directory and
daemon, on both engines."""
import json
import uuid
from pathlib import Path

import click
import pytest

from strongroom.console.cli import CliState
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.jobs import backup
from tests.console.cli_helpers import every_command, run_cli as run
from tests.daemon.conftest import make_data_dir, running_daemon


COMMANDS = every_command()


def _sample(param: click.Parameter, existing_file: Path) -> str:
    """A value this parameter's type accepts."""
    kind = param.type
    if isinstance(kind, click.types.UUIDParameterType):
        return str(uuid.UUID(int=7))
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, (click.IntRange, click.types.IntParamType)):
        return str(getattr(kind, "min", None) or 1)
    if isinstance(kind, (click.Path, click.File)):
        return str(existing_file)
    return "x"


def required_args(command: click.Command, existing_file: Path) -> list[str]:
    """The arguments and required options a command needs to get past parsing."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument) and param.required:
            args.append(_sample(param, existing_file))
        elif isinstance(param, click.Option) and param.required:
            args += [param.opts[0], _sample(param, existing_file)]
    return args


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Run a command with its body replaced by a recorder of what it was given."""
    for name in ("STRONGROOM_DATA_DIR", "STRONGROOM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    existing = tmp_path / "existing-file"
    existing.write_text("x\n")

    def go(capsys, path, command, before=(), after=()):
        seen: list[dict] = []

        def record(*_args, **kwargs):
            state = click.get_current_context().find_object(CliState)
            seen.append({"data_dir": state.data_dir, "config": state.config,
                         "as_json": kwargs.get("as_json"), "socket_path": kwargs.get("socket_path")})
        original, command.callback = command.callback, record
        try:
            code, out, err = run(capsys, *before, *path, *required_args(command, existing), *after)
        finally:
            command.callback = original
        return code, err, (seen[0] if seen else None)
    return go


def _ids(items):
    return [" ".join(path) for path, _ in items]


def test_the_tree_has_every_command_the_readme_documents():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"init", "console", "status", "backup prune", "backup list", "retention run", "keys recover",
            "jobs list", "user add", "restore", "export"} <= paths
    assert len(paths) >= 60


@pytest.mark.parametrize("path,command", COMMANDS, ids=_ids(COMMANDS))
def test_data_dir_and_config_mean_the_same_before_and_after_the_command(path, command, recorded, capsys):
    if not any(p.name == "data_dir" for p in command.params):
        # Only `keys recover`, which reads a kit file and writes a key file, works
        # without a data directory; the root's --data-dir is still accepted for it.
        assert path == ("keys", "recover")
        code, err, seen = recorded(capsys, path, command, before=("--data-dir", "/d/root"))
        assert code == 0, err
        code, err, _ = recorded(capsys, path, command, after=("--data-dir", "/d/root"))
        assert code == 2 and "No such option" in err
        return
    for option in ("--data-dir", "--config"):
        field = option[2:].replace("-", "_")
        code, err, before = recorded(capsys, path, command, before=(option, "/d/root"))
        assert code == 0, err
        code, err, after = recorded(capsys, path, command, after=(option, "/d/root"))
        assert code == 0, err
        assert before == after and before[field] == "/d/root"
        code, err, both = recorded(capsys, path, command, before=(option, "/d/root"), after=(option, "/d/near"))
        assert code == 0, err
        assert both[field] == "/d/near"       # the one nearer the command wins


@pytest.mark.parametrize("path,command", COMMANDS, ids=_ids(COMMANDS))
def test_json_means_the_same_before_and_after_the_command(path, command, recorded, capsys):
    code, err, plain = recorded(capsys, path, command)
    assert code == 0, err
    code, err, before = recorded(capsys, path, command, before=("--json",))
    if not any(p.name == "as_json" for p in command.params):
        assert code == 2 and f"strongroom {' '.join(path)} has no JSON output" in err
        code, err, _ = recorded(capsys, path, command, after=("--json",))
        assert code == 2 and "No such option" in err
        return
    assert code == 0, err
    code, err, after = recorded(capsys, path, command, after=("--json",))
    assert code == 0, err
    assert plain["as_json"] is False and before["as_json"] is True and after["as_json"] is True
    assert before == after


@pytest.mark.parametrize("path,command", COMMANDS, ids=_ids(COMMANDS))
def test_socket_means_the_same_before_and_after_the_command(path, command, recorded, capsys):
    code, err, before = recorded(capsys, path, command, before=("--socket", "/run/root.sock"))
    if not any(p.name == "socket_path" for p in command.params):
        assert code == 2 and f"strongroom {' '.join(path)} does not talk to the daemon" in err
        return
    assert code == 0, err
    code, err, after = recorded(capsys, path, command, after=("--socket", "/run/root.sock"))
    assert code == 0, err
    assert before == after and before["socket_path"] == "/run/root.sock"
    code, err, both = recorded(capsys, path, command, before=("--socket", "/run/root.sock"),
                               after=("--socket", "/run/near.sock"))
    assert code == 0, err
    assert both["socket_path"] == "/run/near.sock"


def test_the_root_help_says_where_global_options_go(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "before or after the command" in text and "nearer the command wins" in text


# --- real commands ------------------------------------------------------------------------

def test_init_takes_data_dir_after_the_command_as_the_readme_shows(tmp_path, db_url, capsys, monkeypatch):
    monkeypatch.delenv("STRONGROOM_DATA_DIR", raising=False)
    engine = [] if db_url.startswith("sqlite") else ["--database-url", db_url]
    code, out, err = run(capsys, "init", "--data-dir", tmp_path / "demo", *engine, "--demo", "--clients", "3")
    assert code == 0, err
    assert f"initialised {tmp_path / 'demo'}" in out and "demo admin" in out
    code, out, err = run(capsys, "clients", "list", "--data-dir", tmp_path / "demo", "--json")
    assert code == 0, err
    assert len(json.loads(out)) == 3 + 1       # and the client the demo's satellite site registered


@pytest.fixture
def daemon(tmp_path, db_url, monkeypatch):
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        backup.run(ctx, {"full": "true"}, lambda *a: None)
    finally:
        ctx.close()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("STRONGROOM_DATA_DIR", raising=False)
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        yield proc


def test_real_commands_answer_the_same_wherever_the_global_options_are(daemon, capsys):
    dd = str(daemon.data_dir)
    code, out, err = run(capsys, "--json", "--data-dir", dd, "backup", "list")
    assert code == 0, err
    assert [s["kind"] for s in json.loads(out)] == ["full"]
    assert run(capsys, "backup", "list", "--data-dir", dd, "--json")[1] == out
    assert run(capsys, "--data-dir", dd, "--json", "backup", "list")[1] == out

    code, first, err = run(capsys, "--json", "--data-dir", dd, "jobs", "list")
    assert code == 0, err
    assert run(capsys, "jobs", "list", "--json", "--data-dir", dd)[1] == first

    code, out, err = run(capsys, "--data-dir", dd, "--json", "status")
    assert code == 0, err
    assert json.loads(out)["role"] == json.loads(run(capsys, "status", "--json", "--data-dir", dd)[1])["role"]


def test_the_socket_nearer_the_command_wins_on_a_real_daemon(daemon, capsys, tmp_path):
    dd = str(daemon.data_dir)
    socket = daemon.endpoint.removeprefix("ipc://")
    code, out, err = run(capsys, "--data-dir", dd, "--socket", tmp_path / "nowhere.sock", "jobs", "list", "--json",
                         "--socket", socket)
    assert code == 0, err
    assert json.loads(out) == []
    code, out, err = run(capsys, "--data-dir", dd, "jobs", "list", "--json", "--socket", socket)
    assert code == 0, err
    code, out, err = run(capsys, "--socket", socket, "--data-dir", dd, "--json", "jobs", "list")
    assert code == 0, err
    assert json.loads(out) == []


def test_the_root_reads_the_same_environment_variables_as_the_config_loader():
    from strongroom.console.cli import options
    from strongroom.core import config

    assert (options.ENV_DATA_DIR, options.ENV_CONFIG) == (config.ENV_DATA_DIR, config.ENV_CONFIG)
