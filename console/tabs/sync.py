"""Sync: peers with their lag and failures, sync now, the conflict queue with one conflict
side by side, and the quarantine.

Peers come from `sync.status`: per peer the time since its last pass, the rows not sent
yet, open conflicts and quarantined rows, and, when passes fail, how many in a row and
the last error. `s` syncs now (a `sync` job through `job.run`, with the peer's name; with
several peers, a choice), its progress shown from `job.*` events, and everything reloads
when it ends. `f` cycles the queue: open, resolved or all conflicts, then the quarantine
(rows a peer sent that failed validation: never applied, never shown with content).

Enter opens the highlighted conflict: base, local and remote for the fields that differ,
marked ≠; the fields the same on both sides are listed below by name only, their values
hidden: `v` reveals the highlighted one (one field per request, which the daemon audits
as a read of that field when it shows plaintext). `l`, `r` and `b` choose the local,
remote or base version of the highlighted differing field; once every differing field
has a choice, `a` applies them after a confirmation. PHI arrives from the daemon already
masked unless the user holds phi:read; choosing sends only "local/remote/base" per field,
never a value.
"""
from __future__ import annotations

from rich.text import Text
from strongroom.console.client import ClientError
from strongroom.console.helpers.text import age, when
from strongroom.console.helpers.workers import Refused, ask, fetch, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.detail import DetailScreen
from strongroom.console.modals.run_job import RunJobScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

PAGE_SIZE = 50
QUARANTINE = "quarantine"
FILTERS = ("open", "resolved", "all", QUARANTINE)
KIND = "sync"
RESOLVE = "sync:resolve"
EVERY_PEER = "*every*"        # not a peer name: names never hold '*'
ERROR_CHARS = 160
CHOICES = {"local": "l", "remote": "r", "base": "b"}
# Column widths follow the tab's width (fitted on resize); at 80 columns they are these.
CONFLICT_COLUMNS = (("Queued", "queued", 16), ("Peer", "peer", 10), ("Table", "table", 16),
                    ("Status", "status", 8), ("Differs", "fields", 16))
FIELD_COLUMNS = (("Field", "field", 20), ("Base", "base", 13), ("Local", "local", 13),
                 ("Remote", "remote", 13), ("Use", "use", 6))
QUARANTINE_COLUMNS = (("Received", "received", 16), ("Peer", "peer", 10), ("Table", "table", 16),
                      ("Reason", "reason", 18), ("Row", "row", 9))
CELL_PADDING = 2      # a DataTable cell's padding, left and right together
SCROLLBAR = 2
MAX_PEER_LINES = 3


def peer_line(peer: dict) -> str:
    """One peer's lag in a line: time since its last pass, rows to send, open conflicts,
    quarantined rows (a `sync.status` peer; a `sync.peers` one reads the same)."""
    arrows = {"both": "⇄", "push": "→", "pull": "←"}.get(peer.get("direction"), "?")
    lag = peer.get("lag_seconds", peer.get("seconds_since_sync"))
    pending = peer.get("pending_rows", peer.get("pending_changes"))
    parts = ["never synced" if lag is None else f"synced {age(lag)} ago"]
    if pending is not None:
        parts.append(f"{pending} to send")
    parts.append(f"{peer.get('open_conflicts', 0)} open")
    if peer.get("quarantined"):
        parts.append(f"{peer['quarantined']} quarantined")
    if peer.get("skew_exceeded"):
        parts.append(f"clock skew {peer.get('clock_skew_seconds')}s")
    if peer.get("inbound"):
        parts.append("syncs with us")
    elif not peer.get("is_active", True):
        parts.append("paused")
    mark = "⚠ " if peer.get("lagging") else ""
    return f"{arrows} {mark}{peer['name']}: " + " · ".join(parts)


def failure_line(peer: dict) -> str | None:
    """Failed passes in a row, when the next try is and the last error; None when the
    last pass succeeded. Errors are the engine's own words (never a row's values)."""
    failures = peer.get("failures") or 0
    if not failures:
        return None
    text = f"  ✗ {failures} failed pass{'es' if failures != 1 else ''} in a row"
    if peer.get("next_attempt_at"):
        text += f", next try {when(peer['next_attempt_at'])[11:16]}"
    error = (peer.get("last_error") or "")[:ERROR_CHARS]
    return f"{text}: {error}" if error else text


def peers_text(peers: list[dict], shown: int) -> Text:
    """Up to `shown` lines: peers first, each failing one followed by its failure."""
    lines: list[str] = []
    for peer in peers:
        lines.append(peer_line(peer))
        failure = failure_line(peer)
        if failure:
            lines.append(failure)
    if len(lines) > shown:
        more = len(peers) - sum(1 for line in lines[:shown] if not line.startswith("  "))
        lines = lines[:shown]
        if more:
            lines[-1] += f" (+{more} more)"
    return Text("\n".join(lines))


def cell(value: str | None, style: str = "") -> Text:
    return Text("—", style="dim") if value is None else Text(value, style=style)


class SyncTab(Tab, Vertical):
    BINDINGS = [Binding("l", "choose('local')", "Local"), Binding("r", "choose('remote')", "Remote"),
                Binding("b", "choose('base')", "Base"), Binding("a", "apply", "Apply"),
                Binding("v", "reveal", "Reveal field"),
                Binding("f", "filter", "Filter"), Binding("s", "sync_now", "Sync now"),
                Binding("n", "next_page", "Next page", show=False),
                Binding("p", "previous_page", "Previous page", show=False),
                Binding("ctrl+r", "reload", "Reload", show=False)]
    # The peers and the opened conflict add conditions of the moment (why_not).
    NEEDS = {"sync_now": Job(KIND), "choose": RESOLVE, "apply": RESOLVE, "filter": RESOLVE,
             "next_page": RESOLVE, "previous_page": RESOLVE}
    TOPICS = ("job.", "sync.")
    NOTE = "sync-note"
    JOB_KIND, RUNNING = KIND, "sync-running"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.peers: list[dict] = []
        self.filter = "open"
        self.after_id: str | None = None        # the page shown starts after this id
        self.history: list[str | None] = []     # after_ids of the earlier pages, for `p`
        self.full_page = False
        self.rows: dict[str, dict] = {}         # conflicts (or quarantined rows) on this page, by id
        self.conflict: dict | None = None       # the one opened
        self.choices: dict[str, str] = {}
        self.revealed: dict[str, dict] = {}     # fields of the opened conflict shown on request, by name
        # Conflicts this console resolved: their `sync.conflict` event (which may arrive
        # before the daemon's answer, and names nobody) is not news from elsewhere.
        self.resolved_here: set[str] = set()
        self.widths: dict[str, tuple] = {}      # column widths each table was last built with

    def compose(self) -> ComposeResult:
        yield Plain("", id="sync-peers", classes="muted")
        yield Vertical(id="sync-running")
        yield ListTable(id="conflicts-table", cursor_type="row", zebra_stripes=True)
        yield ListTable(id="quarantine-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="conflict-head")
        yield ListTable(id="fields-table", cursor_type="row")   # field values are data: never markup
        yield Plain("", id="quarantine-detail")
        yield Plain("", id="sync-note", classes="muted")

    def on_mount(self) -> None:
        self.query_one("#quarantine-table").display = False
        self.query_one("#quarantine-detail").display = False
        self.fit_columns(80 - 2)

    def on_resize(self, event: events.Resize) -> None:
        self.fit_columns(event.size.width)

    def fit_columns(self, width: int) -> None:
        """Give the free width to the free-text columns: the differing fields' names in the
        queue, and the three versions side by side (wider values, fewer cut short)."""
        free = width - SCROLLBAR
        field = 20 if free < 100 else 24
        value = max(13, (free - CELL_PADDING * len(FIELD_COLUMNS) - field - 6) // 3)
        differs = max(16, free - CELL_PADDING * len(CONFLICT_COLUMNS) - 16 - 10 - 16 - 8)
        reason = max(18, free - CELL_PADDING * len(QUARANTINE_COLUMNS) - 16 - 10 - 16 - 9)
        wanted = {"#conflicts-table": tuple(w if key != "fields" else differs for _, key, w in CONFLICT_COLUMNS),
                  "#fields-table": (field, value, value, value, 6),
                  "#quarantine-table": tuple(w if key != "reason" else reason for _, key, w in QUARANTINE_COLUMNS)}
        for table_id, columns in (("#conflicts-table", CONFLICT_COLUMNS), ("#fields-table", FIELD_COLUMNS),
                                  ("#quarantine-table", QUARANTINE_COLUMNS)):
            if self.widths.get(table_id) == wanted[table_id]:
                continue
            self.widths[table_id] = wanted[table_id]
            table = self.query_one(table_id, DataTable)
            table.clear(columns=True)
            for (label, key, _), width in zip(columns, wanted[table_id]):
                table.add_column(label, key=key, width=width)
        self.show_rows()
        self.show_conflict()

    def focus_main(self) -> None:
        self.queue_table().focus()

    def queue_table(self) -> DataTable:
        return self.query_one("#quarantine-table" if self.filter == QUARANTINE else "#conflicts-table", DataTable)

    # --- what this user may do ------------------------------------------------------------

    def took_identity(self, status: dict) -> None:
        """The hint line follows the opened conflict: shown once the queue loads."""

    def why_not(self, action: str) -> str | None:
        """None when `action` may be taken now, else why not: a pass needs a peer to reach;
        choosing and applying need an open conflict opened."""
        reason = super().why_not(action)
        if reason:
            return reason
        if action == "sync_now" and not self.outbound():
            return "no active sync peer (strongroom sync peer add, or resume one)"
        if action in ("choose", "apply"):
            if self.conflict is None:
                return "no conflict open (enter opens the highlighted one)"
            if self.conflict["status"] != "open":
                return f"this conflict is already {self.conflict['status']}"
        return None

    def hidden(self) -> list[str]:
        """The opened conflict's fields that are the same on both sides and not yet revealed."""
        return [f["name"] for f in (self.conflict or {}).get("other_fields") or () if f["name"] not in self.revealed]

    def missing(self) -> list[str]:
        return [name for name in (self.conflict or {}).get("fields") or () if name not in self.choices]

    def outbound(self) -> list[str]:
        """Names of the peers a pass from here can reach: active, and not inbound."""
        return [p["name"] for p in self.peers if p.get("is_active", True) and not p.get("inbound")]

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("choose", "apply") and self.filter == QUARANTINE:
            return False            # hidden: nothing in the quarantine is chosen field by field
        if action == "reveal" and self.filter == QUARANTINE:
            return False            # hidden: a quarantined row's content is never shown
        if super().check_action(action, parameters) is None:
            return None
        if action == "choose" and parameters and parameters[0] == "base" and not self.conflict["has_base"]:
            return None
        if action == "apply" and self.missing():
            return None
        if action == "reveal" and not self.hidden():
            return None             # no conflict open, or every field already shown
        if action == "next_page" and not self.full_page:
            return None
        if action == "previous_page" and not self.history:
            return None
        return True

    # --- peers and the queue ----------------------------------------------------------------

    @tab_work(exclusive=True, group="sync-peers")
    async def load_peers(self) -> None:
        line = self.query_one("#sync-peers", Static)
        reason = self.identity.why_not("config:read")
        if reason:
            line.update(f"Peers hidden: {reason}")
            return
        try:
            status = await fetch(self, "sync.status.get")
        except ClientError as err:
            line.update(f"Peers: {err.message}")
            return
        self.peers = list(status.get("peers") or [])
        self.refresh_bindings()
        if not self.peers:
            line.update("No sync peers configured (strongroom sync peer add NAME URL).")
            return
        line.update(peers_text(self.peers, MAX_PEER_LINES))

    def load(self) -> None:
        self.load_peers()
        self.load_page()

    @tab_work(exclusive=True, group="sync-conflicts")
    async def load_page(self) -> None:
        if self.identity.why_not(RESOLVE):
            self.show_conflict()
            return
        quarantine = self.filter == QUARANTINE
        args = {"status": "open" if quarantine else self.filter, "limit": PAGE_SIZE}
        if self.after_id is not None:
            args["after_id"] = self.after_id
        try:
            rows = await fetch(self, "sync.quarantine.list" if quarantine else "sync.conflict.list", args)
        except ClientError as err:
            what = "the quarantine" if quarantine else "conflicts"
            self.query_one("#conflict-head", Static).update(f"Could not load {what}: {err.message}")
            return
        before = self.rows
        self.rows = {row["id"]: row for row in rows}
        self.show_rows()
        self.full_page = len(rows) == PAGE_SIZE
        open_id = self.conflict["id"] if self.conflict is not None else None
        if open_id in self.rows:
            # Opened again only when its row in the queue changed: every opening with
            # phi:read is an audited READ, and a reload that changed nothing is no reason
            # for another (events about this conflict reopen it, below).
            if self.rows[open_id] != before.get(open_id):
                self.open_conflict(open_id)
        elif self.conflict is None:
            self.show_conflict()
        self.refresh_bindings()

    def show_rows(self) -> None:
        quarantine = self.filter == QUARANTINE
        self.query_one("#conflicts-table").display = not quarantine
        self.query_one("#quarantine-table").display = quarantine
        self.query_one("#fields-table").display = not quarantine
        self.query_one("#quarantine-detail").display = quarantine
        table = self.queue_table()
        cursor = table.cursor_row
        table.clear()
        for row in self.rows.values():
            if quarantine:
                table.add_row(when(row.get("received_at"))[:16], row.get("peer") or "?", row["table"],
                              row["reason"], str(row["row_id"])[:8] + "…", key=row["id"])
                continue
            differs = ", ".join(row["fields"]) if row["fields"] is not None else "unreadable"
            table.add_row(when(row.get("created_at"))[:16], row.get("peer") or "?", row["table"],
                          row["status"], differs, key=row["id"])
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    def page_text(self) -> str:
        shown = len(self.rows)
        return f"{self.filter} · page {len(self.history) + 1} · {shown} shown" + (" (n: more)" if self.full_page else "")

    def action_filter(self) -> None:
        was = self.filter
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.history, self.after_id = [], None
        if QUARANTINE in (was, self.filter):     # the two kinds of rows do not mix
            self.rows, self.conflict, self.choices, self.revealed = {}, None, {}, {}
            self.show_rows()
            self.show_conflict()
            self.queue_table().focus()
        self.load_page()

    def action_next_page(self) -> None:
        if self.full_page and self.rows:
            self.history.append(self.after_id)
            self.after_id = list(self.rows)[-1]
            self.load_page()

    def action_previous_page(self) -> None:
        if self.history:
            self.after_id = self.history.pop()
            self.load_page()

    # --- one conflict ---------------------------------------------------------------------

    @on(DataTable.RowSelected, "#conflicts-table")
    def select_conflict(self, event: DataTable.RowSelected) -> None:
        self.open_conflict(event.row_key.value, focus=True)

    @tab_work(exclusive=True, group="sync-conflict")
    async def open_conflict(self, conflict_id: str, focus: bool = False) -> None:
        conflict = await ask(self, "sync.conflict.get", {"conflict_id": conflict_id}, failing="Conflict")
        if self.conflict is None or self.conflict["id"] != conflict_id:
            self.choices, self.revealed = {}, {}
        self.conflict = conflict
        if conflict["status"] != "open":
            self.choices = {}
        self.show_conflict()
        if focus:
            self.query_one("#fields-table", DataTable).focus()

    def show_conflict(self) -> None:
        head = self.query_one("#conflict-head", Static)
        table = self.query_one("#fields-table", DataTable)
        conflict = self.conflict
        if self.filter == QUARANTINE:
            self.show_quarantined()
            return
        if conflict is None:
            table.clear()
            reason = self.identity.why_not(RESOLVE) if self.identity else None
            head.update(f"Conflicts hidden: {reason}" if reason else "" if self.identity is None
                        else "enter: open the highlighted conflict" if self.rows else "No conflicts here.")
            self.show_note()
            return
        masked = " · PHI masked: you lack phi:read" if conflict.get("masked") else ""
        base = "" if conflict["has_base"] else " · no base"
        head.update(f"{conflict['table']} {conflict['row_id'][:8]}… from {conflict.get('peer') or '?'}{base}{masked}")
        cursor = table.cursor_row
        table.clear()
        values = conflict["field_values"]
        others = conflict.get("other_fields") or []
        for field in values:
            table.add_row(*self.field_cells(field), key=field["name"])
        for other in others:
            table.add_row(*self.other_cells(other), key=other["name"])
        if values or others:
            table.move_cursor(row=min(cursor, len(values) + len(others) - 1))
        self.refresh_bindings()
        self.show_note()

    def other_cells(self, other: dict) -> tuple:
        """A field the same on both sides: its values once revealed, else hidden."""
        field = self.revealed.get(other["name"])
        if field is not None:
            return self.field_cells(field)
        hidden = Text("hidden", style="dim italic")
        return (Text(f"  {other['name']}", style="dim"), hidden, hidden, hidden, Text("v", style="dim"))

    def field_cells(self, field: dict) -> tuple:
        chosen = self.choices.get(field["name"]) or field.get("chosen")
        if not field["differs"]:
            return (Text(f"  {field['name']}", style="dim"),
                    *(cell(field[v], "dim") for v in ("base", "local", "remote")), Text(""))
        changed = field.get("changed")
        cells = []
        for version in ("base", "local", "remote"):
            style = "bold" if version != "base" and changed in (None, version, "both") else ""
            if version == chosen:
                style = "bold reverse"
            cells.append(cell(field[version], style))
        use = Text(chosen, style="bold") if chosen else Text("choose", style="italic")
        return (Text(f"≠ {field['name']}", style="bold"), *cells, use)

    def show_note(self) -> None:
        """Written before login too (from the first layout): resolving waits for it."""
        self.query_one(f"#{self.NOTE}", Static).update(self.note())

    def note(self) -> str:
        page = self.page_text() if self.identity and self.identity.can(RESOLVE) else ""
        reason = self.why_not("apply")
        if self.filter == QUARANTINE:
            text = "enter: details · f: conflicts"
        elif self.conflict is not None and self.conflict["status"] != "open":
            text = f"resolved by {self.conflict.get('resolved_by')} at {when(self.conflict.get('resolved_at'))}"
        elif reason:
            text = f"resolve disabled: {reason}"
        else:
            missing = self.missing()
            total = len(self.conflict.get("fields") or ())
            text = (f"l/r/b: choose ≠ fields ({total - len(missing)} of {total} chosen)" if missing
                    else "a: apply the choices")
            if self.hidden():
                text += " · v: reveal"
        return f"{page} · {text}" if page else text

    # --- the quarantine -------------------------------------------------------------------

    def highlighted_quarantined(self) -> dict | None:
        table = self.query_one("#quarantine-table", DataTable)
        if not table.row_count:
            return None
        return self.rows.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def show_quarantined(self) -> None:
        row = self.highlighted_quarantined()
        head = self.query_one("#conflict-head", Static)
        detail = self.query_one("#quarantine-detail", Static)
        if row is None:
            head.update("No quarantined rows: every row peers sent passed validation.")
            detail.update("")
        else:
            head.update(f"{row['table']} row from {row.get('peer') or '?'}: {row['reason']}")
            detail.update(f"{row['detail']}\n\nrow {row['row_id']} · received {when(row.get('received_at'))}\n"
                          "Never applied: this site keeps its own version of the row; the rest of the "
                          "batch went on.")
        self.show_note()

    @on(DataTable.RowHighlighted, "#quarantine-table")
    def quarantined_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_quarantined()

    @on(DataTable.RowSelected, "#quarantine-table")
    def open_quarantined(self, event: DataTable.RowSelected) -> None:
        row = self.rows.get(event.row_key.value)
        if row is not None:
            self.app.push_screen(DetailScreen(f"Quarantined {row['table']} row", row))

    # --- sync now -------------------------------------------------------------------------

    def action_sync_now(self) -> None:
        if self.refused("sync_now", saying="Cannot sync"):
            return
        names = self.outbound()
        if len(names) == 1:
            self.start_sync(names[0])
            return
        choices = [(EVERY_PEER, None)] + [(name, None) for name in names]
        self.app.push_screen(RunJobScreen(choices, title="Sync now with", labels={EVERY_PEER: "every active peer"}),
                             lambda chosen: self.start_sync(None if chosen == EVERY_PEER else chosen)
                             if chosen else None)

    @tab_work(group="sync-actions")
    async def start_sync(self, peer: str | None) -> None:
        params = {} if peer is None else {"peer": peer}
        run = await ask(self, "job.run", {"kind": KIND, "params": params}, failing="Could not start the sync")
        self.follow_started(run)
        self.notify(f"Sync with {peer or 'every active peer'} started ({run['id'][:8]}…)")

    def run_ended(self, data: dict) -> None:
        """A sync run ended: peers and the queue reload (a failure says where to look)."""
        if data.get("status") == "failed":
            self.notify("Sync failed: see the peer's last error.", severity="error")
        self.load()

    def shown_field(self, name: str) -> dict | None:
        """A field of the opened conflict whose values are shown: differing, or revealed."""
        found = next((f for f in (self.conflict or {}).get("field_values", ()) if f["name"] == name), None)
        return found or self.revealed.get(name)

    def highlighted_field(self) -> str | None:
        table = self.query_one("#fields-table", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    @on(DataTable.RowSelected, "#fields-table")
    def show_field(self, event: DataTable.RowSelected) -> None:
        field = self.shown_field(event.row_key.value)
        if field is None and event.row_key.value in self.hidden():
            self.notify(f"{event.row_key.value} is hidden: v reveals it.", severity="information")
        if field is not None:
            self.app.push_screen(DetailScreen(f"Field {field['name']}", {
                k: field[k] for k in ("base", "local", "remote", "differs", "changed", "phi", "unreadable")}))

    def action_choose(self, version: str) -> None:
        table = self.query_one("#fields-table", DataTable)
        name = self.highlighted_field()
        if name is None:
            return
        field = next((f for f in self.conflict["field_values"] if f["name"] == name), None)
        if field is None or not field["differs"]:
            self.notify(f"{name} is the same locally and remotely: nothing to choose.", severity="warning")
            return
        self.choices[name] = version
        for key, value in zip((c[1] for c in FIELD_COLUMNS), self.field_cells(field)):
            table.update_cell(name, key, value)
        differing = [f["name"] for f in self.conflict["field_values"] if f["differs"]]
        following = differing[differing.index(name) + 1:] if name in differing else []
        if following:   # on to the next differing field, so l/r/b can be pressed in a row
            table.move_cursor(row=table.get_row_index(following[0]))
        self.refresh_bindings()
        self.show_note()

    def action_reveal(self) -> None:
        """Show the highlighted hidden field: one request for one field, never a batch."""
        name = self.highlighted_field()
        if name is None or name not in self.hidden():
            shown = name is not None and self.shown_field(name) is not None
            self.notify(f"{name} is already shown." if shown else "Highlight a hidden field to reveal it.",
                        severity="warning")
            return
        self.reveal_field(self.conflict["id"], name)

    @tab_work(group="sync-reveal")
    async def reveal_field(self, conflict_id: str, name: str) -> None:
        answer = await ask(self, "sync.conflict.field.get", {"conflict_id": conflict_id, "field": name},
                           failing=f"Could not reveal {name}")
        if self.conflict is None or self.conflict["id"] != conflict_id:
            return                  # another conflict was opened meanwhile
        self.revealed[name] = answer["field"]
        table = self.query_one("#fields-table", DataTable)
        for key, value in zip((c[1] for c in FIELD_COLUMNS), self.field_cells(answer["field"])):
            table.update_cell(name, key, value)
        self.refresh_bindings()
        self.show_note()

    def action_apply(self) -> None:
        conflict, choices = self.conflict, dict(self.choices)
        picks = ", ".join(f"{name} ← {version}" for name, version in choices.items())
        self.app.push_screen(
            ConfirmScreen("Apply this resolution?",
                          f"The {conflict['table']} row {conflict['row_id']} gets: {picks}. It takes a new sync "
                          f"version, so the result goes to {conflict.get('peer') or 'the peer'} on the next sync. "
                          "The conflict is marked resolved under your name and both are audited; only your "
                          "choices are sent, never the values.", yes="Apply"),
            lambda yes: self.resolve(conflict["id"], choices) if yes else None)

    @tab_work(group="sync-actions")
    async def resolve(self, conflict_id: str, choices: dict) -> None:
        self.resolved_here.add(conflict_id)
        try:
            await ask(self, "sync.conflict.resolve", {"conflict_id": conflict_id, "choices": choices},
                      failing="Could not resolve")
        except Refused:
            self.resolved_here.discard(conflict_id)     # still open: news if resolved elsewhere
            raise
        self.notify("Conflict resolved.")
        self.choices, self.revealed = {}, {}
        self.conflict = None
        self.load()

    def apply_sync(self, data: dict) -> None:
        """A `sync.conflict` event: the queue changed (here or in another console)."""
        if self.identity is None or not self.identity.can(RESOLVE):
            return
        if self.conflict is not None and data.get("conflict_id") == self.conflict["id"] \
                and self.conflict["status"] == "open":
            self.conflict = None
            self.choices, self.revealed = {}, {}
            if data.get("conflict_id") not in self.resolved_here:
                self.notify("The conflict you had open was resolved elsewhere.", severity="warning")
        self.load()
