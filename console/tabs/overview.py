"""Overview: health cards fed by `health` events (role, backups and their outcomes over the
window, audit chain, integrity, sync, compliance, storage), live job progress fed by
`job.*`, the compliance score and a sparkline of recent job durations, and storage per
table and per backup target."""
from __future__ import annotations

from strongroom.console.helpers.text import age, size, when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.tabs.base import Tab
from strongroom.console.widgets.health_card import HealthCard
from strongroom.console.widgets.job_progress import show_runs
from strongroom.console.widgets.plain import Plain, PlainLabel
from strongroom.console.widgets.score_gauge import ScoreGauge
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Sparkline, Static

KEEP_FINISHED = 4
BACKUP_WARN_SECONDS = 26 * 3600
BACKUP_BAD_SECONDS = 72 * 3600
SYNC_BAD_SECONDS = 24 * 3600
TARGET_WARN_PERCENT = 80.0
TARGET_BAD_PERCENT = 95.0
STORAGE_TABLES = 8


class OverviewTab(Tab, VerticalScroll):
    can_focus = True
    TOPICS = ("health", "job.")

    def compose(self) -> ComposeResult:
        with Grid(id="cards"):
            yield HealthCard("Role", id="card-role")
            yield HealthCard("Last backup", id="card-backup")
            yield HealthCard("Audit chain", id="card-chain")
            yield HealthCard("Integrity", id="card-integrity")
            yield HealthCard("Sync lag", id="card-sync")
            yield HealthCard("Open conflicts", id="card-conflicts")
            yield HealthCard("Compliance", id="card-compliance")
            yield HealthCard("Backups", id="card-backups")
            yield HealthCard("Storage", id="card-storage")
        with Horizontal(id="figures"):
            with Vertical(classes="figure"):
                yield PlainLabel("Compliance score", classes="section")
                yield ScoreGauge(id="compliance-gauge")
            with Vertical(classes="figure"):
                yield PlainLabel("Job durations", id="spark-label", classes="section")
                yield Sparkline([], id="durations")
        yield PlainLabel("Jobs", classes="section")
        yield Vertical(id="running")
        yield Plain("no job running", id="no-running", classes="muted")
        yield PlainLabel("Next scheduled runs", classes="section")
        yield Plain("…", id="next-runs")
        yield PlainLabel("Storage", classes="section")
        yield Plain("…", id="storage")

    def focus_main(self) -> None:
        self.focus()      # the whole tab scrolls: there is no list to focus

    @tab_work(exclusive=True, group="overview")
    async def load(self) -> None:
        health = await ask(self, "health", failing="Overview")
        if health:
            self.apply_health(health)
        await self._load_compliance()
        await self._load_durations()

    async def _load_compliance(self) -> None:
        gauge = self.query_one(ScoreGauge)
        reason = self.identity.why_not("compliance:read")
        if reason:
            gauge.update(f"hidden: {reason}")
            return
        gauge.show((await ask(self, "compliance.report.get", failing="Overview"))["score"])

    async def _load_durations(self) -> None:
        if self.identity.why_not("audit:read"):
            self.query_one("#spark-label", Label).update("Job durations: needs audit:read")
            return
        runs = await ask(self, "job.list", {"limit": 40}, failing="Overview")
        durations = [r["duration_seconds"] for r in reversed(runs) if r.get("duration_seconds") is not None]
        self.query_one(Sparkline).data = durations
        label = (f"Job durations: {len(durations)} run{'s' if len(durations) != 1 else ''}, max {max(durations):.1f}s" if durations
                 else "Job durations: no finished runs")
        self.query_one("#spark-label", Label).update(label)

    # --- live data, called by the main screen -------------------------------------------

    def apply_health(self, data: dict) -> None:
        role = data.get("role", "?")
        self.query_one("#card-role", HealthCard).show(
            f"{role} · up {age(data.get('uptime_seconds'))}", "ok" if role == "leader" else "warn")
        backup_age = data.get("last_backup_age_seconds")
        state = ("bad" if backup_age is None or backup_age > BACKUP_BAD_SECONDS
                 else "warn" if backup_age > BACKUP_WARN_SECONDS else "ok")
        self.query_one("#card-backup", HealthCard).show(
            "never" if backup_age is None else f"{age(backup_age)} ago", state)
        chain = data.get("audit_chain_ok")
        self.query_one("#card-chain", HealthCard).show(
            {True: "intact", False: "BROKEN"}.get(chain, "not verified yet"),
            {True: "ok", False: "bad"}.get(chain, "unknown"))
        integrity = data.get("integrity")
        self.query_one("#card-integrity", HealthCard).show(
            "never run" if not integrity else
            f"{integrity['status']} {age(integrity['age_seconds'])} ago" if integrity.get("age_seconds") is not None
            else integrity["status"],
            "unknown" if not integrity else "ok" if integrity["status"] == "succeeded" else "bad")
        peers, lag = data.get("sync_peers") or 0, data.get("sync_lag_seconds")
        # The integrity job's latest comparison of the sites (health's sync.consistency).
        checked = ((data.get("sync") or {}).get("consistency") or {}).values()
        differs = [c for c in checked if c.get("status") != "ok"]
        state = "unknown" if not peers else "bad" if lag is None or lag > SYNC_BAD_SECONDS else "ok"
        self.query_one("#card-sync", HealthCard).show(
            ("no peers" if not peers else "a peer never synced" if lag is None else f"{age(lag)} ({peers} peers)")
            + (" · sites differ" if differs else " · consistent" if checked else ""),
            "warn" if differs and state == "ok" else state)
        conflicts = data.get("open_conflicts") or 0
        self.query_one("#card-conflicts", HealthCard).show(
            f"{conflicts} waiting" if conflicts else "none", "warn" if conflicts else "ok")
        self._apply_compliance(data.get("compliance"))
        self._apply_backups(data.get("backups"))
        self._apply_storage(data.get("storage"))
        for job in data.get("running_jobs") or []:
            self.apply_job({**job, "status": "running"})
        next_runs = data.get("next_runs") or {}
        self.query_one("#next-runs", Static).update(
            "\n".join(f"{kind:<14} {when(at)} UTC" for kind, at in sorted(next_runs.items()))
            or "no schedules on this daemon")

    def _apply_compliance(self, compliance: dict | None) -> None:
        card = self.query_one("#card-compliance", HealthCard)
        if not compliance:
            card.show("not reported", "unknown")
            return
        missing = compliance.get("not_configured") or []
        card.show(f"{compliance['score']}/100 (min {compliance['threshold']})"
                  + (f" · {len(missing)} not configured" if missing else ""),
                  "ok" if compliance.get("status") == "ok" else "bad")

    def _apply_backups(self, backups: dict | None) -> None:
        card = self.query_one("#card-backups", HealthCard)
        if not backups:
            card.show("not reported", "unknown")
            return
        ok, failed = backups.get("succeeded", 0), backups.get("failed", 0)
        card.set_title(f"Backups, {backups.get('window_days', 7)} d")
        card.show(f"{ok} succeeded · {failed} failed",
                  "bad" if failed and not ok else "warn" if failed else "ok" if ok else "unknown")

    def _apply_storage(self, storage: dict | None) -> None:
        card, text = self.query_one("#card-storage", HealthCard), self.query_one("#storage", Static)
        if not storage:
            card.show("not reported", "unknown")
            text.update("not reported by this daemon")
            return
        targets = storage.get("targets") or []
        shares = [t["percent"] for t in targets if t.get("percent") is not None]
        fullest = max(shares, default=None)
        card.show(f"db {size(storage.get('database_bytes'))}"
                  + (f" · target {fullest:.0f}% full" if fullest is not None else ""),
                  "unknown" if fullest is None else "bad" if fullest >= TARGET_BAD_PERCENT
                  else "warn" if fullest >= TARGET_WARN_PERCENT else "ok")
        tables = storage.get("tables") or []
        lines = [f"{t['table']:<22} {t['rows']:>12,} rows  {size(t.get('bytes')):>9}"
                 for t in tables[:STORAGE_TABLES]]
        if len(tables) > STORAGE_TABLES:
            lines.append(f"… {len(tables) - STORAGE_TABLES} smaller tables")
        for t in targets:
            quota = (f" of {size(t['quota_bytes'])} ({t['percent']:.1f}%)" if t.get("quota_bytes")
                     else " (no quota)")
            lines.append(f"backups: {t['configuration']:<13} {size(t['used_bytes']):>9}{quota}")
        text.update("\n".join(lines) or "no tables")

    def apply_job(self, data: dict) -> None:
        """A run of any kind (a `job.<id>` event, or one of health's running jobs)."""
        if not data.get("run_id"):
            return
        finished = show_runs(self.query_one("#running", Vertical), data, KEEP_FINISHED, again=True)
        if finished is None:
            return
        if finished and self.identity is not None:
            self.load()
        self.query_one("#no-running").display = False
