"""The console without a daemon: the command's errors, import hygiene, help, and the
banner when nothing answers."""
from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner
from strongroom.console.app import StrongroomConsole
from strongroom.console.cli import CliState
from strongroom.console.cli.console_cmd import command
from strongroom.console.modals.help import HelpScreen
from strongroom.console.screens.login import LoginScreen
from strongroom.console.widgets.banner import ConnectionBanner
from strongroom.core.errors import AuthError
from textual.widgets import Static

from tests.console.tui.conftest import SIZE, drive, showing, tab_key, tab_keys, wait_for


def test_console_never_imports_the_database_layer():
    code = ("import sys, strongroom.console.app; "
            "bad = [m for m in sys.modules if m.startswith(('sqlalchemy', 'strongroom.core.db'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_token_from_operator_without_a_readable_token_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    sock = tmp_path / "run" / "control.sock"
    result = CliRunner().invoke(command, ["--socket", str(sock), "--token-from-operator"],
                                obj=CliState(None, None))
    assert isinstance(result.exception, AuthError)
    assert "no stored session and no readable operator token" in str(result.exception)


def test_help_lists_the_screens_own_keys():
    async def scenario():
        app = StrongroomConsole("ipc:///nonexistent/c.sock", "ipc:///nonexistent/e.sock")
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, LoginScreen)
            app.action_help()
            await wait_for(pilot, showing(app, HelpScreen), what="help")
            await pilot.pause()
            text = "\n".join(str(s.render()) for s in app.screen.query(Static))
            assert "Log in" in text and "Quit" in text and "Cursor" not in text
    drive(scenario, timeout=30)


def test_unreachable_daemon_shows_the_reconnect_banner():
    async def scenario():
        app = StrongroomConsole("ipc:///nonexistent/c.sock", "ipc:///nonexistent/e.sock", token="some-token")
        async with app.run_test(size=SIZE) as pilot:
            banner = app.screen.query_one(ConnectionBanner)
            await wait_for(pilot, lambda: banner.is_down, timeout=20, what="banner")
            assert "reconnecting" in str(banner.render())
            assert "no answer from the daemon" in str(banner.render())
    drive(scenario, timeout=40)


def test_command_palette_offers_the_enabled_actions_and_runs_them():
    from strongroom.console.screens.main import MainScreen

    from tests.console.tui.fixed import fixed_app

    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="main")
            await pilot.press(*tab_keys("jobs"))
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert "Reload" in titles and "Run job" not in titles   # the auditor may not run jobs
            await pilot.press(*tab_keys("audit"))
            await pilot.pause()
            assert {"Verify chain", "Newest", "Filter"} <= {c.title for c in app.get_system_commands(app.screen)}
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"verify chain")
            from textual.command import CommandList
            await wait_for(pilot, lambda: any(c.option_count for c in app.screen.query(CommandList)),
                           what="the palette's match")
            await pilot.press("enter")
            status = app.screen.query_one("#audit-status", Static)
            await wait_for(pilot, lambda: "chain: intact (5 checked)" in str(status.render()), what="verified")
    drive(scenario, timeout=30)


def test_every_tab_has_a_key_and_brackets_step_round():
    from strongroom.console.screens.main import TABS, MainScreen
    from textual.widgets import TabbedContent

    from tests.console.tui.fixed import fixed_app

    ids = [tab_id for _, tab_id, _ in TABS]

    async def scenario():
        app = fixed_app("fixed-token")
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="main")
            tabs = app.screen.query_one(TabbedContent)
            for tab_id in reversed(ids):                  # Jobs, the eleventh, included
                await pilot.press(tab_key(tab_id))
                await pilot.pause()
                assert tabs.active == f"tab-{tab_id}"
            assert tab_key("jobs") == "minus"
            for tab_id in ids[1:] + ids[:1]:              # ] steps on, and round to the first
                await pilot.press("right_square_bracket")
                await pilot.pause()
                assert tabs.active == f"tab-{tab_id}"
            await pilot.press("left_square_bracket")
            await pilot.pause()
            assert tabs.active == f"tab-{ids[-1]}"
    drive(scenario, timeout=30)
