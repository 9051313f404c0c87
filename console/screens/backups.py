"""Backups: snapshots from backups.list with how far each is proven; back up now (`b`)
and prove the selected snapshot by reading every chunk back (`v`), both as jobs."""
from __future__ import annotations

from strongroom.console.client import ClientError
from strongroom.console.screens.confirm import ConfirmScreen
from strongroom.console.screens.identity import Identity
from strongroom.console.screens.text import duration, when
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

# Fits 78 columns; the snapshot's kind and id are in the detail line under the table.
COLUMNS = (("Started", "started", 19), ("Status", "status", 9), ("Proof", "proof", 8),
           ("Size", "size", 9), ("Stored", "stored", 9), ("Rows", "rows", 7))
JOB_KINDS = ("backup", "verify")


def size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class BackupsTab(Vertical):
    BINDINGS = [Binding("b", "backup", "Back up now"), Binding("v", "verify", "Verify snapshot"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity: Identity | None = None
        self.kinds: list[str] = []
        self.snapshots: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield DataTable(id="backups-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="backup-detail", classes="muted")
        yield Static("", id="backups-note", classes="muted")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key, width in COLUMNS:
            table.add_column(label, key=key, width=width)

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    def why_not(self, kind: str) -> str | None:
        if self.identity is None:
            return "not logged in"
        if kind not in self.kinds:
            return f"this daemon has no {kind} job"
        return self.identity.why_not(f"job:{kind}:run")

    def set_identity(self, identity: Identity, status: dict) -> None:
        self.identity = identity
        self.kinds = list(status.get("job_kinds") or [])
        reasons = [f"{kind}: {reason}" for kind in JOB_KINDS if (reason := self.why_not(kind))]
        self.query_one("#backups-note", Static).update(
            "disabled: " + "; ".join(reasons) if reasons else "b: back up now · v: verify the selected snapshot")
        self.refresh_bindings()
        self.load()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "backup" and self.why_not("backup"):
            return None
        if action == "verify" and self.why_not("verify"):
            return None
        return True

    @work(exclusive=True, group="backups")
    async def load(self) -> None:
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#backup-detail", Static).update(f"Snapshot list hidden: {reason}")
            return
        try:
            snapshots = await self.app.call("backups.list", {"limit": 200})
        except ClientError as err:
            self.notify(f"Backups: {err.message}", severity="error")
            return
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
        if data.get("kind") in JOB_KINDS and data.get("status") not in ("queued", "running") and self.identity:
            self.load()

    def action_reload(self) -> None:
        self.load()

    def action_backup(self) -> None:
        self.app.push_screen(
            ConfirmScreen("Back up now?", "Starts a backup run on the daemon now: every protected table is read, "
                          "encrypted and written to the backup target as a new snapshot. Progress shows on the "
                          "Overview and Jobs tabs; the run is audited under your name.", yes="Back up"),
            lambda yes: self.start("backup", {}) if yes else None)

    def action_verify(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            self.notify("No snapshot to verify.", severity="warning")
            return
        snapshot = self.snapshots[table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value]
        self.app.push_screen(
            ConfirmScreen("Verify this snapshot by reading it back?",
                          f"Starts a verify run for snapshot {snapshot['id']}: every chunk is fetched, "
                          "authenticated, decrypted and re-hashed. If all is whole its proof becomes "
                          "'verified'; if not, the run fails naming each object at fault and the proof stays "
                          f"'{snapshot.get('proof')}'.", yes="Verify"),
            lambda yes: self.start("verify", {"snapshot_id": snapshot["id"], "read_data": True}) if yes else None)

    @work(group="backups-actions")
    async def start(self, kind: str, params: dict) -> None:
        try:
            run = await self.app.call("job.run", {"kind": kind, "params": params})
        except ClientError as err:
            self.notify(f"Could not start {kind}: {err.message}", severity="error")
            return
        self.notify(f"{kind} run started ({run['id'][:8]}…)")
