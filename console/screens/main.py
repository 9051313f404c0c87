"""The main screen: a banner, the tabs and the footer; owns the one event worker.

Events arrive in `watch_daemon` (a single exclusive async worker), are posted to this
screen as messages and applied in `on_daemon_event`, which calls down into the tabs.
Silence on the event socket is checked with a `status` probe; an unreachable daemon
shows the banner and is retried with backoff until it answers, then every tab reloads.
"""
from __future__ import annotations

import asyncio
import re
from datetime import datetime

from strongroom.console.client import ClientError
from strongroom.console.helpers.events import ConnectionLost, DaemonEvent, Reconnected
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.workers import deliver, fetch, live, tab_work
from strongroom.console.tabs import base
from strongroom.console.tabs.audit import AuditTab
from strongroom.console.tabs.backups import BackupsTab
from strongroom.console.tabs.compliance import ComplianceTab
from strongroom.console.tabs.exports import ExportsTab
from strongroom.console.tabs.integrity import IntegrityTab
from strongroom.console.tabs.jobs import JobsTab
from strongroom.console.tabs.overview import OverviewTab
from strongroom.console.tabs.reconcile import ReconcileTab
from strongroom.console.tabs.retention import RetentionTab
from strongroom.console.tabs.security import SecurityTab
from strongroom.console.tabs.sync import SyncTab
from strongroom.console.tabs.users import UsersTab
from strongroom.console.widgets.banner import ConnectionBanner
from strongroom.console.widgets.key_footer import KeyFooter
from strongroom.console.widgets.list_filter import ListFilter
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.css.query import NoMatches
from textual.widgets import DataTable, Input, Static, TabbedContent, TabPane, Tabs
from textual.widgets._toast import Toast, ToastRack

# What a row key must look like to be copied as an id: a UUID, or a number (audit entries,
# security events).
ID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9]+")

SILENCE_SECONDS = 6.0     # no event for this long: probe with `status`
PROBE_SECONDS = 3.0
MAX_BACKOFF_SECONDS = 15.0
FOOTER_ROWS = 1           # toasts on a tab without a hint line stand on the footer

# DESIGN §9's order, so each of its ten tabs has a digit; Jobs (every run, cancel) comes
# after them, a ] away from Users, then Reconcile (duplicate clients), a [ from Overview.
TABS = (("Overview", "overview", OverviewTab), ("Backups", "backups", BackupsTab),
        ("Exports", "exports", ExportsTab), ("Sync", "sync", SyncTab),
        ("Retention", "retention", RetentionTab), ("Integrity", "integrity", IntegrityTab),
        ("Compliance", "compliance", ComplianceTab), ("Audit", "audit", AuditTab),
        ("Security", "security", SecurityTab), ("Users", "users", UsersTab), ("Jobs", "jobs", JobsTab),
        ("Reconcile", "reconcile", ReconcileTab))


# One key per tab along the keyboard's top row: 1..9, 0, - (Jobs) and = (Reconcile); any
# tab is also reached with ] and [ (next, previous) or the command palette.
TAB_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "minus", "equals_sign")

# What the event worker subscribes to: every topic some tab lists in its TOPICS (a topic
# ending in "." is a prefix: job.<run id>, sync.conflict, ...), so a tab that starts
# listening to a topic is subscribed and routed to by saying so in its own module.
STOPPING = "daemon.stopping"      # the daemon's last event before it shuts down
STOPPING_REASON = "the daemon is stopping"
TOPICS = (*base.subscriptions(tab for _, _, tab in TABS), STOPPING)


def routes(topic: str) -> tuple[tuple[str, str], ...]:
    """The (tab id, method) pairs an event of `topic` is applied to, in the tabs' order."""
    return base.routes(((tab_id, tab) for _, tab_id, tab in TABS), topic)


class MainScreen(Screen):
    BINDINGS = [Binding(key, f"show_tab('{tab_id}')", f"Go to {title}", show=False)
                for key, (title, tab_id, _) in zip(TAB_KEYS, TABS)] + [
        Binding("right_square_bracket", "step_tab(1)", "Next tab", show=False, key_display="]"),
        Binding("left_square_bracket", "step_tab(-1)", "Previous tab", show=False, key_display="["),
        Binding("f5", "reload", "Refresh"),
        Binding("y", "copy_id", "Copy id", show=False),
        Binding("slash", "filter_list", "Filter list", key_display="/", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.identity: Identity | None = None
        self.events_seen = 0       # events applied since this screen opened: the stream is live
        self.connected = False     # the event stream answers (set by the first event or probe)
        self.updated_at: datetime | None = None   # when live data last reached a tab
        self._filtering: ListTable | None = None  # the list the `/` bar narrows
        self.toast_rows: int | None = None        # rows toasts may take (keep_toasts_above_hint)

    def compose(self) -> ComposeResult:
        with Horizontal(id="topline"):
            yield Plain("Strongroom", id="titlebar")
            yield Plain("events: connecting…", id="statusline")
        yield ConnectionBanner(id="banner")
        with TabbedContent(id="tabs"):
            for title, tab_id, tab_class in TABS:
                with TabPane(f"{title}", id=f"tab-{tab_id}"):
                    yield tab_class(id=tab_id)
        yield ListFilter(id="list-filter")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.load_identity()
        self.watch_daemon()
        self.call_after_refresh(self.app.settle_heap)

    def show_status(self) -> None:
        """The status line: whether events flow, and when the view last took live data."""
        stamp = self.updated_at.strftime("%H:%M:%S") if self.updated_at else "never"
        state = "live" if self.connected else "disconnected"
        self.query_one("#statusline", Static).update(f"● {state} · updated {stamp}" if self.connected
                                                      else f"○ {state} · updated {stamp}")
        self.query_one("#statusline", Static).set_class(not self.connected, "-down")

    def touched(self) -> None:
        """Live data was just applied (an event, a reload after reconnecting)."""
        self.connected = True
        self.updated_at = self.app.clock()
        self.show_status()

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
        self.touched()
        self.query_one("#titlebar", Static).update(
            f"Strongroom · {self.identity.actor} · {status.get('host', '?')} · {status.get('role', '?')}")
        for tab in self.tabs():
            tab.set_identity(self.identity, status)
        self.refresh_bindings()

    def action_reload(self) -> None:
        self.load_identity()

    def action_copy_id(self) -> None:
        """The full id of the focused list's selected row to the clipboard, so a person
        can go on in the CLI (`strongroom ... <id>`). Rows keyed by something else (a
        check's position) have no id to copy, and the console says so."""
        table = self.focused if isinstance(self.focused, DataTable) else None
        if table is None or not table.row_count:
            self.notify("No row selected: move to a list first.", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if not key or not ID_PATTERN.fullmatch(key):
            self.notify("This list's rows have no id to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(key)
        self.notify(f"Copied id {key}")

    # --- `/`: filter the active tab's list ----------------------------------------------

    def filtered_table(self) -> ListTable | None:
        """The list `/` narrows: the focused one on the active tab, else that tab's first.
        (Focus moves after a tab is shown: the list still focused may be the last tab's.)"""
        pane = self.query_one(TabbedContent).active_pane
        if pane is None:
            return None
        if isinstance(self.focused, ListTable) and pane in self.focused.ancestors:
            return self.focused
        found = pane.query(ListTable)
        return found.first() if found else None

    def action_filter_list(self) -> None:
        table = self.filtered_table()
        if table is None:
            self.notify("This tab has no list to filter.", severity="warning")
            return
        self._filtering = table
        self.query_one(ListFilter).show(table.filter_text)
        self._count_shown(table)

    @on(Input.Changed, "#list-filter")
    def narrow(self, event: Input.Changed) -> None:
        table = self._filtering
        if table is not None and table.is_attached:
            table.set_filter(event.value)
            self._count_shown(table)

    @on(Input.Submitted, "#list-filter")
    def back_to_list(self, event: Input.Submitted) -> None:
        event.stop()
        table = self._filtering
        if not event.value.strip():
            self.query_one(ListFilter).hide()
        if table is not None and table.is_attached:
            table.focus()

    @on(ListFilter.Cleared)
    def filter_cleared(self, event: ListFilter.Cleared) -> None:
        table = self._filtering
        if table is not None and table.is_attached:
            table.set_filter("")
            table.focus()

    def _count_shown(self, table: ListTable) -> None:
        self.query_one(ListFilter).border_title = f"{table.row_count} of {table.total_rows} rows"

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
        self.call_after_refresh(self.keep_toasts_above_hint)
        # The bar shows the filter of the tab now shown, if its list has one.
        bar, table = self.query_one(ListFilter), self.filtered_table()
        self._filtering = table
        if table is not None and table.filter_text:
            bar.value = table.filter_text
            bar.add_class("-shown")
            self._count_shown(table)
        else:
            bar.hide()

    # --- toasts -------------------------------------------------------------------------

    def on_resize(self) -> None:
        self.call_after_refresh(self.keep_toasts_above_hint)

    def keep_toasts_above_hint(self) -> None:
        """Toasts stand on the shown tab's hint line: the rack is docked at the bottom
        (newest toast lowest, older ones stacking up) with its bottom edge just above
        that line, so no toast covers the keys and reasons read there (one stayed over
        Backups' hints for 88 s) and the newest is always whole. Hint lines sit at
        different heights (Security's under its sessions table, Users' under its list,
        lower on a taller terminal), so the edge follows the tab shown and the size: set
        when a tab is shown, on a resize, and before each toast. A tab without a hint
        line has its toasts above the footer."""
        try:
            rack = self.get_child_by_type(ToastRack)
        except NoMatches:
            return                                   # notifications are off (tests)
        pane = self.query_one(TabbedContent).active
        tab = self.query_one(f"#{pane.removeprefix('tab-')}") if pane else None
        hint = self.query_one(f"#{tab.NOTE}") if isinstance(tab, base.Tab) and tab.NOTE else None
        if hint is None or not hint.region.height:
            below = FOOTER_ROWS
        else:
            below = max(self.size.height - hint.region.y, FOOTER_ROWS)
        rack.styles.margin = (0, 0, below, 0)
        # Nor may the pile reach the tab bar: fit_toasts keeps what fits these rows.
        self.toast_rows = self.size.height - below - self.query_one(Tabs).region.bottom

    def fit_toasts(self, tries: int = 25) -> None:
        """Once the toasts are laid out: collapse the oldest into the newest's "+N more"
        until the rest fit the rows the rack may take (a tab whose hint line sits high, like Security's at 80x24, has
        room for one or two), so the newest is in full view. The rack cannot scroll to
        it (Textual keeps it hidden, only its toasts are drawn), and a rack bounded in
        height laid its toasts out below its own bottom edge.

        Only toasts still shown count. A collapsed one stays in the rack until the app
        redraws the rack, a callback on the app's queue that a loaded machine runs late;
        measured, it kept the pile "too tall", was dropped again (a no-op) and asked for
        another pass, which the screen ran from its own queue before the app ever got
        its turn: a livelock. Every further pass also spends `tries`."""
        if not tries:
            return
        try:
            rack = self.get_child_by_type(ToastRack)
        except NoMatches:
            return
        toasts = [toast for toast in rack.query(Toast) if self.app.is_shown(toast._notification)]
        if not toasts or any(not toast.outer_size.height for toast in toasts):
            # Not mounted or laid out yet (the rack mounts them later, in a call of
            # its own): look again shortly, for up to half a second.
            self.set_timer(0.02, lambda: self.fit_toasts(tries - 1))
            return
        retitled = [toast for toast in toasts if toast._notification.identity in self.app.retitled]
        self.app.retitled.clear()
        if retitled:
            # A "+N more" moved to the newest: redraw those toasts, measure once laid out.
            for toast in retitled:
                toast.refresh(layout=True)
            self.call_after_refresh(self.fit_toasts, tries - 1)
            return
        room = self.toast_rows if self.toast_rows is not None else self.size.height
        heights = [toast.outer_size.height + toast.styles.margin.top for toast in toasts]
        dropped = False
        while len(heights) > 1 and sum(heights) > room:
            self.app.forget_toast(toasts.pop(0)._notification, toasts[-1]._notification)
            heights.pop(0)
            dropped = True
        if dropped:
            # The newest now says "+N more" in its title, which may take a row of its own:
            # measure again once it is redrawn (a pass that drops nothing ends it).
            self.call_after_refresh(self.fit_toasts, tries - 1)

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
                    status = await fetch(self, "status", timeout=PROBE_SECONDS)
                except ClientError as err:
                    if err.code == "unauthenticated":
                        return
                    reason = err.message
                    continue
                if not status.get("stopping"):
                    break
                # Still the daemon that said it is stopping, draining its jobs: not back.
                reason = STOPPING_REASON
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
                if topic == STOPPING:
                    return STOPPING_REASON
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
        self.touched()
        for tab_id, method in routes(event.topic):
            tab = self.query_one(f"#{tab_id}")
            deliver(tab, getattr(tab, method), event.data)

    def on_connection_lost(self, event: ConnectionLost) -> None:
        self.query_one(ConnectionBanner).show_down(event.reason, event.retry_in)
        self.connected = False
        self.show_status()

    def on_reconnected(self, event: Reconnected) -> None:
        self.query_one(ConnectionBanner).show_up()
        self.notify("Reconnected to the daemon.")
        self.load_identity()
