"""The console never panics on a timing race: opened against a real daemon many times,
tabs switched as fast as keys arrive while job progress, audit entries, health and sync
resolutions stream in, and quit at a different moment of loading each time.

A panic (a worker failing on a half-composed or half-removed tab) ends `run_test` with
the exception, so each round passing is the proof; the rounds also count the events the
console applied, so the test cannot pass by having raced nothing."""
from __future__ import annotations

import asyncio
import os
import random

import pytest

from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.main import TAB_KEYS, MainScreen

from tests.console.tui.conftest import SIZE, drive, in_thread, wait_for

ROUNDS = int(os.environ.get("STRONGROOM_STRESS_ROUNDS", "6"))
KEYS = tuple(TAB_KEYS) + ("left_square_bracket", "right_square_bracket", "f5")


@pytest.mark.slow
def test_rapid_tab_switching_while_events_arrive_never_panics(sync_daemon):
    drive(lambda: _stress(sync_daemon), timeout=60 + 20 * ROUNDS)


async def _stress(daemon):
    conflicts = list(daemon.seeded["conflicts"])
    token = daemon.local_token()
    applied = 0
    for round_no in range(ROUNDS):
        rng = random.Random(round_no)
        app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)
        events = None
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.is_mounted,
                           what="main screen")
            screen = app.screen
            if round_no % 2:
                # Every other round lets the event stream connect first, so events land
                # among the key presses; the others quit while the first loads are in flight.
                await wait_for(pilot, lambda: screen.events_seen > 0, what="the event stream")
            events = asyncio.ensure_future(_make_events(daemon, conflicts, round_no))
            for _ in range(rng.randrange(5, 60)):
                app.simulate_key(rng.choice(KEYS))        # as fast as a terminal sends them
                await asyncio.sleep(rng.choice((0, 0, 0.001, 0.01)))
            if round_no % 2:
                await events
                await asyncio.sleep(rng.choice((0, 0.02, 0.1)))
            applied += screen.events_seen
            app.simulate_key("q")                          # quit mid-load
            await pilot.pause()
        await events
        assert app.return_code in (0, None), f"round {round_no}: the console ended with {app.return_code}"
    assert applied > 0, "no event reached the console: the race was not exercised"


async def _make_events(daemon, conflicts: list[str], round_no: int) -> None:
    """What a busy daemon publishes: a job's progress and its audit entries, and (while
    any is left) a conflict resolved from another client."""
    await in_thread(daemon.call, "job.run", {"kind": "integrity"})
    await in_thread(daemon.call, "audit.tail", {"limit": 5})
    if conflicts and round_no % 3 == 1:
        conflict = conflicts.pop()
        detail = await in_thread(daemon.call, "sync.conflict.get", {"conflict_id": conflict})
        await in_thread(daemon.call, "sync.conflict.resolve",
                        {"conflict_id": conflict, "choices": {n: "remote" for n in detail["fields"]}})
