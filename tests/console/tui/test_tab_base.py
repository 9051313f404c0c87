"""The tab base (console/tabs/base.py): an action's need decides whether its key is enabled
and why not, in the same words on every tab, and the event topics the tabs declare are what
the main screen subscribes to and routes by."""
from __future__ import annotations

import asyncio

from strongroom.console.helpers.identity import Identity
from strongroom.console.screens.main import STOPPING, TABS, TOPICS, routes
from strongroom.console.tabs.base import ANY, Job, Tab, handler, subscriptions
from textual.containers import Vertical

from tests.console.tui.fixed import FixedClient, fixed_app


class DemoTab(Tab, Vertical):
    NEEDS = {"revoke": "session:revoke", "backup": Job("backup"), "run_any": Job(ANY)}
    TOPICS = ("job.", "audit")

    def __init__(self) -> None:
        super().__init__()
        self.toasts: list[tuple[str, str]] = []

    def notify(self, message: str, *, severity: str = "information", **_) -> None:
        self.toasts.append((message, severity))


def logged_in(*permissions: str, kinds: tuple[str, ...] = ("backup", "integrity")) -> DemoTab:
    tab = DemoTab()
    tab.identity, tab.kinds = Identity("user:ana", permissions), list(kinds)
    return tab


def test_a_permission_need_enables_the_action_or_says_who_lacks_what():
    allowed, denied = logged_in("session:revoke"), logged_in("audit:read")
    assert allowed.why_not("revoke") is None and allowed.check_action("revoke", ()) is True
    assert denied.why_not("revoke") == "user:ana lacks session:revoke"
    assert denied.check_action("revoke", ()) is None          # shown, disabled
    assert denied.check_action("reload", ()) is True          # an action with no need is always offered


def test_a_job_need_asks_for_the_kind_on_this_daemon_and_the_right_to_run_it():
    assert logged_in("job:backup:run").why_not("backup") is None
    assert logged_in("job:*:run").why_not("backup") is None
    assert logged_in("job:integrity:run").why_not("backup") == "user:ana lacks job:backup:run"
    assert logged_in("job:backup:run", kinds=("integrity",)).why_not("backup") == "this daemon has no backup job"
    assert logged_in("job:integrity:run").why_not("run_any") is None
    assert logged_in("audit:read").why_not("run_any") == "user:ana lacks job:<kind>:run"


def test_before_login_every_need_is_unmet_and_a_refusal_says_why_once():
    tab = DemoTab()
    assert {tab.why_not(action) for action in DemoTab.NEEDS} == {"not logged in"}
    assert tab.refused("backup", saying="Cannot back up") is True
    assert tab.toasts == [("Cannot back up: not logged in", "warning")]
    assert logged_in("session:revoke").refused("revoke") is False


def test_the_topics_tabs_declare_are_subscribed_once_each_and_routed_to_their_apply_method():
    tabs = [tab for _, _, tab in TABS]
    # And the daemon's farewell, which the event pump itself handles (the banner goes up).
    assert TOPICS == (*subscriptions(tabs), STOPPING)
    assert set(TOPICS) == {"health", "job.", "audit", "security", "sync.", "compliance", "daemon.stopping"}
    for tab in tabs:
        for key in tab.TOPICS:
            assert callable(getattr(tab, handler(key), None)), f"{tab.__name__} lists {key} but has no {handler(key)}"
    job_tabs = [tab_id for _, tab_id, tab in TABS if "job." in tab.TOPICS]
    assert routes("job.01a2061f") == tuple((tab_id, "apply_job") for tab_id in job_tabs)
    assert routes("sync.conflict") == (("sync", "apply_sync"),)
    assert routes("jobs") == () and routes("sync") == ()   # a prefix names only what follows its dot

    class Listening(Tab):
        TOPICS = ("job.", "notify.")
    assert subscriptions([*tabs, Listening]) == (*subscriptions(tabs), "notify.")   # a new topic joins, once


def test_the_main_screen_subscribes_to_the_union_of_the_tabs_topics():
    subscribed: list[tuple[str, ...]] = []

    class Recording(FixedClient):
        def subscribe(self, *topics: str):
            subscribed.append(topics)
            return super().subscribe(*topics)

    async def run() -> None:
        app = fixed_app("fixed-token")
        app.client = Recording("fixed-token")
        async with app.run_test(size=(80, 24)) as pilot:
            for _ in range(200):
                if subscribed:
                    break
                await pilot.pause(0.01)

    asyncio.run(run())
    assert subscribed == [TOPICS]
