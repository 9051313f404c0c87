"""Sync: peers and their lag, the conflict queue, and one conflict side by side.

Enter opens the highlighted conflict: base, local and remote per field, the fields that
differ first and marked ≠. `l`, `r` and `b` choose the local, remote or base version
of the highlighted field; once every differing field has a choice, `a` applies them
after a confirmation. PHI arrives from the daemon already masked unless the user holds
phi:read; choosing sends only "local/remote/base" per field, never a value.
"""
from __future__ import annotations

from rich.text import Text

from strongroom.console.client import ClientError
from strongroom.console.screens.confirm import ConfirmScreen
from strongroom.console.screens.detail import DetailScreen
from strongroom.console.screens.identity import Identity
from strongroom.console.screens.text import age, when
from strongroom.console.screens.workers import fetch, tab_work
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

PAGE_SIZE = 50
FILTERS = ("open", "resolved", "all")
CHOICES = {"local": "l", "remote": "r", "base": "b"}
# Column widths follow the tab's width (fitted on resize); at 80 columns they are these.
CONFLICT_COLUMNS = (("Queued", "queued", 16), ("Peer", "peer", 10), ("Table", "table", 16),
                    ("Status", "status", 8), ("Differs", "fields", 16))
FIELD_COLUMNS = (("Field", "field", 20), ("Base", "base", 13), ("Local", "local", 13),
                 ("Remote", "remote", 13), ("Use", "use", 6))
CELL_PADDING = 2      # a DataTable cell's padding, left and right together
SCROLLBAR = 2
MAX_PEERS_SHOWN = 2


def peer_line(peer: dict) -> str:
    arrows = {"both": "⇄", "push": "→", "pull": "←"}.get(peer.get("direction"), "?")
    synced = "never synced" if peer.get("seconds_since_sync") is None else \
        f"synced {age(peer['seconds_since_sync'])} ago"
    pending = "" if peer.get("pending_changes") is None else f" · {peer['pending_changes']} to send"
    inactive = "" if peer.get("is_active", True) else " · paused"
    return f"{arrows} {peer['name']}: {synced}{pending} · {peer.get('open_conflicts', 0)} open{inactive}"


def cell(value: str | None, style: str = "") -> Text:
    return Text("—", style="dim") if value is None else Text(value, style=style)


class SyncTab(Vertical):
    BINDINGS = [Binding("l", "choose('local')", "Local"), Binding("r", "choose('remote')", "Remote"),
                Binding("b", "choose('base')", "Base"), Binding("a", "apply", "Apply"),
                Binding("f", "filter", "Filter"),
                Binding("n", "next_page", "Next page", show=False),
                Binding("p", "previous_page", "Previous page", show=False),
                Binding("ctrl+r", "reload", "Reload", show=False)]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity: Identity | None = None
        self.filter = "open"
        self.after_id: str | None = None        # the page shown starts after this id
        self.history: list[str | None] = []     # after_ids of the earlier pages, for `p`
        self.full_page = False
        self.rows: dict[str, dict] = {}         # conflicts on this page, by id
        self.conflict: dict | None = None       # the one opened
        self.choices: dict[str, str] = {}
        self.widths: dict[str, tuple] = {}      # column widths each table was last built with

    def compose(self) -> ComposeResult:
        yield Static("", id="sync-peers", classes="muted")
        yield DataTable(id="conflicts-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="conflict-head")
        yield DataTable(id="fields-table", cursor_type="row")
        yield Static("", id="sync-note", classes="muted")

    def on_mount(self) -> None:
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
        wanted = {"#conflicts-table": tuple(w if key != "fields" else differs for _, key, w in CONFLICT_COLUMNS),
                  "#fields-table": (field, value, value, value, 6)}
        for table_id, columns in (("#conflicts-table", CONFLICT_COLUMNS), ("#fields-table", FIELD_COLUMNS)):
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
        self.query_one("#conflicts-table", DataTable).focus()

    # --- what this user may do ------------------------------------------------------------

    def set_identity(self, identity: Identity, status: dict) -> None:
        self.identity = identity
        self.refresh_bindings()
        self.load_peers()
        self.load_page()

    def why_not_resolve(self) -> str | None:
        """None when the opened conflict can be resolved now, else why not."""
        if self.identity is None:
            return "not logged in"
        reason = self.identity.why_not("sync:resolve")
        if reason:
            return reason
        if self.conflict is None:
            return "no conflict open (enter opens the highlighted one)"
        if self.conflict["status"] != "open":
            return f"this conflict is already {self.conflict['status']}"
        return None

    def missing(self) -> list[str]:
        return [name for name in (self.conflict or {}).get("fields") or () if name not in self.choices]

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("choose", "apply") and self.why_not_resolve():
            return None
        if action == "choose" and parameters and parameters[0] == "base" and not self.conflict["has_base"]:
            return None
        if action == "apply" and self.missing():
            return None
        if action in ("filter", "next_page", "previous_page") and (
                self.identity is None or not self.identity.can("sync:resolve")):
            return None
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
            peers = await fetch(self, "sync.peers")
        except ClientError as err:
            line.update(f"Peers: {err.message}")
            return
        if not peers:
            line.update("No sync peers configured.")
            return
        lines = [peer_line(p) for p in peers[:MAX_PEERS_SHOWN]]
        if len(peers) > MAX_PEERS_SHOWN:
            lines[-1] += f" (+{len(peers) - MAX_PEERS_SHOWN} more)"
        line.update("\n".join(lines))

    @tab_work(exclusive=True, group="sync-conflicts")
    async def load_page(self) -> None:
        if self.identity.why_not("sync:resolve"):
            self.show_conflict()
            return
        args = {"status": self.filter, "limit": PAGE_SIZE}
        if self.after_id is not None:
            args["after_id"] = self.after_id
        try:
            rows = await fetch(self, "sync.conflicts", args)
        except ClientError as err:
            self.query_one("#conflict-head", Static).update(f"Could not load conflicts: {err.message}")
            return
        self.rows = {row["id"]: row for row in rows}
        self.show_rows()
        self.full_page = len(rows) == PAGE_SIZE
        if self.conflict is not None and self.conflict["id"] in self.rows:
            self.open_conflict(self.conflict["id"])
        elif self.conflict is None:
            self.show_conflict()
        self.refresh_bindings()

    def show_rows(self) -> None:
        table = self.query_one("#conflicts-table", DataTable)
        cursor = table.cursor_row
        table.clear()
        for row in self.rows.values():
            differs = ", ".join(row["fields"]) if row["fields"] is not None else "unreadable"
            table.add_row(when(row.get("created_at"))[:16], row.get("peer") or "?", row["table"],
                          row["status"], differs, key=row["id"])
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    def page_text(self) -> str:
        shown = len(self.rows)
        return f"{self.filter} · page {len(self.history) + 1} · {shown} shown" + (" (n: more)" if self.full_page else "")

    def action_filter(self) -> None:
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.history, self.after_id = [], None
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

    def action_reload(self) -> None:
        self.load_peers()
        self.load_page()

    # --- one conflict ---------------------------------------------------------------------

    @on(DataTable.RowSelected, "#conflicts-table")
    def select_conflict(self, event: DataTable.RowSelected) -> None:
        self.open_conflict(event.row_key.value, focus=True)

    @tab_work(exclusive=True, group="sync-conflict")
    async def open_conflict(self, conflict_id: str, focus: bool = False) -> None:
        try:
            conflict = await fetch(self, "sync.conflict", {"conflict_id": conflict_id})
        except ClientError as err:
            self.notify(f"Conflict: {err.message}", severity="error")
            return
        if self.conflict is None or self.conflict["id"] != conflict_id:
            self.choices = {}
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
        if conflict is None:
            table.clear()
            reason = self.identity.why_not("sync:resolve") if self.identity else None
            head.update(f"Conflicts hidden: {reason}" if reason else "" if self.identity is None
                        else "enter: open the highlighted conflict" if self.rows else "No conflicts here.")
            self.show_note()
            return
        masked = " · PHI masked: you lack phi:read" if conflict.get("masked") else ""
        base = "" if conflict["has_base"] else " · no base"
        head.update(f"{conflict['table']} {conflict['row_id'][:8]}… from {conflict.get('peer') or '?'}{base}{masked}")
        cursor = table.cursor_row
        table.clear()
        values = sorted(conflict["field_values"], key=lambda f: not f["differs"])
        for field in values:
            table.add_row(*self.field_cells(field), key=field["name"])
        if values:
            table.move_cursor(row=min(cursor, len(values) - 1))
        self.refresh_bindings()
        self.show_note()

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
        note = self.query_one("#sync-note", Static)
        page = self.page_text() if self.identity and self.identity.can("sync:resolve") else ""
        reason = self.why_not_resolve()
        if self.conflict is not None and self.conflict["status"] != "open":
            text = f"resolved by {self.conflict.get('resolved_by')} at {when(self.conflict.get('resolved_at'))}"
        elif reason:
            text = f"resolve disabled: {reason}"
        else:
            missing = self.missing()
            total = len(self.conflict.get("fields") or ())
            text = (f"l/r/b: choose for ≠ fields ({total - len(missing)} of {total} chosen)" if missing
                    else "a: apply the choices")
        note.update(f"{page} · {text}" if page else text)

    @on(DataTable.RowSelected, "#fields-table")
    def show_field(self, event: DataTable.RowSelected) -> None:
        field = next((f for f in (self.conflict or {}).get("field_values", ()) if f["name"] == event.row_key.value),
                     None)
        if field is not None:
            self.app.push_screen(DetailScreen(f"Field {field['name']}", {
                k: field[k] for k in ("base", "local", "remote", "differs", "changed", "phi", "unreadable")}))

    def action_choose(self, version: str) -> None:
        table = self.query_one("#fields-table", DataTable)
        if not table.row_count:
            return
        name = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        field = next(f for f in self.conflict["field_values"] if f["name"] == name)
        if not field["differs"]:
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
        try:
            await fetch(self, "sync.resolve", {"conflict_id": conflict_id, "choices": choices})
        except ClientError as err:
            self.notify(f"Could not resolve: {err.message}", severity="error")
            return
        self.notify("Conflict resolved.")
        self.choices = {}
        self.conflict = None
        self.action_reload()

    def apply_sync(self, data: dict) -> None:
        """A `sync.conflict` event: the queue changed (here or in another console)."""
        if self.identity is None or not self.identity.can("sync:resolve"):
            return
        if self.conflict is not None and data.get("conflict_id") == self.conflict["id"] \
                and self.conflict["status"] == "open":
            self.conflict = None
            self.choices = {}
            if data.get("by") != self.identity.actor:
                self.notify("The conflict you had open was resolved elsewhere.", severity="warning")
        self.action_reload()
