"""Running the `strongroom` command in-process, as a shell would."""
import click

from strongroom.console.cli import cli, main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """main() with `args`; returns (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def every_command() -> list[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command of the tree with its path, loading every command module."""
    ctx = click.Context(cli, info_name="strongroom")

    def walk(group: click.Group, path: tuple[str, ...]):
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*path, name))
            else:
                yield (*path, name), command
    return list(walk(cli, ()))
