"""Exports: the history (exports.list), a form for a new export (`n`): tables and
their fields, date (or relative range), client, practice and status filters, format (CSV
with a UTF-8 BOM), masking and an AES-256 ZIP with its password, or the same saved as a
named configuration with a schedule, retention and password credential
(modals/export_form.py); and a saved export configuration run by name (`s`,
modals/saved_export.py). The request goes to exports.run, which refuses a bad one at
once; the run's progress arrives as `job.*` events. Enter on an export shows it with its manifest.

Starting an export needs job:export:run; the masking profile "full" needs phi:read too;
each is shown disabled with the reason when the user lacks it. PHI fields are marked in
the field list; their values never reach the console (only counts and paths do).
"""
from __future__ import annotations

from strongroom.console.helpers.text import when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.detail import DetailScreen
from strongroom.console.modals.export_form import ExportFormScreen
from strongroom.console.modals.form import daemon_sender
from strongroom.console.modals.saved_export import SavedExportScreen
from strongroom.console.tabs.base import Job, Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

KIND = "export"
# Fits 78 columns; where the files are, and any error, show under the table.
COLUMNS = (("Created", "created", 19), ("Status", "status", 9), ("Format", "format", 6), ("Rows", "rows", 7),
           ("Requested by", "by", 24))
PAGE = 100


class ExportsTab(Tab, Vertical):
    BINDINGS = [Binding("n", "new_export", "New export"), Binding("s", "run_saved", "Run saved"),
                Binding("ctrl+r", "reload", "Reload")]
    NEEDS = {"new_export": Job(KIND), "run_saved": Job(KIND)}
    TOPICS = ("job.",)
    NOTE = "exports-note"
    REFUSED = "Cannot export"
    LAZY = True           # the history is fetched once the tab is first looked at
    JOB_KIND, RUNNING = KIND, "exports-running"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.exports: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        yield Plain("", id="exports-summary")
        yield Vertical(id="exports-running")
        yield ListTable(id="exports-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="export-detail", classes="muted")
        yield Plain("", id="exports-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def note(self) -> str:
        reason = self.why_not("new_export")
        return (f"n, s: new or saved export disabled ({reason})" if reason else
                "n: new export · s: run a saved one · enter: an export's manifest")

    @tab_work(exclusive=True, group="exports")
    async def load(self) -> None:
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#exports-summary", Static).update(f"Export history hidden: {reason}")
            return
        page = await ask(self, "export.list", {"limit": PAGE}, failing="Exports")
        if not self.is_attached:
            return
        self.show_history(page)

    def show_history(self, page: dict) -> None:
        items = page.get("items") or []
        failed = sum(e.get("status") == "failed" for e in items)
        total = page.get("total", len(items))
        self.query_one("#exports-summary", Static).update(
            "No exports yet." if not total else
            f"{total} export{'' if total == 1 else 's'} · newest {when(items[0].get('created_at'))}"
            + (f" · {failed} failed" if failed else "") + (f" · showing {len(items)}" if total > len(items) else ""))
        table = self.query_one(DataTable)
        table.clear()
        self.exports = {}
        for e in items:
            self.exports[e["id"]] = e
            rows = e.get("row_count")
            table.add_row(when(e.get("created_at")), e.get("status") or "", e.get("format") or "",
                          "—" if rows is None else str(rows), e.get("requested_by") or "", key=e["id"])
        for running in page.get("running") or []:
            self.apply_job({**running, "status": "running"})
        self._show_detail()

    def selected(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return self.exports.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        e = self.selected()
        text = ""
        if e is not None:
            text = (f"{e['id'][:8]}… · {e.get('location') or 'no files'}"
                    + (f" · sha256 {e['sha256'][:16]}…" if e.get("sha256") else "")
                    + (f" · error: {e['error']}" if e.get("error") else ""))
        self.query_one("#export-detail", Static).update(text)

    @on(DataTable.RowSelected)
    def action_show(self) -> None:
        e = self.selected()
        if e is not None:
            self.show_export(e["id"])

    @tab_work(group="exports-show")
    async def show_export(self, export_id: str) -> None:
        shown = await ask(self, "export.show", {"export_id": export_id}, failing="Export")
        self.app.push_screen(DetailScreen(f"Export {export_id[:8]}…", shown))

    # --- a new export, and its live progress ------------------------------------------------

    def action_new_export(self) -> None:
        if not self.refused("new_export"):
            self.open_form()

    @tab_work(group="exports-actions")
    async def open_form(self) -> None:
        catalogue = await ask(self, "export.table.list", failing="Exports")
        send = daemon_sender(self, "export.run", lambda args: args, lambda _args, run: self.started(run))
        save = daemon_sender(self, "export.configuration.create", lambda args: args,
                             lambda _args, saved: self.saved(saved))
        self.app.push_screen(ExportFormScreen(catalogue, phi_reason=self.identity.why_not("phi:read"), send=send,
                                              save=save))

    def saved(self, configuration: dict) -> None:
        when = f"runs {configuration['schedule']} (UTC)" if configuration.get("schedule") else "runs by hand"
        self.notify(f"Saved export configuration {configuration['name']}: {when}; s runs it now.")

    def action_run_saved(self) -> None:
        if not self.refused("run_saved"):
            self.open_saved()

    @tab_work(group="exports-actions")
    async def open_saved(self) -> None:
        catalogue = await ask(self, "export.table.list", failing="Exports")
        if not catalogue.get("configurations"):
            self.notify("No saved exports yet (n, Save as; or strongroom export ... --save-as NAME).", severity="warning")
            return
        screen = SavedExportScreen(catalogue["configurations"], int(catalogue.get("min_password", 8)))
        self.app.push_screen(screen, lambda args: self.start(args) if args else None)

    @tab_work(group="exports-actions")
    async def start(self, args: dict) -> None:
        run = await ask(self, "export.run", args, failing="Export refused", notice_seconds=10)
        self.started(run)

    def started(self, run: dict) -> None:
        self.follow_started(run)
        self.notify(f"Export started ({run['id'][:8]}…)")

    def run_ended(self, data: dict) -> None:
        """An export run ended: reload the history, once it has been fetched at all."""
        if self.shown:
            self.load()
