"""Integrity: the newest integrity run's checks with their evidence (integrity.report),
the audit chain's status, and "run now" (r) with live progress from `job.*` events.

Enter on a check opens its full evidence. A run in progress shows as a progress row fed
by events; when it ends, the report reloads and the table shows that run's checks.
"""
from __future__ import annotations

from strongroom.console.helpers.text import duration, when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.detail import DetailScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

KIND = "integrity"
COLUMNS = (("Check", "check", 28), ("Result", "status", 7), ("Expected", "expected", 18), ("Actual", "actual", 18))
MARK = {"succeeded": "✓", "failed": "✗", "interrupted": "!", "cancelled": "-"}


def evidence_text(evidence: dict) -> str:
    """Evidence in one line: counts first, then anything else (ids are in the detail view)."""
    parts = [f"{k} {v}" for k, v in evidence.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    parts += [f"{k} {v}" for k, v in evidence.items() if isinstance(v, str) and k != "head_hash" and v]
    ids = evidence.get("ids")
    if ids:
        parts.append(f"{len(ids)} row id{'s' if len(ids) != 1 else ''} listed (enter)")
    return " · ".join(parts) or "no evidence recorded"


class IntegrityTab(Tab, Vertical):
    BINDINGS = [Binding("r", "run_now", "Run check now"), Binding("ctrl+r", "reload", "Reload")]
    NEEDS = {"run_now": Job(KIND)}
    TOPICS = ("job.", "audit")
    NOTE = "integrity-note"
    JOB_KIND, RUNNING = KIND, "integrity-running"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.report: dict = {}
        self.checks: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Plain("", id="integrity-summary")
        yield Plain("", id="integrity-chain")
        yield Vertical(id="integrity-running")
        yield ListTable(id="integrity-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="integrity-evidence", classes="muted")
        yield Plain("", id="integrity-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def note(self) -> str:
        reason = self.why_not("run_now")
        return f"r: run now disabled ({reason})" if reason else "r: run every check now · enter: a check's evidence"

    @tab_work(exclusive=True, group="integrity")
    async def load(self) -> None:
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#integrity-summary", Static).update(f"Integrity evidence hidden: {reason}")
            return
        report = await ask(self, "integrity.report.get", failing="Integrity")
        if not self.is_attached:
            return   # the console closed while the daemon answered
        self.show_report(report)

    def show_report(self, report: dict) -> None:
        self.report = report
        latest = report.get("latest")
        history = "".join(MARK.get(h["status"], "?") for h in reversed(report.get("history") or []))
        if latest is None:
            summary = "No integrity run yet."
        else:
            checks = report.get("checks") or []
            passed = sum(c["status"] in ("ok", "passed") for c in checks)
            summary = (f"Last run: {latest['status']} · {when(latest.get('finished_at'))} · "
                       f"{duration(latest.get('duration_seconds'))} · {passed}/{len(checks)} passed · "
                       f"by {latest.get('requested_by') or latest.get('trigger')}")
            if history:
                summary += f" · history {history}"
        self.query_one("#integrity-summary", Static).update(summary)
        self.query_one("#integrity-chain", Static).update(self._chain_text(report.get("audit_chain") or {}))
        table = self.query_one(DataTable)
        table.clear()
        self.checks = {}
        for n, check in enumerate(report.get("checks") or []):
            key = f"check-{n}"
            self.checks[key] = check
            table.add_row(check.get("name") or "", check.get("status") or "", check.get("expected") or "",
                          check.get("actual") or "", key=key)
        for running in report.get("running") or []:
            self.apply_job({**running, "status": "running"})
        self._show_evidence()

    @staticmethod
    def _chain_text(chain: dict) -> str:
        state = {True: "intact", False: "BROKEN"}.get(chain.get("ok"), "not verified since the daemon started")
        text = f"Audit chain: {state} · head #{chain.get('head_id') or 0}"
        last = chain.get("last_check")
        if last:
            text += f" · last check {last.get('status')} {when(last.get('completed_at'))}"
        return text

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_evidence()

    def selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return self.checks.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _show_evidence(self) -> None:
        check = self.selected()
        self.query_one("#integrity-evidence", Static).update(
            "" if check is None else f"{check['name']}: {evidence_text(check.get('evidence') or {})}")

    @on(DataTable.RowSelected)
    def action_evidence(self) -> None:
        check = self.selected()
        if check is not None:
            self.app.push_screen(DetailScreen(f"Integrity check: {check['name']}", check))

    # --- run now, and live progress -------------------------------------------------------

    def action_run_now(self) -> None:
        if not self.refused("run_now", saying="Cannot run"):
            self.run_now()

    @tab_work(group="integrity-actions")
    async def run_now(self) -> None:
        run = await ask(self, "job.run", {"kind": KIND}, failing="Could not start the integrity check")
        self.follow_started(run)
        self.notify(f"Integrity check started ({run['id'][:8]}…)")

    def apply_audit(self, data: dict) -> None:
        """A new audit entry: the chain's head advances at once (the verdict is the last
        verification's until the next one); a verification by anyone reloads the report."""
        if data.get("action") == "VERIFY" and self.identity is not None:
            self.load()
            return
        if not self.report or not isinstance(data.get("id"), int):
            return
        chain = self.report.setdefault("audit_chain", {})
        if data["id"] > (chain.get("head_id") or 0):
            chain["head_id"] = data["id"]
            self.query_one("#integrity-chain", Static).update(self._chain_text(chain))
