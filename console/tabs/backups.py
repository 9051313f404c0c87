"""Backups: snapshots from backups.list with how far each is proven, and the jobs that
make and prove them: back up now (`b`), verify the selected snapshot by reading every
chunk back (`v`) or fast, manifest and object presence only (`f`), a restore drill into
a scratch database (`d`), and a restore into an empty database (`R`), which needs the
snapshot's short id typed. Runs show live progress from `job.*` events; an action the
user may not take is disabled and the note says why."""
from __future__ import annotations

from strongroom.console.helpers.text import duration, size, when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import daemon_sender
from strongroom.console.modals.typed_confirm import TypedConfirmScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.job_progress import show_runs
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

# Fits 78 columns; the snapshot's kind and id are in the detail line under the table.
COLUMNS = (("Started", "started", 19), ("Status", "status", 9), ("Proof", "proof", 8),
           ("Size", "size", 9), ("Stored", "stored", 9), ("Rows", "rows", 7))
JOB_KINDS = ("backup", "verify", "restore_drill", "restore")
KEEP_FINISHED = 2


class BackupsTab(Tab, Vertical):
    BINDINGS = [Binding("b", "backup", "Back up now"), Binding("v", "verify", "Verify (read)"),
                Binding("f", "verify_fast", "Verify (fast)"), Binding("d", "drill", "Restore drill"),
                Binding("R", "restore", "Restore", key_display="R"), Binding("ctrl+r", "reload", "Reload")]
    NEEDS = {"backup": Job("backup"), "verify": Job("verify"), "verify_fast": Job("verify"),
             "drill": Job("restore_drill"), "restore": Job("restore")}
    TOPICS = ("job.",)
    NOTE = "backups-note"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshots: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Vertical(id="backups-running")
        yield ListTable(id="backups-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="backup-detail", classes="muted")
        yield Plain("", id="backups-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def note(self) -> str:
        reasons = [f"{kind}: {reason}" for kind in JOB_KINDS if (reason := self.why_not_job(kind))]
        keys = "b back up · v verify (read) · f verify (fast) · d drill · R restore"
        return keys + ("\ndisabled: " + "; ".join(reasons) if reasons else "")

    @tab_work(exclusive=True, group="backups")
    async def load(self) -> None:
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#backup-detail", Static).update(f"Snapshot list hidden: {reason}")
            return
        snapshots = await ask(self, "backup.list", {"limit": 200}, failing="Backups")
        table = self.query_one(DataTable)
        table.clear()
        self.snapshots = {}
        for s in snapshots:
            self.snapshots[s["id"]] = s
            table.add_row(when(s.get("started_at")), s.get("status") or "",
                          s.get("proof") or "", size(s.get("size_bytes")), size(s.get("stored_bytes")),
                          str(s.get("row_count") or "—"), key=s["id"])
        self.query_one("#backup-detail", Static).update(
            f"{len(snapshots)} snapshots" if snapshots else "no snapshots yet")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        s = self.snapshots.get(event.row_key.value) if event.row_key is not None else None
        if s is None:
            return
        took = None
        if s.get("finished_at") and s.get("started_at"):
            from datetime import datetime
            took = (datetime.fromisoformat(s["finished_at"]) - datetime.fromisoformat(s["started_at"])).total_seconds()
        self.query_one("#backup-detail", Static).update(
            f"{s.get('kind')} {s['id']} · took {duration(took)} · verified {when(s.get('verified_at'))}"
            + (f" · error: {s['error']}" if s.get("error") else ""))

    def apply_job(self, data: dict) -> None:
        """A `job.<id>` event of a backup kind: live progress; reload the list when it ends."""
        if data.get("kind") not in JOB_KINDS or not data.get("run_id"):
            return
        if show_runs(self.query_one("#backups-running", Vertical), data, KEEP_FINISHED) and self.identity:
            self.load()

    def action_backup(self) -> None:
        self.app.push_screen(
            ConfirmScreen("Back up now?", "Starts a backup run on the daemon now: every protected table is read, "
                          "encrypted and written to the backup target as a new snapshot. Progress shows on the "
                          "Overview and Jobs tabs; the run is audited under your name.", yes="Back up"),
            lambda yes: self.start("backup", {}) if yes else None)

    def selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.notify("No snapshot selected.", severity="warning")
            return None
        return self.snapshots[table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value]

    def action_verify(self) -> None:
        if (snapshot := self.selected()) is None:
            return
        self.app.push_screen(
            ConfirmScreen("Verify this snapshot by reading it back?",
                          f"Starts a verify run for snapshot {snapshot['id']}: every chunk is fetched, "
                          "authenticated, decrypted and re-hashed. If all is whole its proof becomes "
                          "'verified'; if not, the run fails naming each object at fault and the proof stays "
                          f"'{snapshot.get('proof')}'.", yes="Verify"),
            lambda yes: self.start("verify", {"snapshot_id": snapshot["id"], "read_data": True}) if yes else None)

    def action_verify_fast(self) -> None:
        if (snapshot := self.selected()) is None:
            return
        self.app.push_screen(
            ConfirmScreen("Verify this snapshot fast?",
                          f"Starts a fast verify run for snapshot {snapshot['id']}: the manifest's signature is "
                          "checked and every object it names must be present at its recorded size. Nothing is "
                          "downloaded or decrypted, so the proof stays "
                          f"'{snapshot.get('proof')}' (only reading the data back raises it).", yes="Verify"),
            lambda yes: self.start("verify", {"snapshot_id": snapshot["id"], "read_data": False}) if yes else None)

    def action_drill(self) -> None:
        if (snapshot := self.selected()) is None:
            return
        self.app.push_screen(
            ConfirmScreen("Run a restore drill of this snapshot?",
                          f"Restores snapshot {snapshot['id']} into a scratch database on the daemon's machine, "
                          "proves it against the manifest (row counts, table hashes, the audit chain) and "
                          "deletes the scratch copy. The live database is not touched. If it succeeds the "
                          "snapshot's proof becomes 'drilled'.", yes="Drill"),
            lambda yes: self.start("restore_drill", {"snapshot_id": snapshot["id"]}) if yes else None)

    def action_restore(self) -> None:
        if (snapshot := self.selected()) is None:
            return
        short = snapshot["id"][:8]

        # The target is checked when the run is asked for: refused, the dialog stays open.
        send = daemon_sender(self, "job.run", lambda v: {"kind": "restore", "params": {
            "snapshot_id": snapshot["id"], "dest": v["dest"]}},
            lambda _values, run: self.notify(f"restore run started ({run['id'][:8]}…)"))
        self.app.push_screen(
            TypedConfirmScreen(
                f"Restore snapshot {short}?",
                f"Restores snapshot {snapshot['id']} (taken {when(snapshot.get('started_at'))}, "
                f"{snapshot.get('row_count') or '?'} rows) into the database named below, which must be empty: "
                "a non-empty target is refused, and the live database is never overwritten from here. "
                "Every table is loaded and checked against the manifest's row counts and hashes and the "
                "audit chain. The copy holds every client's records (encrypted as in the live database). "
                "The restore is audited under your name.",
                short, yes="Restore",
                fields=(("dest", "sqlite:////path/to/new.db or postgresql+psycopg://… (empty)", ""),),
                send=send))

    @tab_work(group="backups-actions")
    async def start(self, kind: str, params: dict) -> None:
        run = await ask(self, "job.run", {"kind": kind, "params": params}, failing=f"Could not start {kind}")
        self.notify(f"{kind} run started ({run['id'][:8]}…)")
