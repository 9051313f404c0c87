"""A daemon reply that lands after its tab was torn down is dropped; a query for a
widget that was never there still fails loudly."""
from __future__ import annotations

import asyncio

import pytest
from strongroom.console.screens.workers import tab_work
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual.worker import WorkerFailed


class Tab(Vertical):
    def __init__(self) -> None:
        super().__init__()
        self.reply = asyncio.Event()
        self.shown = False

    def compose(self) -> ComposeResult:
        yield DataTable()
        yield Static("", id="status")

    @tab_work(exclusive=True, group="t")
    async def load(self, selector: str = "DataTable") -> None:
        await self.reply.wait()                 # the daemon call
        self.query_one(selector)
        self.shown = True


class Harness(App):
    def compose(self) -> ComposeResult:
        yield Tab()


def test_a_reply_after_the_tab_lost_its_widgets_is_dropped():
    async def scenario():
        app = Harness()
        async with app.run_test() as pilot:
            tab = app.query_one(Tab)
            worker = tab.load()
            await tab.query_one(DataTable).remove()
            await tab.query_one("#status").remove()   # torn down, children first
            tab.reply.set()
            await worker.wait()
            await pilot.pause()
            assert not tab.shown and app.is_running
    asyncio.run(scenario())


def test_a_query_for_a_widget_that_never_existed_still_fails():
    async def scenario():
        app = Harness()
        with pytest.raises(WorkerFailed):
            async with app.run_test() as pilot:
                tab = app.query_one(Tab)
                tab.load("#no-such-widget")
                tab.reply.set()
                await pilot.pause(0.2)
    asyncio.run(scenario())
