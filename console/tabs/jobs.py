"""Jobs: recent runs from jobs.list, live status from `job.*` events; run and cancel.

`r` runs a kind with its defaults after a confirmation; `o` runs one with options: a
form built from the params schema the daemon publishes for the kind (`job.kind.list`,
helpers/job_params), whose refusals are shown under the field they name."""
from __future__ import annotations

from strongroom.console.helpers.job_params import form_fields, params_from
from strongroom.console.helpers.text import counted, duration, when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.modals.run_job import RunJobScreen
from strongroom.console.tabs.base import ANY, Job, Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

COLUMNS = (("Kind", "kind"), ("Status", "status"), ("Progress", "progress"), ("Trigger", "trigger"),
           ("By", "by"), ("Queued", "queued"), ("Took", "took"))
ACTIVE = ("queued", "running")
WHAT_JOBS_DO = {
    "integrity": "re-hashes the audit chain and checks every protected row's checksum",
    "key_rotation": "re-encrypts client records under new data keys (resumable)",
}
# Where the kinds that need a person's arguments are started (the daemon lists them as
# `on_request_kinds`): started here with none, they could only fail.
STARTED_FROM = {
    "restore": "the Backups tab (it needs a snapshot and an empty database)",
    "export": "the Exports tab (it needs tables and fields)",
}


class JobsTab(Tab, Vertical):
    BINDINGS = [Binding("r", "run_job", "Run job"), Binding("o", "run_with_options", "Run with options"),
                Binding("c", "cancel_job", "Cancel job"), Binding("ctrl+r", "reload", "Reload")]
    # Offered to whoever may run some kind; the kind chosen, or the run's, is checked then.
    NEEDS = {"run_job": Job(ANY), "run_with_options": Job(ANY), "cancel_job": Job(ANY)}
    TOPICS = ("job.",)
    NOTE = "jobs-note"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.on_request: set[str] = set()
        self.described: dict[str, dict] = {}    # job.kind.list by kind, fetched when first needed
        self.runs: dict[str, dict] = {}
        # Runs asked to stop, shown "cancelling" until they end: a job stops only at its
        # next safe point, and until then the daemon still reports it running.
        self.cancelling: set[str] = set()

    def compose(self) -> ComposeResult:
        yield ListTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="jobs-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def took_identity(self, status: dict) -> None:
        self.on_request = set(status.get("on_request_kinds") or [])
        super().took_identity(status)

    def note(self) -> str:
        reason = self.why_not("run_job")
        return (f"Running and cancelling jobs is disabled: {reason}." if reason
                else "r: run a job · o: with options · c: cancel the selected run")

    @tab_work(exclusive=True, group="jobs")
    async def load(self) -> None:
        if self.identity.why_not("audit:read"):
            self.query_one("#jobs-note", Static).update(f"Job history hidden: {self.identity.why_not('audit:read')}")
            return
        runs = await ask(self, "job.list", {"limit": 200}, failing="Jobs")
        table = self.query_one(DataTable)
        table.clear()
        self.runs = {}
        for run in runs:
            self.runs[run["id"]] = run
            table.add_row(*self._cells(run), key=run["id"])

    def _status(self, run_id: str, status: str) -> str:
        if status not in ACTIVE:
            self.cancelling.discard(run_id)
        return "cancelling" if run_id in self.cancelling else status

    def _cells(self, run: dict) -> tuple:
        return (run["job_kind"], self._status(run["id"], run["status"]),
                counted(run.get("progress_done"), run.get("progress_total"), run.get("progress_unit")),
                run.get("trigger") or "", run.get("requested_by") or "", when(run.get("queued_at")),
                duration(run.get("duration_seconds")))

    def apply_job(self, data: dict) -> None:
        """A `job.<id>` event: update the row in place, or reload to pick up a new run."""
        run = self.runs.get(data.get("run_id", ""))
        if run is None or data.get("status") not in ACTIVE:
            if self.identity is not None:
                self.load()
            return
        table = self.query_one(DataTable)
        table.update_cell(run["id"], "status", self._status(run["id"], data["status"]))
        table.update_cell(run["id"], "progress", counted(data.get("done"), data.get("total"), data.get("unit")))

    def selected_run(self) -> dict | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.runs.get(key.value)

    def needs_arguments(self, kind: str) -> str | None:
        if kind not in self.on_request:
            return None
        return f"start it from {STARTED_FROM.get(kind, 'the tab it belongs to')}"

    def choices(self) -> list[tuple[str, str | None]]:
        """Each kind this daemon offers, with why it may not be run from here (or None)."""
        return [(kind, self.identity.why_not(f"job:{kind}:run") or self.needs_arguments(kind))
                for kind in self.kinds]

    def action_run_job(self) -> None:
        choices = self.choices()

        def chosen(kind: str | None) -> None:
            if kind is None:
                return
            what = WHAT_JOBS_DO.get(kind, f"runs the {kind} job")
            self.app.push_screen(
                ConfirmScreen(f"Run {kind} now?", f"Starts a run of {kind} on the daemon now: it {what}. "
                              "The run is recorded in the audit log under your name.", yes="Run"),
                lambda yes: self.run_job(kind) if yes else None)
        self.app.push_screen(RunJobScreen(choices), chosen)

    def action_run_with_options(self) -> None:
        self.app.push_screen(RunJobScreen(self.choices(), title="Run a job with options"),
                             lambda kind: self.ask_options(kind) if kind else None)

    @tab_work(group="jobs-actions")
    async def ask_options(self, kind: str) -> None:
        """The form for `kind`'s params, built from its schema; submitting it runs the job."""
        if not self.described:
            self.described = {k["kind"]: k for k in await ask(self, "job.kind.list", {}, failing="Job kinds")}
        described = self.described.get(kind) or {"summary": "", "params": {}}
        schema = described["params"]
        fields = form_fields(schema)
        if not fields:
            self.run_job(kind)
            return

        def started(values: dict, run: dict) -> None:
            self.notify(f"{kind} run started ({run['id'][:8]}…)")
            self.load()
        self.app.push_screen(FormScreen(
            f"Run {kind} now", f"{described['summary']} Empty fields take their defaults. The run is "
            "recorded in the audit log under your name.", fields, submit="Run",
            send=daemon_sender(self, "job.run", lambda values: {"kind": kind, "params": params_from(schema, values)},
                               started)))

    @tab_work(group="jobs-actions")
    async def run_job(self, kind: str) -> None:
        run = await ask(self, "job.run", {"kind": kind}, failing=f"Could not start {kind}")
        self.notify(f"{kind} run started ({run['id'][:8]}…)")
        self.load()

    def action_cancel_job(self) -> None:
        run = self.selected_run()
        if run is None or run["status"] not in ACTIVE:
            self.notify("Select a queued or running job to cancel.", severity="warning")
            return
        reason = self.identity.why_not(f"job:{run['job_kind']}:run")
        if reason:
            self.notify(f"Cannot cancel: {reason}", severity="error")
            return
        self.app.push_screen(
            ConfirmScreen(f"Cancel this {run['job_kind']} run?",
                          f"Run {run['id']} stops at its next safe point and ends as cancelled; "
                          "what it finished so far stays, nothing is half-written. You can run it again later.",
                          yes="Cancel run"),
            lambda yes: self.cancel_job(run["id"]) if yes else None)

    @tab_work(group="jobs-actions")
    async def cancel_job(self, run_id: str) -> None:
        await ask(self, "job.cancel", {"run_id": run_id}, failing="Could not cancel")
        self.cancelling.add(run_id)
        self.notify("Cancellation requested: the run stops at its next safe point.")
        self.load()
