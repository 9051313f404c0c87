"""The main screen: a banner, the tabs and the footer; owns the one event worker.

Events arrive in `watch_daemon` (a single exclusive async worker), are posted to this
screen as messages and applied in `on_daemon_event`, which calls down into the tabs.
Silence on the event socket is checked with a `status` probe; an unreachable daemon
shows the banner and is retried with backoff until it answers, then every tab reloads.
"""
from __future__ import annotations

import asyncio

from strongroom.console.client import ClientError
from strongroom.console.screens.audit import AuditTab
from strongroom.console.screens.backups import BackupsTab
from strongroom.console.screens.compliance import ComplianceTab
from strongroom.console.screens.events import ConnectionLost, DaemonEvent, Reconnected
from strongroom.console.screens.exports import ExportsTab
from strongroom.console.screens.identity import Identity
from strongroom.console.screens.integrity import IntegrityTab
from strongroom.console.screens.jobs import JobsTab
from strongroom.console.screens.overview import OverviewTab
from strongroom.console.screens.retention import RetentionTab
from strongroom.console.screens.security import SecurityTab
from strongroom.console.screens.sync import SyncTab
from strongroom.console.screens.users import UsersTab
from strongroom.console.widgets.banner import ConnectionBanner
from strongroom.console.screens.workers import deliver, fetch, live, tab_work
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

TOPICS = ("health", "job.", "audit", "security", "sync.")
SILENCE_SECONDS = 6.0     # no event for this long: probe with `status`
PROBE_SECONDS = 3.0
MAX_BACKOFF_SECONDS = 15.0

# DESIGN §9's order, so each of its ten tabs has a digit; Jobs (every run, cancel) comes
# after them, a ] away from Users or a [ from Overview (which shows running jobs too).
TABS = (("Overview", "overview", OverviewTab), ("Backups", "backups", BackupsTab),
        ("Exports", "exports", ExportsTab), ("Sync", "sync", SyncTab),
        ("Retention", "retention", RetentionTab), ("Integrity", "integrity", IntegrityTab),
        ("Compliance", "compliance", ComplianceTab), ("Audit", "audit", AuditTab),
        ("Security", "security", SecurityTab), ("Users", "users", UsersTab), ("Jobs", "jobs", JobsTab))


# A terminal sends one key per digit: the first ten tabs have 1..9 and 0; any tab is
# reached with ] and [ (next, previous) or the command palette.
TAB_KEYS = "1234567890"

# Which tabs apply which event topic, and with which method (a topic ending in "." is a
# prefix: job.<run id>, sync.conflict, ...).
EVENT_ROUTES = {
    "health": (("overview", "apply_health"),),
    "job.": (("overview", "apply_job"), ("jobs", "apply_job"), ("backups", "apply_job"),
             ("integrity", "apply_job"), ("exports", "apply_job"), ("retention", "apply_job"),
             ("sync", "apply_job")),
    "audit": (("audit", "apply_audit"), ("retention", "apply_audit")),
    "sync.": (("sync", "apply_sync"),),
    "security": (("security", "apply_security"), ("users", "apply_security")),
}


def routes(topic: str) -> tuple[tuple[str, str], ...]:
    """The (tab id, method) pairs an event of `topic` is applied to."""
    for key, targets in EVENT_ROUTES.items():
        if topic == key or (key.endswith(".") and topic.startswith(key)):
            return targets
    return ()


class MainScreen(Screen):
    BINDINGS = [Binding(key, f"show_tab('{tab_id}')", f"Go to {title}", show=False)
                for key, (title, tab_id, _) in zip(TAB_KEYS, TABS)] + [
        Binding("right_square_bracket", "step_tab(1)", "Next tab", show=False),
        Binding("left_square_bracket", "step_tab(-1)", "Previous tab", show=False),
        Binding("f5", "reload", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.identity: Identity | None = None
        self.events_seen = 0       # events applied since this screen opened: the stream is live

    def compose(self) -> ComposeResult:
        yield Static("Strongroom", id="titlebar")
        yield ConnectionBanner(id="banner")
        with TabbedContent(id="tabs"):
            for title, tab_id, tab_class in TABS:
                with TabPane(f"{title}", id=f"tab-{tab_id}"):
                    yield tab_class(id=tab_id)
        yield Footer()

    def on_mount(self) -> None:
        self.load_identity()
        self.watch_daemon()

    def tabs(self) -> list:
        return [self.query_one(f"#{tab_id}") for _, tab_id, _ in TABS]

    # --- identity and reloads -----------------------------------------------------------

    @tab_work(exclusive=True, group="identity")
    async def load_identity(self) -> None:
        try:
            whoami = await fetch(self, "whoami", timeout=PROBE_SECONDS)
            status = await fetch(self, "status", timeout=PROBE_SECONDS)
        except ClientError as err:
            if err.code != "unauthenticated":
                self.query_one(ConnectionBanner).show_down(err.message, 1)
            return
        self.identity = Identity.from_whoami(whoami)
        self.query_one("#titlebar", Static).update(
            f"Strongroom · {self.identity.actor} · {status.get('host', '?')} · {status.get('role', '?')}")
        for tab in self.tabs():
            tab.set_identity(self.identity, status)
        self.refresh_bindings()

    def action_reload(self) -> None:
        self.load_identity()

    def action_show_tab(self, tab_id: str) -> None:
        self.query_one(TabbedContent).active = f"tab-{tab_id}"

    def action_step_tab(self, step: int) -> None:
        panes = [f"tab-{tab_id}" for _, tab_id, _ in TABS]
        tabs = self.query_one(TabbedContent)
        tabs.active = panes[(panes.index(tabs.active) + step) % len(panes)]

    @on(TabbedContent.TabActivated)
    def focus_tab(self, event: TabbedContent.TabActivated) -> None:
        tab = event.pane.query_one(f"#{event.pane.id.removeprefix('tab-')}")
        tab.focus_main()

    # --- events -------------------------------------------------------------------------

    @tab_work(exclusive=True, group="events")
    async def watch_daemon(self) -> None:
        client = self.app.client
        backoff = 1.0
        while True:
            reason = await self._pump(client.subscribe(*TOPICS))
            if reason is None:
                return  # the session ended; the app has gone back to the login screen
            while True:
                self.post_message(ConnectionLost(reason, backoff))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                try:
                    await fetch(self, "status", timeout=PROBE_SECONDS)
                    break
                except ClientError as err:
                    if err.code == "unauthenticated":
                        return
                    reason = err.message
            backoff = 1.0
            self.post_message(Reconnected())

    async def _pump(self, subscription) -> str | None:
        """Forward events until the daemon stops answering; returns why (None: logged out)."""
        try:
            while True:
                try:
                    topic, data = await asyncio.wait_for(subscription.recv(), SILENCE_SECONDS)
                except TimeoutError:
                    try:
                        await fetch(self, "status", timeout=PROBE_SECONDS)
                        continue
                    except ClientError as err:
                        return None if err.code == "unauthenticated" else err.message
                self.post_message(DaemonEvent(topic, data))
        finally:
            subscription.close()

    def on_daemon_event(self, event: DaemonEvent) -> None:
        """The one place where live data is applied to the tabs. Each tab gets it through
        `deliver`: at once when composed, after its compose when not yet, never once it
        is being torn down (an event can land at any of those moments)."""
        if not live(self):
            return
        self.events_seen += 1
        for tab_id, method in routes(event.topic):
            tab = self.query_one(f"#{tab_id}")
            deliver(tab, getattr(tab, method), event.data)

    def on_connection_lost(self, event: ConnectionLost) -> None:
        self.query_one(ConnectionBanner).show_down(event.reason, event.retry_in)

    def on_reconnected(self, event: Reconnected) -> None:
        self.query_one(ConnectionBanner).show_up()
        self.notify("Reconnected to the daemon.")
        self.load_identity()
