"""Retention: the plan of upcoming archive and delete actions, legal holds, erasure
requests with four-eyes approval, and the per-table policies.

One view at a time (v cycles: upcoming, holds, erasure requests, policies) so each
table has the height it needs at 80x24. Actions: place a hold (p) and release the
selected one (x) with retention:manage; file an erasure request (n) with
erasure:request; approve (a) or reject (j) the selected request with erasure:approve,
never one's own (four-eyes), approval refused while a legal hold covers the client;
set a table's policy (e) with retention:manage; run the retention job now (r). An action
the user may not take is disabled and the note says why. Approval destroys the client's
keys at once, so it says exactly what will happen and needs ERASE typed. Rows are named
by ids (the tail of each id in the tables, in full under them), never by PHI.
"""
from __future__ import annotations

from strongroom.console.helpers.text import when
from strongroom.console.helpers.workers import ask, live, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.modals.run_job import RunJobScreen
from strongroom.console.modals.typed_confirm import TypedConfirmScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.job_progress import FINAL
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from strongroom.core.protocol.models.retention import TABLES
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, DataTable, Static

KIND = "retention"
READ, MANAGE = "retention:read", "retention:manage"
REQUEST, APPROVE = "erasure:request", "erasure:approve"
HORIZON_DAYS = 30
ERASE_WORD = "ERASE"
# Audit actions after which what this tab shows may have changed (another console's action).
RELOAD_ON = frozenset({"RETENTION_POLICY", "RETENTION_ARCHIVE", "RETENTION_DELETE", "LEGAL_HOLD",
                       "LEGAL_HOLD_RELEASE", "ERASURE_REQUEST", "ERASURE_APPROVE", "ERASURE_REJECT",
                       "ERASURE_EXECUTE"})

VIEWS = (("upcoming", "Upcoming"), ("holds", "Legal holds"), ("requests", "Erasure requests"),
         ("policies", "Policies"))
# Widths fit 80 columns (a cell adds 2 of padding); the full ids are under the table.
COLUMNS = {
    "upcoming": (("Due", "due", 10), ("Action", "action", 7), ("Table", "table", 8), ("Row", "row", 9),
                 ("Client", "client", 9), ("Why", "why", 8), ("Held by", "hold", 9)),
    "holds": (("Scope", "scope", 8), ("Covers", "covers", 9), ("Placed by", "by", 14),
              ("Placed", "at", 10), ("Reason", "reason", 22)),
    "requests": (("Status", "status", 8), ("Client", "client", 9), ("Requested by", "by", 14),
                 ("Filed", "filed", 10), ("Expires", "expires", 10), ("Note", "note", 12)),
    "policies": (("Table", "table", 18), ("Archive after", "archive", 13), ("Delete after", "delete", 13),
                 ("State", "state", 8), ("Updated", "updated", 10)),
}
KEYS = {"place_hold": "p hold", "release_hold": "x release", "request_erasure": "n request erasure",
        "approve": "a approve", "reject": "j reject", "set_policy": "e policy", "run_now": "r run"}


def tail(value: str | None) -> str:
    """The last 8 hex digits of an id: enough to tell rows apart (UUIDv7 ids share their
    leading, time-based digits); the full id is shown under the table."""
    return "—" if not value else "…" + str(value).replace("-", "")[-8:]


def day(iso: str | None) -> str:
    return when(iso)[:10] if iso else "—"


SHORT_TABLE = {"clients": "clients", "therapy_sessions": "sessions", "client_files": "files"}
SHORT_REASON = {"age": "age", "inactive": "inactive", "expiry_date": "expiry"}


def days(value: int | None) -> str:
    return "—" if value is None else f"{value} days"


class RetentionTab(Tab, Vertical):
    BINDINGS = [Binding("v", "next_view", "View"), Binding("p", "place_hold", "Hold"),
                Binding("x", "release_hold", "Release"), Binding("n", "request_erasure", "Request erasure"),
                Binding("a", "approve", "Approve"), Binding("j", "reject", "Reject"),
                Binding("e", "set_policy", "Policy"), Binding("r", "run_now", "Run now"),
                Binding("ctrl+r", "reload", "Reload", show=False)]
    # In the order the hint line offers them; the rows selected add conditions (why_not).
    NEEDS = {"place_hold": MANAGE, "release_hold": MANAGE, "request_erasure": REQUEST, "approve": APPROVE,
             "reject": APPROVE, "set_policy": MANAGE, "run_now": Job(KIND)}
    TOPICS = ("job.", "audit")
    NOTE = "retention-note"
    JOB_KIND = KIND

    DEFAULT_CSS = """
    RetentionTab #retention-summary { height: 2; }
    RetentionTab #retention-views { height: 1; color: $text-muted; }
    RetentionTab ContentSwitcher { height: 1fr; }
    RetentionTab #retention-detail { height: 2; color: $text-muted; }
    RetentionTab #retention-note { height: 2; color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = VIEWS[0][0]
        self.rows: dict[str, dict[str, dict]] = {name: {} for name, _ in VIEWS}
        self.plan: dict = {}
        self.run_state: str = ""

    def compose(self) -> ComposeResult:
        yield Plain("", id="retention-summary")
        yield Plain("", markup=True, id="retention-views")       # view titles are ours
        with ContentSwitcher(initial=f"retention-{self.view}"):
            for name, _ in VIEWS:
                yield ListTable(id=f"retention-{name}", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="retention-detail")
        yield Plain("", id="retention-note")

    def on_mount(self) -> None:
        for name, _ in VIEWS:
            add_columns(self.query_one(f"#retention-{name}", DataTable), COLUMNS[name])
        self._show_views()

    def focus_main(self) -> None:
        self.table().focus()

    def table(self, view: str | None = None) -> DataTable:
        return self.query_one(f"#retention-{view or self.view}", DataTable)

    def took_identity(self, status: dict) -> None:
        """The hint line follows the selected row: shown once the lists load."""

    # --- views --------------------------------------------------------------------------

    def _show_views(self) -> None:
        labels = [f"[b reverse] {title} [/]" if name == self.view else f" {title} " for name, title in VIEWS]
        self.query_one("#retention-views", Static).update("v:" + "".join(labels))

    def action_next_view(self) -> None:
        names = [name for name, _ in VIEWS]
        self.view = names[(names.index(self.view) + 1) % len(names)]
        self.query_one(ContentSwitcher).current = f"retention-{self.view}"
        self._show_views()
        self.table().focus()
        self._selection_changed()

    def selected(self, view: str) -> dict | None:
        if self.view != view:
            return None
        table = self.table(view)
        if not table.row_count:
            return None
        return self.rows[view].get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    # --- what may be done, and why not ----------------------------------------------------

    def why_not(self, action: str) -> str | None:
        """None when `action` can be offered now, else the reason shown beside it."""
        reason = super().why_not(action)
        if reason or action not in ("release_hold", "approve", "reject"):
            return reason
        if action == "release_hold":
            hold = self.selected("holds")
            if hold is None:
                return "select a hold in the Legal holds view"
            return None if hold.get("active") else "this hold was already released"
        request = self.selected("requests")
        if request is None:
            return "select a request in the Erasure requests view"
        if request["status"] != "pending":
            return f"this request is {request['status']}"
        if request["requested_by"] == self.identity.actor:
            return "you filed this request: a different person must decide it (four-eyes)"
        if action == "approve" and request.get("held_by"):
            return f"the client is under legal hold {tail(request['held_by'])}"
        return None

    def note(self) -> str:
        offered = [KEYS[a] for a in self.NEEDS if not self.why_not(a)]
        relevant = {"upcoming": ("run_now",), "holds": ("place_hold", "release_hold"),
                    "requests": ("request_erasure", "approve", "reject"), "policies": ("set_policy",)}[self.view]
        reasons = sorted({f"{KEYS[a].split()[0]}: {r}" for a in relevant if (r := self.why_not(a))})
        text = " · ".join(offered) if offered else "read only"
        if reasons:
            text += " — not now: " + "; ".join(reasons)
        return text

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._selection_changed()

    def _selection_changed(self) -> None:
        self._show_detail()
        self.show_note()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        text = ""
        if (item := self.selected("upcoming")) is not None:
            text = f"{item['table']} row {item['row_id']}\nclient {item['client_id']}"
        elif (item := self.selected("holds")) is not None:
            text = f"hold {item['id']}\non " + (f"client {item['client_id']}" if item["client_id"]
                                                 else f"the whole practice {item['practice_id']}")
        elif (item := self.selected("requests")) is not None:
            text = f"request {item['id']} by {item['requested_by']}\nfor client {item['client_id']}"
        self.query_one("#retention-detail", Static).update(text)

    # --- loading --------------------------------------------------------------------------

    @tab_work(exclusive=True, group="retention")
    async def load(self) -> None:
        reason = self.identity.why_not(READ)
        if reason:
            self.query_one("#retention-summary", Static).update(f"Retention hidden: {reason}")
            self._selection_changed()
            return
        plan = await ask(self, "retention.plan.get", {"horizon_days": HORIZON_DAYS}, failing="Retention")
        holds = await ask(self, "hold.list", {"include_released": True, "limit": 100}, failing="Retention")
        requests = await ask(self, "erasure.list", {"include_closed": True, "limit": 100}, failing="Retention")
        policies = await ask(self, "retention.policy.list", failing="Retention")
        if not self.is_attached:
            return   # the console closed while the daemon answered
        self.plan = plan
        self._summary(plan, policies, holds, requests)
        self._fill("upcoming", [(f"a{n}", a, (day(a["due_at"]), a["action"], SHORT_TABLE.get(a["table"], a["table"]),
                                              tail(a["row_id"]), tail(a["client_id"]),
                                              SHORT_REASON.get(a["reason"], a["reason"]),
                                              tail(a["blocked_by"]) if a["blocked_by"] else "—"))
                                for n, a in enumerate(plan.get("actions") or [])])
        self._fill("holds", [(h["id"], h, (h["scope"] if h["active"] else "released",
                                           tail(h["client_id"] or h["practice_id"]), h["created_by"],
                                           day(h["created_at"]), h["reason"])) for h in holds])
        self._fill("requests", [(r["id"], r, (r["status"], tail(r["client_id"]), r["requested_by"],
                                              day(r["created_at"]), day(r.get("expires_at")), self._note(r)))
                                for r in requests])
        self._fill("policies", [(p["id"], p, (p["table_name"], days(p["archive_after_days"]),
                                              days(p["delete_after_days"]), "active" if p["active"] else "off",
                                              day(p["updated_at"]))) for p in policies])
        self._selection_changed()

    def _note(self, request: dict) -> str:
        if request["status"] != "pending":
            return request.get("approved_by") or request.get("rejected_by") or ""
        if request.get("held_by"):
            return "on hold"
        return "yours" if self.identity and request["requested_by"] == self.identity.actor else ""

    def _summary(self, plan: dict, policies: list, holds: list, requests: list) -> None:
        active = [p for p in policies if p["active"]]
        now = sum(s["due_now"] for s in plan.get("summary") or [])
        soon = sum(s["upcoming"] for s in plan.get("summary") or [])
        blocked = sum(s["blocked"] for s in plan.get("summary") or [])
        pending = sum(r["status"] == "pending" for r in requests)
        first = (f"{len(active)} active polic{'y' if len(active) == 1 else 'ies'} · "
                 f"{sum(h['active'] for h in holds)} legal hold(s) in force · {pending} erasure request(s) pending")
        second = (f"Due now {now} · next {plan.get('horizon_days', HORIZON_DAYS)} days {soon} · "
                  f"blocked by holds {blocked}" if active else "No active policy: nothing is archived or deleted.")
        if self.run_state:
            second += f" · {self.run_state}"
        self.query_one("#retention-summary", Static).update(f"{first}\n{second}")

    def _fill(self, view: str, rows: list[tuple[str, dict, tuple]]) -> None:
        table = self.table(view)
        keep = self.selected(view)
        table.clear()
        self.rows[view] = {}
        for key, item, cells in rows:
            self.rows[view][key] = item
            table.add_row(*cells, key=key)
        if keep is not None and keep.get("id") in table.rows:     # kept, and not filtered out
            table.move_cursor(row=table.get_row_index(keep["id"]))

    def apply_audit(self, data: dict) -> None:
        """An audit entry: reload when it was a retention action (this console's or another's)."""
        if data.get("action") in RELOAD_ON and self.identity is not None and self.identity.can(READ):
            self.load()

    def apply_job(self, data: dict) -> None:
        """A `job.<id>` event: a retention run's progress in the summary; reload when it ends."""
        if data.get("kind") != KIND:
            return
        status = data.get("status", "running")
        self.run_state = f"run {status}" + (f" ({data['done']} rows)" if data.get("done") else "")
        if data.get("error"):
            self.run_state += f": {data['error']}"
        if status in FINAL and self.identity is not None:
            self.load()

    # --- actions --------------------------------------------------------------------------

    def action_place_hold(self) -> None:
        if self.refused("place_hold"):
            return

        def hold(values: dict) -> dict:
            return {"reason": values["reason"], "client_id": values["client"] or None}
        self.app.push_screen(FormScreen(
            "Place a legal hold",
            "While the hold is in force nothing of the client (or, with no client id, of the whole practice) "
            "is archived, deleted or erased. Recorded in the audit log under your name.",
            (("client", "Client id (optional) · ctrl+f finds one", "empty: the whole practice"),
             ("reason", "Reason", "a matter or case reference; no clinical details")), submit="Place hold",
            find_client="client", send=self._sender("hold.place", hold, lambda values: "Legal hold placed on "
                              + ("the client." if values["client"] else "the whole practice."))))

    def action_release_hold(self) -> None:
        if self.refused("release_hold"):
            return
        hold = self.selected("holds")
        covers = f"client {hold['client_id']}" if hold["client_id"] else f"practice {hold['practice_id']}"
        self.app.push_screen(
            ConfirmScreen("Release this legal hold?",
                          f"Hold {hold['id']} on {covers} ends now. Unless another hold covers it, retention "
                          "may then archive and delete its records when due, and a pending erasure may be "
                          "approved. Recorded in the audit log under your name.", yes="Release"),
            lambda yes: self.change("hold.release", {"hold_id": hold["id"]}, "Legal hold released.")
            if yes else None)

    def action_request_erasure(self) -> None:
        if self.refused("request_erasure"):
            return

        self.app.push_screen(FormScreen(
            "Request a client's erasure",
            "Files a request only: nothing is erased until a different person approves it, within 7 days.",
            (("client", "Client id · ctrl+f finds one", "the client's id"),
             ("reason", "Reason", "e.g. the reference of the client's written request")), submit="File request",
            find_client="client", send=self._sender("erasure.request", lambda v: {"client_id": v["client"], "reason": v["reason"]},
                              lambda _: "Erasure request filed; a different person must approve it.")))

    def action_approve(self) -> None:
        if self.refused("approve"):
            return
        request = self.selected("requests")
        self.app.push_screen(
            TypedConfirmScreen(
                "Approve and carry out this erasure?",
                f"Request {request['id']}, filed by {request['requested_by']}, erases client "
                f"{request['client_id']} NOW. Every data key of the client is destroyed: its name, contact "
                "details, history, session notes and file names become unreadable everywhere, in every old "
                "backup too, and cannot be recovered by anyone. The client, its sessions and files are "
                "deleted (tombstoned) and sync peers receive the delete. The key records stay as evidence "
                "of the erasure, which is audited under your name.",
                ERASE_WORD, yes="Erase client"),
            lambda confirmed: self.change("erasure.approve", {"request_id": request["id"]},
                                          f"Client {tail(request['client_id'])} erased.")
            if confirmed is not None else None)

    def action_reject(self) -> None:
        if self.refused("reject"):
            return
        request = self.selected("requests")
        self.app.push_screen(
            ConfirmScreen("Reject this erasure request?",
                          f"Request {request['id']} for client {request['client_id']} is closed as rejected; "
                          "nothing is erased. Recorded in the audit log under your name.", yes="Reject"),
            lambda yes: self.change("erasure.reject", {"request_id": request["id"]}, "Erasure request rejected.")
            if yes else None)

    def action_set_policy(self) -> None:
        """The table picked from the ones a policy may name, then its days (the form
        starts from the table's policy when it has one)."""
        if self.refused("set_policy"):
            return

        def chosen(table: str | None) -> None:
            if table is None:
                return

            def policy(values: dict) -> dict:
                try:
                    archive = int(values["archive"])
                    delete = int(values["delete"]) if values["delete"] else None
                except ValueError:
                    raise ValueError("Days must be whole numbers.") from None
                return {"table_name": table, "archive_after_days": archive, "delete_after_days": delete}
            current = next((p for p in self.rows["policies"].values() if p["table_name"] == table), {})
            self.app.push_screen(FormScreen(
                f"Retention policy for {table}",
                "Rows are archived N days after their date and deleted M days after it (M >= N), never "
                "sooner than M-N days after archiving. Deleting a client destroys its keys.",
                (("archive", "Archive after (days)", "e.g. 730"),
                 ("delete", "Delete after (days, optional)", "e.g. 2555; empty: never delete")), submit="Save",
                values={"archive": current.get("archive_after_days"), "delete": current.get("delete_after_days")},
                send=self._sender("retention.policy.set", policy,
                                  lambda values: f"Retention policy for {table} saved.")))
        self.app.push_screen(RunJobScreen([(table, None) for table in TABLES],
                                          title="Set the retention policy of which table?"), chosen)

    def action_run_now(self) -> None:
        if self.refused("run_now"):
            return
        due = {"archive": 0, "delete": 0}
        for s in self.plan.get("summary") or []:
            due[s["action"]] += s["due_now"]
        self.app.push_screen(
            ConfirmScreen("Run retention now?",
                          f"Up to {due['archive']} row(s) are archived and up to {due['delete']} deleted now, "
                          "by the policies (deleting a client destroys its keys); rows under a legal hold are "
                          "left alone. Each action is audited.", yes="Run"),
            lambda yes: self.run_now() if yes else None)

    @tab_work(group="retention-actions")
    async def run_now(self) -> None:
        run = await ask(self, "job.run", {"kind": KIND}, failing="Could not start retention")
        self.follow_started(run)
        self.notify(f"Retention run started ({tail(run['id'])})")

    def _sender(self, cmd: str, build, done):
        """A FormScreen `send` for `cmd` (form.daemon_sender): on success the tab says
        `done(values)` and reloads."""
        def finished(values: dict, _answer) -> None:
            self.notify(done(values))
            if live(self):
                self.load()
        return daemon_sender(self, cmd, build, finished)

    @tab_work(group="retention-actions")
    async def change(self, cmd: str, args: dict, done: str) -> None:
        await ask(self, cmd, args, failing="Refused", notice_seconds=10)
        self.notify(done)
        self.load()
