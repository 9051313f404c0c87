"""The console against a real daemon subprocess, driven with Textual's Pilot at 80x24."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.daemon.conftest import PASSWORD, DaemonProcess, make_data_dir

FAST_HEALTH = "\n[daemon]\nhealth_interval_seconds = 0.5\n"
SIZE = (80, 24)


@pytest.fixture
def tui_data_dir(tmp_path, db_url):
    return make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)


@pytest.fixture
def tui_daemon(tui_data_dir, tmp_path):
    proc = DaemonProcess(tui_data_dir, tmp_path)
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `predicate()` holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


async def log_in(pilot, username: str = "auditor1", password: str = PASSWORD) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.query("#username"), what="login form")
    await pilot.click("#username")
    await pilot.press(*username)
    await pilot.press("enter")          # moves to the password field
    await pilot.press(*password)
    await pilot.press("enter")


def drive(scenario, timeout: float = 90.0) -> None:
    """Run one async Pilot scenario to the end, or fail after `timeout` seconds (there is
    no async pytest plugin here, and every test must be bounded)."""
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def in_thread(fn, *args):
    """Blocking helpers (DaemonProcess.call, starting daemons) off the app's loop."""
    return asyncio.to_thread(fn, *args)
