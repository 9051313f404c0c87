"""Compliance: the score, its breakdown by area, and every check with its evidence and
what to do when it fails (compliance.report).

Live: the report reloads by itself when something it scores may have changed: a job
ended (a backup, an integrity run, an export), a new audit entry that is not a read (a
configuration, key, user or hold changed), or the daemon's `compliance` event (its
score moved). Bursts of events cost one reload: RELOAD_DELAY after the first of them.

Under the breakdown, the practice's encryption level (practice.encryption.show): the
level in force and whether it is met; `e` opens its evidence, requirement by
requirement, and lets a keys manager choose another (console/modals/encryption.py).
"""
from __future__ import annotations

import json

from strongroom.console.client import ClientError
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.encryption import EncryptionScreen, summary
from strongroom.console.tabs.base import Tab
from strongroom.console.widgets.job_progress import FINAL
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.score_gauge import ScoreGauge
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

RELOAD_DELAY = 1.0

_BARS = "▁▂▃▄▅▆▇█"


def score_trend(scores: list[int]) -> str:
    """Daily scores as a one-line bar chart (0-100), oldest first, with the newest number."""
    bars = "".join(_BARS[min(len(_BARS) - 1, max(0, score * len(_BARS) // 101))] for score in scores[-30:])
    return f"{bars} {scores[-1]}" if scores else ""


class ComplianceTab(Tab, Vertical):
    BINDINGS = [Binding("e", "encryption", "Encryption level"), Binding("ctrl+r", "reload", "Reload")]
    NEEDS = {"encryption": "compliance:read"}
    TOPICS = ("job.", "audit", "compliance")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.checks: list[dict] = []
        self.score: int | None = None
        self.reload_pending = False

    def compose(self) -> ComposeResult:
        yield ScoreGauge(id="compliance-score")
        yield Plain("", id="areas")
        yield Plain("", id="encryption-level")
        yield ListTable(id="checks-table", cursor_type="row")
        yield Plain("", id="check-detail")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in (("", "ok"), ("Area", "area"), ("Check", "name")):
            table.add_column(label, key=key)

    # --- live ---------------------------------------------------------------------------

    def apply_job(self, data: dict) -> None:
        if data.get("status") in FINAL:
            self.reload_soon()

    def apply_audit(self, data: dict) -> None:
        if data.get("action") != "READ":
            self.reload_soon()

    def apply_compliance(self, data: dict) -> None:
        if data.get("score") != self.score:
            self.reload_soon()

    def reload_soon(self) -> None:
        """One reload RELOAD_DELAY after the first of a burst of changes."""
        if self.identity is None or self.reload_pending or not self.identity.can("compliance:read"):
            return
        self.reload_pending = True
        self.set_timer(RELOAD_DELAY, self._reload_now)

    def _reload_now(self) -> None:
        self.reload_pending = False
        self.load()

    @tab_work(exclusive=True, group="compliance")
    async def load(self) -> None:
        reason = self.identity.why_not("compliance:read")
        if reason:
            self.query_one("#areas", Static).update(f"Compliance report hidden: {reason}")
            return
        try:
            report = await fetch(self, "compliance.report.get")
        except ClientError as err:
            self.query_one("#areas", Static).update(f"Could not load: {err.message}")
            return
        self.score = report["score"]
        self.query_one(ScoreGauge).show(report["score"])
        trend = [h["score"] for h in report.get("history") or []]
        self.query_one("#areas", Static).update("  ".join(
            f"{area}: not configured (forgoes {a['weight']})" if a.get("status") == "not configured"
            else f"{area} {a['points']:g}/{a['weight']} ({a['passed']}/{a['checks']})"
            for area, a in report["areas"].items())
            + (f"\ntrend ({len(trend)} days): {score_trend(trend)}" if len(trend) > 1 else ""))
        table = self.query_one(DataTable)
        table.clear()
        self.checks = report["checks"]
        for i, check in enumerate(self.checks):
            table.add_row("✓" if check["passed"] else "✗", check["area"], check["name"], key=str(i))
        if self.checks:
            self.show_check(0)
        self.load_encryption()

    @tab_work(exclusive=True, group="compliance-encryption")
    async def load_encryption(self) -> None:
        try:
            status = await fetch(self, "practice.encryption.show")
        except ClientError as err:
            self.query_one("#encryption-level", Static).update(f"Encryption level: {err.message}")
            return
        self.query_one("#encryption-level", Static).update(summary(status) + " · e: evidence, another level")

    def action_encryption(self) -> None:
        """The encryption level's evidence, and another level (console/modals/encryption.py)."""
        if self.refused("encryption"):
            return
        self.app.push_screen(EncryptionScreen(self.identity), lambda _: self.load())

    @on(DataTable.RowHighlighted, "#checks-table")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value is not None:
            self.show_check(int(event.row_key.value))

    def show_check(self, index: int) -> None:
        check = self.checks[index]
        lines = [f"{'PASS' if check['passed'] else 'FAIL'} · {check['safeguard']}",
                 f"evidence: {json.dumps(check['evidence'], sort_keys=True, default=str)}"]
        if not check["passed"] and check.get("remediation"):
            lines.append(f"remediation: {check['remediation']}")
        self.query_one("#check-detail", Static).update("\n".join(lines))
