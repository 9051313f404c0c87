"""DESIGN's dependency direction holds by itself: console -> protocol -> daemon -> core.

core knows nothing of ZeroMQ, Textual, the daemon or the console. The daemon never
imports Textual or the console. The Textual console and the control client (the CLI's
remote commands) never import the daemon or the database layer: they speak the
protocol. Only the CLI's offline commands (DESIGN §9: init, db, keys, restore, audit
verify, ...) open the database through core. Imports are read from the source (also
those inside functions), so a lazy import cannot slip past.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The console modules that must stay on the protocol's side of the socket.
CONSOLE_SIDE = ["console/app.py", "console/client.py", "console/lifecycle.py", "console/screens",
                "console/tabs", "console/modals", "console/helpers",
                "console/widgets", "console/cli/transport.py", "console/cli/lazy.py", "console/cli/options.py",
                # the CLI's commands that only talk to the daemon
                "console/cli/auth.py", "console/cli/jobs.py", "console/cli/status.py", "console/cli/security.py",
                "console/cli/notify.py", "console/cli/compliance.py", "console/cli/console_cmd.py",
                "console/cli/appointments.py", "console/cli/practice.py", "console/cli/reconcile.py",
                "console/cli/sync.py", "console/cli/exports.py", "console/cli/files.py"]
# The rest of console/cli are the offline commands DESIGN §9 lets use core on the
# daemon's machine (init, db, keys, backup and restore, demo, user bootstrap, audit and
# certificate verification, clients import, encryption level, compliance verify).
# What of core the console side may use: plain helpers with no database, key or socket.
CONSOLE_MAY_USE = ("strongroom.core.protocol", "strongroom.core.endpoints", "strongroom.core.version",
                   "strongroom.core.principal", "strongroom.core.fsutil", "strongroom.core.validation",
                   "strongroom.core.errors", "strongroom.core.masking", "strongroom.core.config")


PACKAGES = {"strongroom", "strongroom.core", "strongroom.daemon", "strongroom.console"}


def _modules(*places: str) -> list[Path]:
    found: list[Path] = []
    for place in places:
        path = REPO / place
        if path.is_dir():
            found += sorted(path.rglob("*.py"))
        elif path.exists():
            found.append(path)
    return found


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _offending(paths: list[Path], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> dict[str, list[str]]:
    bad: dict[str, list[str]] = {}
    for path in paths:
        # `from strongroom.core import protocol` names the package and the module: the
        # module decides, so a bare package name is no offence by itself.
        hits = sorted(name for name in imports_of(path)
                      if name.startswith(forbidden) and not name.startswith(allowed) and name not in PACKAGES)
        if hits:
            bad[str(path.relative_to(REPO))] = hits
    return bad


def test_core_imports_neither_the_daemon_nor_the_console_nor_their_transports():
    assert _offending(_modules("core"), ("strongroom.daemon", "strongroom.console", "zmq", "textual")) == {}


def test_the_daemon_never_imports_the_console_or_textual():
    assert _offending(_modules("daemon"), ("strongroom.console", "textual")) == {}


def test_the_console_side_speaks_the_protocol_and_never_opens_the_database():
    forbidden = ("strongroom.daemon", "strongroom.core", "sqlalchemy", "psycopg", "prometheus_client")
    assert _offending(_modules(*CONSOLE_SIDE), forbidden, allowed=CONSOLE_MAY_USE) == {}


@pytest.mark.parametrize("place", CONSOLE_SIDE[:4])
def test_the_places_this_test_guards_exist(place):
    assert (REPO / place).exists(), f"{place} moved: update CONSOLE_SIDE so the rule still holds"


def test_the_protocol_package_is_pydantic_and_the_standard_library_only():
    """core/protocol (frames, names, every command's models) is what the console imports to
    speak to the daemon: it may use pydantic, the standard library and itself, plus the
    one plain helper the frames need (core.validation), never the daemon, the database,
    ZeroMQ, Textual or any other core module."""
    import sys

    allowed_core = ("strongroom.core.protocol", "strongroom.core.validation")
    bad: dict[str, list[str]] = {}
    for path in _modules("core/protocol"):
        hits = []
        for name in imports_of(path):
            top = name.split(".")[0]
            if name.startswith("strongroom"):
                if not name.startswith(allowed_core) and name not in PACKAGES:
                    hits.append(name)
            elif top not in ("pydantic", "__future__") and top not in sys.stdlib_module_names:
                hits.append(name)
        if hits:
            bad[str(path.relative_to(REPO))] = sorted(hits)
    assert bad == {}
    assert (REPO / "core/protocol/models").is_dir(), "the models moved: update this test"


def test_no_cli_command_module_borrows_another_ones_private_helpers():
    """A helper two commands share lives under a public name in the CLI's shared modules
    (__init__, options, transport), not as one command module's `_name` another reaches
    into (appointments.py once imported practice.py's `_call`, `_rows`...), so changing a
    command module never silently breaks a different one."""
    shared = {"strongroom.console.cli", "strongroom.console.cli.options", "strongroom.console.cli.transport",
              "strongroom.console.cli.lazy"}
    borrowed: dict[str, list[str]] = {}
    for path in _modules("console/cli"):
        tree = ast.parse(path.read_text(), filename=str(path))
        hits = sorted(f"{node.module}.{alias.name}" for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("strongroom.console.cli")
                      and node.module not in shared
                      for alias in node.names if alias.name.startswith("_"))
        if hits:
            borrowed[str(path.relative_to(REPO))] = hits
    assert borrowed == {}


def test_no_test_module_imports_another_test_module():
    """What several tests share lives in a conftest or a helper module (tests/**/conftest.py,
    tests/console/tui/live.py and fixed.py, cli_helpers.py, _engines.py...), never in a
    `test_*` module another one imports: running or changing one test file must not run
    or break another's collection."""
    borrowed: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        hits = sorted(name for name in imports_of(path)
                      if name.startswith("tests.") and any(part.startswith("test_") for part in name.split(".")))
        if hits:
            borrowed[str(path.relative_to(REPO))] = hits
    assert borrowed == {}
