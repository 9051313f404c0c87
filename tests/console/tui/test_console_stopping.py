"""A daemon that says it is stopping: the console shows the reconnect banner at once, and
keeps it while that daemon still answers only to drain its jobs; it reconnects to a
daemon that is not stopping."""
from __future__ import annotations

import asyncio

from strongroom.console.screens.main import MainScreen, STOPPING
from strongroom.console.widgets.banner import ConnectionBanner

from tests.console.tui.conftest import SIZE, drive, wait_for
from tests.console.tui.fixed import FIXED, FixedClient, fixed_app


class Farewell:
    """A subscription whose only event is the daemon's daemon.stopping."""

    def __init__(self) -> None:
        self.sent = False

    async def recv(self):
        if not self.sent:
            self.sent = True
            return STOPPING, {"grace_seconds": 30.0}
        await asyncio.Event().wait()

    def close(self) -> None:
        pass


class Draining(FixedClient):
    """The daemon's status says `stopping` for the first `draining` probes after its
    farewell (jobs still reaching a safe point), then a daemon that is not stopping answers."""

    def __init__(self, token: str | None, draining: int) -> None:
        super().__init__(token)
        self.draining = draining
        self.subscriptions = 0
        self.probes_after_farewell = 0

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd == "status" and self.subscriptions:
            self.probes_after_farewell += 1
            return {**FIXED["status"], "stopping": self.probes_after_farewell <= self.draining}
        return await super().call(cmd, args, timeout=timeout)

    def subscribe(self, *topics: str):
        self.subscriptions += 1
        return Farewell() if self.subscriptions == 1 else super().subscribe(*topics)


def test_the_banner_goes_up_on_the_farewell_and_stays_while_the_daemon_drains():
    async def scenario() -> None:
        app = fixed_app("fixed-token")
        client = app.client = Draining("fixed-token", draining=1)
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="main screen")
            banner = app.screen.query_one(ConnectionBanner)
            await wait_for(pilot, lambda: banner.is_down, timeout=2, what="the banner on the farewell")
            assert "the daemon is stopping" in str(banner.render())
            await wait_for(pilot, lambda: client.probes_after_farewell >= 1, what="the first probe")
            await pilot.pause(0.2)
            assert banner.is_down and "the daemon is stopping" in str(banner.render())   # still draining
            await wait_for(pilot, lambda: not banner.is_down, timeout=10, what="the reconnect")
            assert client.probes_after_farewell >= 2 and client.subscriptions == 2

    drive(scenario)
