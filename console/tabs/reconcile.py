"""Reconcile: clients of a practice who are likely one person, found by the reconcile job,
merged (undoably) or dismissed by a person.

The list (`reconcile.list`, table:clients:read) holds pairs best score first: score,
status, the two clients (the tail of each id; in full under the list), the reason codes
(`name~0.93`, `swapped`, `dob=`, `phone=`, `email=`) and when the pair was found. `f`
cycles open, merged, dismissed and every pair. A page holds up to 500 pairs; `n` shows the
next and `p` the one before (keyset pages from `reconcile.list`'s `next`, so a pair decided
meanwhile neither hides nor repeats another). `r` starts the reconcile job
(job:reconcile:run), its progress from `job.*` events, and the list reloads when it ends.

Enter (or `o`) opens the highlighted pair side by side (`reconcile.show`, modals/pair.py):
the daemon sends both clients masked unless the user holds phi:read, and audits the read
when it sends them in the clear. `m` merges an open pair after choosing which client
survives (it keeps every session and file of the other, which is retired), `d` dismisses
an open pair as two people, `u` undoes a merge; each needs table:clients:write and asks
first, saying what will happen. An action the user may not take now is disabled and the
note under the list says why; what the daemon refuses anyway is shown in its words. The
list reloads when another console decides a pair (the audit entry it writes).
"""
from __future__ import annotations

from rich.text import Text
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.pair import PairScreen, not_now, tail
from strongroom.console.modals.run_job import RunJobScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

KIND = "reconcile"
READ, WRITE = "table:clients:read", "table:clients:write"
FILTERS = ("open", "merged", "dismissed", "all")
LIMIT = 500
PAIR_ACTIONS = ("merge", "dismiss", "undo")
# Fits 78 columns (a cell pads 2); the full ids are under the list.
COLUMNS = (("Score", "score", 5), ("Status", "status", 9), ("Client A", "a", 9), ("Client B", "b", 9),
           ("Reasons", "reasons", 22), ("Found", "found", 10))
KEYS = {"open_pair": "enter open", "merge": "m merge", "dismiss": "d dismiss", "undo": "u undo",
        "run_now": "r run", "filter": "f filter", "next_page": "n next page",
        "previous_page": "p previous page"}


def pair_cells(pair: dict) -> tuple:
    return (f"{pair['score']:.2f}", pair["status"], tail(pair["client_a"]), tail(pair["client_b"]),
            " ".join(pair["reasons"]), str(pair.get("found_at") or "")[:10] or "—")


def names(client: dict | None) -> str:
    """A client's name as the daemon sent it (masked without phi:read), for the survivor choice."""
    if not client:
        return ""
    return " ".join(str(client[f]) for f in ("first_name", "last_name") if client.get(f))


class ReconcileTab(Tab, Vertical):
    BINDINGS = [Binding("o", "open_pair", "Open pair", show=False), Binding("m", "merge", "Merge"),
                Binding("d", "dismiss", "Dismiss"), Binding("u", "undo", "Undo merge"),
                Binding("r", "run_now", "Find duplicates"), Binding("f", "filter", "Filter"),
                Binding("n", "next_page", "Next page", show=False),
                Binding("p", "previous_page", "Previous page", show=False),
                Binding("ctrl+r", "reload", "Reload", show=False)]
    # In the order the note offers them; the pair selected adds conditions (why_not).
    NEEDS = {"open_pair": READ, "merge": WRITE, "dismiss": WRITE, "undo": WRITE, "run_now": Job(KIND),
             "filter": READ, "next_page": READ, "previous_page": READ}
    TOPICS = ("job.", "audit")
    NOTE = "reconcile-note"
    LAZY = True            # pairs are fetched once the tab is first looked at
    JOB_KIND, RUNNING = KIND, "reconcile-running"

    DEFAULT_CSS = """
    ReconcileTab #reconcile-summary { height: 1; }
    ReconcileTab #reconcile-running { height: auto; }
    ReconcileTab #reconcile-table { height: 1fr; }
    ReconcileTab #reconcile-detail { height: 2; color: $text-muted; }
    ReconcileTab #reconcile-note { height: 2; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter = FILTERS[0]
        self.pairs: dict[str, dict] = {}
        self.after: str | None = None             # the page shown continues after this pair
        self.history: list[str | None] = []       # the `after` of each page before, for `p`
        self.next: str | None = None              # the `after` of the next page; None on the last

    def compose(self) -> ComposeResult:
        yield Plain("", id="reconcile-summary")
        yield Vertical(id="reconcile-running")
        yield ListTable(id="reconcile-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="reconcile-detail")
        yield Plain("", id="reconcile-note")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def took_identity(self, status: dict) -> None:
        """The hint line follows the selected pair: shown once the list loads."""

    # --- what may be done, and why not ----------------------------------------------------

    def why_not(self, action: str) -> str | None:
        """None when `action` may be offered now, else the reason shown beside it."""
        return self.why_not_on(action, self.selected())

    def why_not_on(self, action: str, pair: dict | None) -> str | None:
        """The reason `action` may not be taken on `pair` (its permission first, then the
        pair's state), None when it may."""
        reason = super().why_not(action)
        if reason:
            return reason
        if action == "next_page":
            return None if self.next else "this is the last page"
        if action == "previous_page":
            return None if self.history else "this is the first page"
        if action not in (*PAIR_ACTIONS, "open_pair"):
            return None
        if pair is None:
            return "no pair selected" if self.pairs else "no pair listed"
        if action in ("merge", "dismiss") and pair["status"] != "open":
            return f"the pair is {pair['status']}, not open"
        if action == "undo" and pair["status"] != "merged":
            return f"the pair is {pair['status']}, not merged"
        return None

    def reasons_on(self, pair: dict) -> dict[str, str | None]:
        return {action: self.why_not_on(action, pair) for action in PAIR_ACTIONS}

    def note(self) -> str:
        offered = [KEYS[a] for a in self.NEEDS if not self.why_not(a)]
        text = " · ".join(offered) if offered else "read only"
        # Paging keys are offered when there is a page to go to, never listed as "not now".
        off = not_now({a: self.why_not(a) for a in self.NEEDS
                       if a not in ("open_pair", "next_page", "previous_page")}, KEYS)
        return text + (f" — not now: {off}" if off else "")

    def show_note(self) -> None:
        if self.identity is not None:
            self.query_one(f"#{self.NOTE}", Static).update(Text(self.note()))

    # --- the list -------------------------------------------------------------------------

    def selected(self) -> dict | None:
        table = self.query_one("#reconcile-table", DataTable)
        if not table.row_count:
            return None
        return self.pairs.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @tab_work(exclusive=True, group="reconcile")
    async def load(self) -> None:
        reason = self.identity.why_not(READ)
        if reason:
            self.query_one("#reconcile-summary", Static).update(Text(f"Pairs hidden: {reason}"))
            self.selection_changed()
            return
        args = {"status": None if self.filter == "all" else self.filter, "limit": LIMIT,
                **({"after": self.after} if self.after else {})}
        page = await ask(self, "reconcile.list", args, failing="Reconcile")
        self.next = page.get("next")
        self.fill(page["items"])

    def fill(self, items: list[dict]) -> None:
        table = self.query_one("#reconcile-table", DataTable)
        keep = self.selected()
        table.clear()
        self.pairs = {}
        for pair in items:
            self.pairs[pair["pair_id"]] = pair
            table.add_row(*pair_cells(pair), key=pair["pair_id"])
        if keep is not None and keep["pair_id"] in table.rows:
            table.move_cursor(row=table.get_row_index(keep["pair_id"]))
        shown = "every pair" if self.filter == "all" else f"{self.filter} pairs"
        first = len(self.history) * LIMIT + 1
        where = f"page {len(self.history) + 1}: {first}–{first + len(items) - 1}"
        more = " (n: next page)" if self.next else ""
        self.query_one("#reconcile-summary", Static).update(
            Text(f"{shown.capitalize()}, best score first, {where}{more}" if items else
                 f"No {shown}" + (" after the page before (p)." if self.history else ".")
                 + (" r finds likely duplicates." if self.filter == "open" and not self.history else "")))
        self.selection_changed()

    @on(DataTable.RowHighlighted, "#reconcile-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.selection_changed()

    def selection_changed(self) -> None:
        pair = self.selected()
        detail = ""
        if pair is not None:
            detail = f"pair {pair['pair_id']}" + (f" · {pair['status']} by {pair['decided_by']}"
                                                 if pair.get("decided_by") else "")
            detail += f"\nA {pair['client_a']}  B {pair['client_b']}"
        self.query_one("#reconcile-detail", Static).update(Text(detail))
        self.show_note()
        self.refresh_bindings()

    def action_filter(self) -> None:
        if self.refused("filter"):
            return
        self.filter = FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)]
        self.after, self.history, self.next = None, [], None
        self.load()

    def action_next_page(self) -> None:
        if self.refused("next_page"):
            return
        self.history.append(self.after)
        self.after = self.next
        self.load()

    def action_previous_page(self) -> None:
        if self.refused("previous_page"):
            return
        self.after = self.history.pop()
        self.load()

    def apply_audit(self, data: dict) -> None:
        """An audit entry: reload when a pair was decided (here or in another console)."""
        if data.get("table_name") == "reconcile_pairs" and self.shown and self.identity is not None \
                and self.identity.can(READ):
            self.load()

    def run_ended(self, data: dict) -> None:
        """A reconcile run ended: its pairs are listed (a failure says so in its row)."""
        if self.shown:
            self.load()

    # --- one pair side by side ------------------------------------------------------------

    @on(DataTable.RowSelected, "#reconcile-table")
    def row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_pair()

    def action_open_pair(self) -> None:
        if self.refused("open_pair"):
            return
        self.open_pair(self.selected()["pair_id"])

    @tab_work(group="reconcile-pair")
    async def open_pair(self, pair_id: str) -> None:
        pair = await ask(self, "reconcile.show", {"pair_id": pair_id}, failing="Pair")
        self.app.push_screen(PairScreen(pair, self.reasons_on(pair), masked=self.identity.why_not("phi:read")),
                             lambda action: self.decide(action, pair) if action else None)

    # --- deciding -------------------------------------------------------------------------

    def action_merge(self) -> None:
        self.decide("merge", self.selected())

    def action_dismiss(self) -> None:
        self.decide("dismiss", self.selected())

    def action_undo(self) -> None:
        self.decide("undo", self.selected())

    def decide(self, action: str, pair: dict | None) -> None:
        """Take `action` on `pair` (the highlighted one, or the one the pair view showed):
        refused with the reason when it may not be taken, else asked first."""
        reason = self.why_not_on(action, pair)
        if reason:
            self.notify(f"{self.REFUSED}: {reason}", severity="warning")
            return
        if action == "merge":
            self.choose_survivor(pair)
        elif action == "dismiss":
            self.app.push_screen(
                ConfirmScreen("Dismiss this pair as two people?",
                              f"Clients A {pair['client_a']} and B {pair['client_b']} are recorded as two "
                              "different people: the pair leaves the open list and later runs leave it "
                              "dismissed. Neither client changes, and there is no command to reopen it. "
                              "Recorded in the audit log under your name.", yes="Dismiss"),
                lambda yes: self.change("reconcile.dismiss", {"pair_id": pair["pair_id"]}, "Pair dismissed.",
                                        "Could not dismiss") if yes else None)
        else:
            record = pair.get("merge_record") or {}
            back = f"client {record.get('duplicate') or '?'}"
            self.app.push_screen(
                ConfirmScreen("Undo this merge?",
                              f"Exactly the {len(record.get('therapy_sessions') or [])} session(s) and "
                              f"{len(record.get('client_files') or [])} file(s) the merge moved go back to "
                              f"{back}, which returns (no longer deleted); anything added to client "
                              f"{record.get('survivor') or '?'} since stays there. The pair is open again. "
                              "Sync peers receive the change; recorded in the audit log under your name.",
                              yes="Undo merge"),
                lambda yes: self.change("reconcile.undo", {"pair_id": pair["pair_id"]},
                                        "Merge undone: the pair is open again.", "Could not undo") if yes else None)

    def choose_survivor(self, pair: dict) -> None:
        """Which client survives (A unless chosen otherwise), then the confirmation."""
        clients = {str(c.get("id")): c for c in pair.get("clients") or ()}
        labels = {pair[f"client_{side}"]: f"keep {side.upper()} {tail(pair[f'client_{side}'])}  "
                  f"{names(clients.get(pair[f'client_{side}']))}".rstrip() for side in ("a", "b")}

        def chosen(survivor: str | None) -> None:
            if survivor is None:
                return
            gone = pair["client_b"] if survivor == pair["client_a"] else pair["client_a"]
            self.app.push_screen(
                ConfirmScreen("Merge these two clients?",
                              f"Client {survivor} is kept: every therapy session and file of client {gone} "
                              f"moves to it, and client {gone} is retired (marked deleted; its record is "
                              "kept). u on the merged pair undoes it, moving exactly those rows back. Sync "
                              "peers receive the change; recorded in the audit log under your name.",
                              yes="Merge"),
                lambda yes: self.change("reconcile.merge", {"pair_id": pair["pair_id"], "survivor": survivor},
                                        f"Merged into {tail(survivor)} (f shows merged pairs; u undoes).",
                                        "Could not merge") if yes else None)
        self.app.push_screen(RunJobScreen([(pair["client_a"], None), (pair["client_b"], None)],
                                          title="Which client is kept?", labels=labels), chosen)

    @tab_work(group="reconcile-actions")
    async def change(self, cmd: str, args: dict, done: str, failing: str) -> None:
        await ask(self, cmd, args, failing=failing, notice_seconds=10)
        self.notify(done)
        self.load()

    # --- the reconcile job ----------------------------------------------------------------

    def action_run_now(self) -> None:
        if not self.refused("run_now", saying="Cannot run"):
            self.run_now()

    @tab_work(group="reconcile-actions")
    async def run_now(self) -> None:
        run = await ask(self, "reconcile.run", {}, failing="Could not start reconcile")
        self.follow_started(run)
        self.notify(f"Looking for duplicate clients ({tail(run['id'])})")
