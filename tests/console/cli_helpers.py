"""Running the `strongroom` command in-process, as a shell would."""
from strongroom.console.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """main() with `args`; returns (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
