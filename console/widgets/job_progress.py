"""One running job: its kind, a progress bar fed by `job.<id>` events, and its message.

A run whose size is not known yet shows an indeterminate bar, which animates. Once the
run ends the bar stops whatever the outcome, so a failed run never looks busy: a success
fills it, a failure or cancellation leaves it where the run stopped (full, when how far
it got was never known), coloured by the outcome, and the message says what happened.
"""
from __future__ import annotations

from strongroom.console.helpers.text import counted
from strongroom.console.lifecycle import going, live
from strongroom.console.widgets.plain import PlainLabel
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, ProgressBar

# The statuses a job run ends in (every tab that follows runs reads them from here).
FINAL = ("succeeded", "failed", "interrupted", "cancelled")
# How each ending is told at a glance, besides the bar's colour (which not every
# terminal or person sees).
MARKS = {"succeeded": "✓", "failed": "✗", "interrupted": "✗", "cancelled": "⊘"}


class JobProgress(Horizontal):
    DEFAULT_CSS = """
    JobProgress { height: 1; }
    JobProgress > .kind { width: 14; }
    JobProgress > ProgressBar { width: 32; }
    JobProgress > .message { width: 1fr; }
    JobProgress.-failed Bar > .bar--bar, JobProgress.-failed Bar > .bar--complete,
    JobProgress.-interrupted Bar > .bar--bar, JobProgress.-interrupted Bar > .bar--complete { color: $error; }
    JobProgress.-cancelled Bar > .bar--bar, JobProgress.-cancelled Bar > .bar--complete { color: $warning; }
    JobProgress.-failed > .message, JobProgress.-interrupted > .message { color: $error; }
    JobProgress.-cancelled > .message { color: $warning; }
    """

    def __init__(self, run_id: str, kind: str) -> None:
        super().__init__(id=f"run-{run_id}")
        self.run_id = run_id
        self.kind = kind
        self.status = "running"
        self.done: int | None = None
        self.total: int | None = None
        self.unit: str | None = None      # what done and total count (the kind's one unit)
        self.message: str | None = None

    def compose(self) -> ComposeResult:
        yield PlainLabel(self.kind, classes="kind")
        yield ProgressBar(total=None, show_eta=False)
        yield PlainLabel("", classes="message")

    def show(self, status: str, done: int | None, total: int | None, message: str | None,
             unit: str | None = None) -> None:
        """Record the latest state; drawn now if composed, else when mounted. An event
        without counts (a final one often has none) keeps the last ones known."""
        self.status = status
        self.unit = unit or self.unit
        if total:
            self.done, self.total = done, total
        self.message = message
        if live(self):
            self._draw()       # else on_mount draws it, or it is being removed

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def on_mount(self) -> None:
        if not going(self):
            self._draw()

    def _draw(self) -> None:
        for outcome in FINAL:
            self.set_class(self.status == outcome, f"-{outcome}")
        # query, not query_one: a row caught by a teardown may have lost its children.
        for bar in self.query(ProgressBar):
            if self.status == "succeeded":
                bar.update(total=self.total or 1, progress=self.total or 1)
            elif self.total:
                bar.update(total=self.total, progress=self.done or 0)
            elif self.finished:
                bar.update(total=1, progress=1)      # stopped; how far it got was never known
            for percentage in bar.query("#percentage"):
                percentage.display = bool(self.total) or self.status == "succeeded"
        for label in self.query(".message").results(Label):
            label.update(self.outcome_text())

    def outcome_text(self) -> str:
        """What the message label says: the status, while running how far in the run's
        unit ("running 40 / 100 peers · central: pull"), and its message, marked when final."""
        if not self.finished:
            count = counted(self.done, self.total, self.unit) if self.unit and self.total else ""
            what = " · ".join(part for part in (count, self.message or "") if part)
            return f"{self.status} {what}".strip()
        return f"{MARKS[self.status]} {self.status}" + (f": {self.message}" if self.message else "")


def show_run(box: Widget, data: dict, kind: str) -> bool:
    """Apply a `job.<id>` event to `box`, a tab's one-run progress area (a new run takes
    the place of the last; a finished run is never un-finished). True when this event
    finished the run, so the tab can reload what the run changed."""
    found = box.query(f"#run-{data['run_id']}")
    if found:
        row = found.first(JobProgress)
        if row.status in FINAL:
            return False
    else:
        for old in list(box.query(JobProgress)):
            old.remove()
        row = JobProgress(data["run_id"], kind)
        box.mount(row)
    row.show(data.get("status", "running"), data.get("done"), data.get("total"),
             data.get("error") or data.get("message"), data.get("unit"))
    return data.get("status") in FINAL


def show_runs(box: Widget, data: dict, keep: int, *, again: bool = False) -> bool | None:
    """Apply a `job.<id>` event to `box`, a tab's list of runs: a row per run, the last
    `keep` finished ones kept. A finished run is never un-finished (a health snapshot
    taken before it ended says "running"); `again` lets a later final event redraw it.
    None when the event was dropped, else whether it finished the run."""
    found = box.query(f"#run-{data['run_id']}")
    if found:
        row = found.first(JobProgress)
        if row.status in FINAL and (not again or data.get("status") not in FINAL):
            return None
    else:
        row = JobProgress(data["run_id"], data.get("kind", "?"))
        box.mount(row)
    row.show(data.get("status", "running"), data.get("done"), data.get("total"),
             data.get("error") or data.get("message"), data.get("unit"))
    if data.get("status") not in FINAL:
        return False
    finished = [r for r in box.query(JobProgress) if r.status in FINAL]
    for old in finished[:-keep]:
        old.remove()
    return True
