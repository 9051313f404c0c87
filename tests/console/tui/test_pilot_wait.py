"""The console tests' Pilot waits for the screen as it is now (conftest's
wait_for_screen_in_rounds), so a widget that took Pilot's "are you done?" callback and
never ran it cannot stall a test for Textual's 30 s and fail it."""
from __future__ import annotations

import asyncio
import time

import pytest
from textual.app import App, ComposeResult
from textual.pilot import WaitForScreenTimeout
from textual.widgets import Static

from tests.console.tui.conftest import TEXTUAL_WAIT_FOR_SCREEN, drive, wait_for_screen_in_rounds


class Forgetful(Static):
    """Takes the first callback posted to it and drops it: what a widget that leaves the
    screen with the callback still queued amounts to for the one who posted it."""

    dropped = 0

    def call_later(self, callback, *args, **kwargs) -> bool:
        if not Forgetful.dropped:
            Forgetful.dropped += 1
            return True
        return super().call_later(callback, *args, **kwargs)


class OneWidget(App):
    def compose(self) -> ComposeResult:
        yield Forgetful("x")


@pytest.fixture(autouse=True)
def forgetting_once():
    Forgetful.dropped = 0


def test_textuals_own_wait_stalls_on_a_dropped_callback():
    async def scenario():
        async with OneWidget().run_test() as pilot:
            Forgetful.dropped = 0
            with pytest.raises(WaitForScreenTimeout):
                await TEXTUAL_WAIT_FOR_SCREEN(pilot, timeout=1.0)
    drive(scenario, timeout=30)


def test_waiting_in_rounds_asks_again_and_finishes_promptly():
    async def scenario():
        async with OneWidget().run_test() as pilot:
            Forgetful.dropped = 0
            started = time.monotonic()
            assert await wait_for_screen_in_rounds(pilot, round_seconds=0.2) is True
            assert Forgetful.dropped == 1
            assert time.monotonic() - started < 5
    drive(scenario, timeout=30)


def test_a_widget_that_never_answers_still_fails_the_wait():
    class Deaf(Static):
        deaf = False

        def call_later(self, callback, *args, **kwargs) -> bool:
            return True if Deaf.deaf else super().call_later(callback, *args, **kwargs)

    class DeafApp(App):
        def compose(self) -> ComposeResult:
            yield Deaf("x")

    async def scenario():
        async with DeafApp().run_test() as pilot:
            Deaf.deaf = True
            started = time.monotonic()
            with pytest.raises(WaitForScreenTimeout):
                await wait_for_screen_in_rounds(pilot, timeout=0.5, round_seconds=0.2, at_least=1.0)
            assert 1.0 <= time.monotonic() - started < 5
            Deaf.deaf = False       # run_test waits for the screen again as it closes
    drive(scenario, timeout=30)


def test_every_console_test_waits_in_rounds():
    from textual.pilot import Pilot

    assert Pilot._wait_for_screen is wait_for_screen_in_rounds
    assert asyncio.iscoroutinefunction(Pilot._wait_for_screen)
