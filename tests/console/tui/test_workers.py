"""A tab's worker and live events never race the tab's own life: a daemon answer that
lands while the tab is being torn down is dropped, an event for a tab not yet composed
waits for its compose, and a query for a widget that was never there still fails loudly.
A refusal met through `ask` is shown as a toast and ends the worker, nothing more."""
from __future__ import annotations

import asyncio

import pytest
from strongroom.console.client import ClientError
from strongroom.console.helpers.workers import TabGone, ask, deliver, fetch, live, tab_work
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual.worker import WorkerFailed


class SlowDaemon:
    """Stands in for `app.call`: answers when the test says so."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()

    async def call(self, cmd: str, args=None, *, timeout=None):
        await self.answer.wait()
        return {"cmd": cmd}


class Table(DataTable):
    """A table that lets the test act at the moment it is removed."""

    def on_unmount(self) -> None:
        hook = getattr(self.app, "on_table_removed", None)
        if hook:
            hook()


class SlowToLeave(Static):
    """A child whose removal takes a while, as a compound widget's (the Audit tab's
    filter bar, with its inputs) does: the tab keeps it while its table is gone."""

    async def on_unmount(self) -> None:
        await asyncio.sleep(0.2)


class Tab(Vertical):
    def __init__(self) -> None:
        super().__init__()
        self.shown: list = []
        self.applied: list = []

    def compose(self) -> ComposeResult:
        yield SlowToLeave("", id="head")
        yield Table()
        yield Static("", id="status")

    @tab_work(exclusive=True, group="t")
    async def load(self, selector: str = "DataTable") -> None:
        answer = await fetch(self, "audit.tail")
        self.query_one(selector)
        self.shown.append(answer)

    def apply(self, data: dict) -> None:
        self.query_one("#status", Static).update(str(data))
        self.applied.append(data)


class Harness(App):
    def __init__(self) -> None:
        super().__init__()
        self.daemon = SlowDaemon()
        self.on_table_removed = None

    async def call(self, cmd: str, args=None, *, timeout=None):
        return await self.daemon.call(cmd, args, timeout=timeout)

    def compose(self) -> ComposeResult:
        yield Tab()


def test_an_answer_landing_while_the_tab_is_torn_down_is_dropped():
    """The CI failure: the tab's table is already gone, its other children are not, and
    the worker resumes in between. It must end quietly, and the app keep running."""
    async def scenario():
        app = Harness()
        async with app.run_test() as pilot:
            tab = app.query_one(Tab)
            worker = tab.load()
            await pilot.pause()
            app.on_table_removed = app.daemon.answer.set     # the answer lands mid-teardown
            await tab.remove()
            await worker.wait()
            await pilot.pause()
            assert tab.shown == [] and app.is_running
    asyncio.run(scenario())


def test_an_answer_for_a_live_tab_is_applied():
    async def scenario():
        app = Harness()
        async with app.run_test() as pilot:
            tab = app.query_one(Tab)
            worker = tab.load()
            app.daemon.answer.set()
            await worker.wait()
            assert tab.shown == [{"cmd": "audit.tail"}]
    asyncio.run(scenario())


def test_fetch_raises_tab_gone_rather_than_answer_for_a_removed_tab():
    async def scenario():
        app = Harness()
        async with app.run_test():
            tab = app.query_one(Tab)
            pending = asyncio.ensure_future(fetch(tab, "health"))
            await tab.remove()
            app.daemon.answer.set()
            with pytest.raises(TabGone):
                await pending
    asyncio.run(scenario())


def test_a_query_for_a_widget_that_never_existed_still_fails():
    async def scenario():
        app = Harness()
        with pytest.raises(WorkerFailed):
            async with app.run_test() as pilot:
                tab = app.query_one(Tab)
                tab.load("#no-such-widget")
                app.daemon.answer.set()
                await pilot.pause(0.2)
    asyncio.run(scenario())


def test_an_event_for_a_tab_not_yet_composed_is_applied_once_it_is():
    async def scenario():
        app = Harness()
        async with app.run_test() as pilot:
            late = Tab()
            mounting = app.mount(late)
            assert late.is_attached and not live(late)
            deliver(late, late.apply, {"topic": "audit"})
            await mounting
            await pilot.pause()
            assert late.applied == [{"topic": "audit"}]
            assert "audit" in str(late.query_one("#status", Static).render())
    asyncio.run(scenario())


def test_an_event_for_a_tab_being_torn_down_is_dropped():
    async def scenario():
        app = Harness()
        async with app.run_test() as pilot:
            tab = app.query_one(Tab)
            app.on_table_removed = lambda: deliver(tab, tab.apply, {"topic": "audit"})
            await tab.remove()
            deliver(tab, tab.apply, {"topic": "health"})            # and after it is gone
            await pilot.pause()
            assert tab.applied == [] and app.is_running
    asyncio.run(scenario())


class RefusingTab(Tab):
    @tab_work(group="r")
    async def start(self) -> None:
        await ask(self, "job.run", {"kind": "backup"}, failing="Could not start backup")
        self.shown.append("started")          # never reached after a refusal


class RefusingHarness(Harness):
    async def call(self, cmd: str, args=None, *, timeout=None):
        raise ClientError("forbidden", "user:x lacks job:backup:run")

    def compose(self) -> ComposeResult:
        yield RefusingTab()


def test_a_refusal_asked_for_is_shown_as_a_toast_and_ends_the_worker_quietly():
    async def scenario():
        app = RefusingHarness()
        async with app.run_test() as pilot:
            tab = app.query_one(RefusingTab)
            worker = tab.start()
            await worker.wait()
            await pilot.pause()
            toasts = [n.message for n in app._notifications]
            assert toasts == ["Could not start backup: user:x lacks job:backup:run"]
            assert tab.shown == [] and app.is_running
    asyncio.run(scenario())
