"""Audit: a keyset-paged browser over audit.tail (before_id), filters, entry detail and
an on-demand chain check. Pages never count or offset, so 1M rows page as fast as 100."""
from __future__ import annotations

from strongroom.console.client import ClientError
from strongroom.console.helpers.text import when
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.detail import DetailScreen
from strongroom.console.tabs.base import Tab
from strongroom.console.widgets.filter_bar import AuditFilter, FilterBar
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

PAGE_SIZE = 50
# Fixed widths: the table never measures cells to size columns (a page change stays cheap).
COLUMNS = (("ID", "id", 9), ("When", "when", 19), ("Actor", "actor", 14), ("Action", "action", 10),
           ("Table", "table", 12), ("Outcome", "outcome", 8))


class AuditTab(Tab, Vertical):
    BINDINGS = [Binding("n", "older", "Older page"), Binding("p", "newer", "Newer page"),
                Binding("g", "newest", "Newest"), Binding("slash", "filter", "Filter", key_display="/"),
                Binding("v", "verify", "Verify chain")]
    NEEDS = {action: "audit:read" for action in ("older", "newer", "newest", "verify", "filter")}
    TOPICS = ("audit",)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter = AuditFilter()
        self.before_id: int | None = None       # the page shown starts below this id
        self.history: list[int | None] = []     # before_ids of the newer pages, for `p`
        self.entries: dict[str, dict] = {}
        self.last_id: int | None = None         # the oldest id on this page
        self.full_page = False
        self._paging: tuple[bool, bool] | None = None
        self.new_since = 0
        self.chain = "chain: not checked (v verifies)"

    def compose(self) -> ComposeResult:
        yield FilterBar(id="audit-filter")
        yield ListTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="audit-status", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if super().check_action(action, parameters) is None:
            return None
        if action == "older" and not self.full_page:
            return None
        if action == "newer" and not self.history:
            return None
        return True

    @tab_work(exclusive=True, group="audit")
    async def load(self) -> None:
        """The page below `before_id` (the newest page when None), with the filter."""
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#audit-status", Static).update(f"Audit log hidden: {reason}")
            return
        args = {"limit": PAGE_SIZE, **self.filter.as_args()}
        if self.before_id is not None:
            args["before_id"] = self.before_id
        try:
            rows = await fetch(self, "audit.tail", args)
        except ClientError as err:
            self.query_one("#audit-status", Static).update(f"Could not load: {err.message}")
            return
        self.show_rows(rows)

    def show_rows(self, rows: list[dict]) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        self.entries = {}
        for row in rows:
            key = str(row["id"])
            self.entries[key] = row
            table.add_row(key, when(row.get("occurred_at")), row.get("actor") or "", row.get("action") or "",
                          row.get("table_name") or "", row.get("outcome") or "", key=key)
        if rows:
            table.move_cursor(row=min(cursor, len(rows) - 1))
        self.last_id = rows[-1]["id"] if rows else None
        self.full_page = len(rows) == PAGE_SIZE
        if self.before_id is None:
            self.new_since = 0
        paging = (self.full_page, bool(self.history))
        if paging != self._paging:     # the footer rebuilds on every refresh: only when it changes
            self._paging = paging
            self.refresh_bindings()
        self.show_status()

    def show_status(self) -> None:
        ids = f"ids {self.entries and max(map(int, self.entries))}–{self.last_id}" if self.entries else "no entries"
        page = f"page {len(self.history) + 1}"
        fresh = f" · {self.new_since} new (g)" if self.new_since else ""
        self.query_one("#audit-status", Static).update(f"{page} · {ids}{fresh} · {self.chain}")

    # --- paging (keyset: older pages start below the oldest id shown) ---------------------

    def action_older(self) -> None:
        if not self.full_page or self.last_id is None:
            return
        self.history.append(self.before_id)
        self.before_id = self.last_id
        self.load()

    def action_newer(self) -> None:
        if not self.history:
            return
        self.before_id = self.history.pop()
        self.load()

    def action_newest(self) -> None:
        self.history, self.before_id = [], None
        self.load()

    def action_filter(self) -> None:
        self.query_one("#f-actor").focus()

    @on(FilterBar.FilterChanged)
    def apply_filter(self, event: FilterBar.FilterChanged) -> None:
        self.filter = event.value
        self.action_newest()
        self.focus_main()

    @on(DataTable.RowSelected, "#audit-table")
    def show_entry(self, event: DataTable.RowSelected) -> None:
        entry = self.entries.get(event.row_key.value)
        if entry is not None:
            self.app.push_screen(DetailScreen(f"Audit entry {entry['id']}", entry))

    # --- chain check --------------------------------------------------------------------

    def action_verify(self) -> None:
        self.verify()

    @tab_work(exclusive=True, group="audit-verify")
    async def verify(self) -> None:
        self.chain = "chain: verifying…"
        self.show_status()
        try:
            result = await fetch(self, "audit.verify", timeout=300)
        except ClientError as err:
            self.chain = f"chain: check failed ({err.message})"
        else:
            self.chain = (f"chain: intact ({result['checked']} checked)" if result["ok"]
                          else f"chain: BROKEN at id {result['broken_id']}: {result.get('reason')}")
        self.show_status()

    def apply_audit(self, data: dict) -> None:
        """A new entry: counted, not inserted, so the page being read does not move."""
        if self.identity is None or not self.identity.can("audit:read"):
            return
        self.new_since += 1
        if self.before_id is None and not self.filter.as_args():
            self.load()
        else:
            self.show_status()
