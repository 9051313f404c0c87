"""Security: active login sessions (revoke with `x`) above the security event log."""
from __future__ import annotations

from strongroom.console.helpers.text import when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.tabs.base import Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain, PlainLabel
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

SESSION_COLUMNS = (("User", "user"), ("Host", "host"), ("Address", "addr"), ("Program", "program"),
                   ("Last seen", "seen"))
EVENT_COLUMNS = (("When", "when"), ("Type", "type"), ("Sev", "severity"), ("User", "user"),
                 ("Description", "description"))


class SecurityTab(Tab, Vertical):
    BINDINGS = [Binding("x", "revoke", "Revoke session"), Binding("ctrl+r", "reload", "Reload")]
    NEEDS = {"revoke": "session:revoke"}
    TOPICS = ("security",)
    NOTE = "sessions-note"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sessions: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield PlainLabel("Active sessions", classes="section")
        yield ListTable(id="sessions-table", cursor_type="row")
        yield Plain("", id="sessions-note", classes="muted")
        yield PlainLabel("Security events", classes="section")
        yield ListTable(id="events-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for table_id, columns in (("#sessions-table", SESSION_COLUMNS), ("#events-table", EVENT_COLUMNS)):
            add_columns(self.query_one(table_id, DataTable), columns)

    def note(self) -> str:
        reason = self.why_not("revoke")
        return f"x: revoke disabled ({reason})" if reason else "x: revoke the selected session"

    @tab_work(exclusive=True, group="security")
    async def load(self) -> None:
        reason = self.identity.why_not("security:read")
        if reason:
            self.query_one("#sessions-note", Static).update(f"Security views hidden: {reason}")
            return
        sessions = await ask(self, "session.list", failing="Security")
        events = await ask(self, "security.event.list", {"limit": 100}, failing="Security")
        table = self.query_one("#sessions-table", DataTable)
        table.clear()
        self.sessions = {}
        for s in sessions:
            self.sessions[s["id"]] = s
            you = " (you)" if s["id"] == self.identity.session_id else ""
            table.add_row(f"{s.get('username') or '?'}{you}", s.get("client_host") or "", s.get("client_addr") or "",
                          s.get("client_name") or "", when(s.get("last_seen_at")), key=s["id"])
        table = self.query_one("#events-table", DataTable)
        table.clear()
        for e in events:
            table.add_row(when(e.get("occurred_at")), e.get("event_type") or "", e.get("severity") or "",
                          e.get("username") or "", e.get("description") or "", key=str(e["id"]))

    def apply_security(self, data: dict) -> None:
        if self.identity is not None and self.identity.can("security:read"):
            self.load()

    def action_revoke(self) -> None:
        table = self.query_one("#sessions-table", DataTable)
        if not table.row_count:
            self.notify("No session to revoke.", severity="warning")
            return
        session = self.sessions[table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value]
        who = session.get("username") or "?"
        where = session.get("client_host") or session.get("client_addr") or "an unknown host"
        own = " This is YOUR session: the console returns to the login screen." \
            if session["id"] == self.identity.session_id else ""
        self.app.push_screen(
            ConfirmScreen(f"Revoke {who}'s session?",
                          f"{who} (from {where}, {session.get('client_name') or 'unknown program'}) is logged "
                          f"out at once; their next command is refused and they must log in again. "
                          f"The revocation is recorded as a security event.{own}", yes="Revoke"),
            lambda yes: self.revoke(session["id"]) if yes else None)

    @tab_work(group="security-actions")
    async def revoke(self, session_id: str) -> None:
        await ask(self, "session.revoke", {"session_id": session_id, "reason": "revoked in console"},
                  failing="Could not revoke")
        self.notify("Session revoked.")
        self.load()
