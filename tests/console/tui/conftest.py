"""The console against a real daemon subprocess, driven with Textual's Pilot at 80x24."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.daemon.conftest import FAST_HEALTH, PASSWORD, make_data_dir, running_daemon

SIZE = (80, 24)


@pytest.fixture
def tui_data_dir(tmp_path, db_url):
    return make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)


@pytest.fixture
def tui_daemon(tui_data_dir, tmp_path):
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


def seed_demo_data(data_dir, clients: int = 12, sessions_per_client: int = 2) -> None:
    """Synthetic clients and sessions (core.demo: nobody's data) written straight into the
    test's database, so integrity and backups have protected rows to work on."""
    import itertools

    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction
    from strongroom.core.demo import client_records, session_records
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository.clients import insert_clients
    from strongroom.core.repository.practices import only_practice
    from strongroom.core.repository.sessions import insert_sessions

    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            created: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn),
                           itertools.islice(client_records(clients), clients), created=created)
            insert_sessions(conn, ctx.keyring, SYSTEM, session_records(created, sessions_per_client))
    finally:
        ctx.close()


@pytest.fixture
def demo_daemon(tui_data_dir, tmp_path):
    """A daemon over a data directory holding demo clients and sessions."""
    seed_demo_data(tui_data_dir)
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


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
