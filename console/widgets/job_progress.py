"""One running job: its kind, a progress bar fed by `job.<id>` events, and its message."""
from __future__ import annotations

from strongroom.console.lifecycle import going, live
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, ProgressBar

FINAL = ("succeeded", "failed", "interrupted", "cancelled")


class JobProgress(Horizontal):
    DEFAULT_CSS = """
    JobProgress { height: 1; }
    JobProgress > .kind { width: 14; }
    JobProgress > ProgressBar { width: 32; }
    JobProgress > .message { width: 1fr; }
    """

    def __init__(self, run_id: str, kind: str) -> None:
        super().__init__(id=f"run-{run_id}")
        self.run_id = run_id
        self.kind = kind
        self.status = "running"

    def compose(self) -> ComposeResult:
        yield Label(self.kind, classes="kind")
        yield ProgressBar(total=None, show_eta=False)
        yield Label("", classes="message")

    def show(self, status: str, done: int | None, total: int | None, message: str | None) -> None:
        """Record the latest state; drawn now if composed, else when mounted."""
        self.status = status
        self._latest = (done, total, message)
        if live(self):
            self._draw()       # else on_mount draws it, or it is being removed

    def on_mount(self) -> None:
        if not going(self):
            self._draw()

    def _draw(self) -> None:
        done, total, message = getattr(self, "_latest", (None, None, None))
        # query, not query_one: a row caught by a teardown may have lost its children.
        for bar in self.query(ProgressBar):
            if total:
                bar.update(total=total, progress=done or 0)
            elif self.status == "succeeded":
                bar.update(total=1, progress=1)
        for label in self.query(".message").results(Label):
            label.update(f"{self.status} {message or ''}".strip())


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
             data.get("error") or data.get("message"))
    return data.get("status") in FINAL
