"""What every tab of the main screen shares, so a tab module holds only what is its own.

A tab is a container (Vertical; VerticalScroll for Overview) with `Tab` mixed in before
it. `Tab` is a plain class, not a widget, on purpose: Textual takes a widget's CSS type
names from its widget bases, and a widget class named Tab would be styled by every
`Tab { ... }` rule meant for Textual's own tab headers.

- `set_identity(identity, status)`: the one way the main screen tells a tab who is
  logged in and which job kinds this daemon offers (`status["job_kinds"]`). The tab then
  shows its hint line (`took_identity`, the hook for what a tab keeps from `status`),
  refreshes its keys and loads.
- `NEEDS`: each action name → what it needs: a permission ("session:revoke") or
  `Job(kind)`, may start a run of `kind` on this daemon (`Job(ANY)`: of some kind it
  offers). It drives `check_action` (a key the user may not use is shown disabled) and
  `why_not` (the reason shown beside it, worded the same on every tab). Conditions of the
  moment (a row selected, its state) are added by overriding `why_not`, after `super()`.
- `refused(action)`: the one refusal path of an action the person asked for anyway (the
  command palette, a key pressed before the footer caught up): the reason as a toast.
  What the daemon refuses goes through helpers/workers.ask, the one error path of a worker.
- `NOTE` and `note()`: the id of the tab's hint line and its text (`show_note` writes it).
- `load()` (each tab's own worker), `action_reload`, `focus_main`; `LAZY` for a tab that
  fetches only once it is first shown.
- `TOPICS`: the daemon event topics the tab listens to ("job." is a prefix: job.<run id>).
  An event of topic `t` is applied by the tab's `apply_<t>` method (`job.` → apply_job).
  The main screen subscribes to the union of every tab's TOPICS and routes each event by
  them (`subscriptions`, `routes`): no hand-kept list can forget a tab.
- `JOB_KIND` and `RUNNING`: a tab that follows the runs of one job kind gets `apply_job`
  (a one-row progress area, `run_ended` when a run ends: reload by default) and
  `follow_started(run)` for the run it just started.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from strongroom.console.helpers.gates import Gated
from strongroom.console.helpers.identity import Identity, why_not_job
from strongroom.console.widgets.job_progress import show_run
from textual.containers import Vertical
from textual.widgets import DataTable, Static

ANY = "*"     # Job(ANY): any one job kind this daemon offers (never a kind's name)


@dataclass(frozen=True)
class Job:
    """An action's need: the right to start a run of `kind` (job:<kind>:run) on a daemon
    that offers it."""
    kind: str


Need = str | Job


def topic_matches(key: str, topic: str) -> bool:
    """`key`, from a tab's TOPICS, names `topic`: the same, or a prefix ending in '.'."""
    return topic == key or (key.endswith(".") and topic.startswith(key))


def handler(key: str) -> str:
    """The method of a tab that applies events of `key`: `job.` → `apply_job`."""
    return "apply_" + key.rstrip(".")


def subscriptions(tabs: Iterable[type[Tab]]) -> tuple[str, ...]:
    """Every topic some tab listens to, once each, in the tabs' order."""
    return tuple(dict.fromkeys(key for tab in tabs for key in tab.TOPICS))


def routes(tabs: Iterable[tuple[str, type[Tab]]], topic: str) -> tuple[tuple[str, str], ...]:
    """The (tab id, method) pairs an event of `topic` is applied to, for (id, tab class) pairs."""
    return tuple((tab_id, handler(key)) for tab_id, tab in tabs for key in tab.TOPICS
                 if topic_matches(key, topic))


class Tab(Gated):
    NEEDS: ClassVar[dict[str, Need]] = {}
    TOPICS: ClassVar[tuple[str, ...]] = ()
    NOTE: ClassVar[str | None] = None       # id of the hint line under the tab's table
    LAZY: ClassVar[bool] = False            # fetch only once the tab is first shown
    JOB_KIND: ClassVar[str | None] = None   # the one job kind whose runs the tab follows
    RUNNING: ClassVar[str | None] = None    # id of the area showing that kind's run

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity: Identity | None = None
        self.kinds: list[str] = []              # the job kinds this daemon offers
        self.shown = False                      # LAZY: the tab has been shown once

    # --- who is logged in ---------------------------------------------------------------

    def set_identity(self, identity: Identity, status: dict) -> None:
        self.identity = identity
        self.kinds = list(status.get("job_kinds") or [])
        self.took_identity(status)
        self.refresh_bindings()
        if not self.LAZY or self.shown:
            self.load()

    def took_identity(self, status: dict) -> None:
        """What the tab does with a new identity before loading: show its hint line. A tab
        whose hint follows the selected row leaves it to its load."""
        self.show_note()

    # --- what may be done, and why not --------------------------------------------------

    def why_not(self, action: str) -> str | None:
        """None when `action` may be offered, else the reason shown beside it."""
        need = self.NEEDS.get(action)
        if need is None:
            return None
        if self.identity is None:
            return "not logged in"
        if isinstance(need, Job):
            return self.why_not_job(need.kind)
        return self.identity.why_not(need)

    def why_not_job(self, kind: str) -> str | None:
        if kind == ANY and self.identity is not None:
            if any(self.identity.can(f"job:{k}:run") for k in self.kinds):
                return None
            return f"{self.identity.actor} lacks job:<kind>:run"
        return why_not_job(self.identity, kind, self.kinds)

    def note(self) -> str:
        """The hint line: the tab's keys, and why any is off."""
        return ""

    def show_note(self) -> None:
        if self.NOTE is not None and self.identity is not None:
            self.query_one(f"#{self.NOTE}", Static).update(self.note())

    # --- loading ------------------------------------------------------------------------

    def load(self) -> None:
        """Fetch what the tab shows: each tab's own worker."""

    def action_reload(self) -> None:
        self.load()

    def focus_main(self) -> None:
        """The tab was just shown: focus its list (and, LAZY, fetch it the first time)."""
        self.query_one(DataTable).focus()
        if self.LAZY and not self.shown:
            self.shown = True
            if self.identity is not None:
                self.load()

    # --- the runs of one job kind -------------------------------------------------------

    def apply_job(self, data: dict) -> None:
        """A `job.<id>` event: progress of a JOB_KIND run in RUNNING; `run_ended` when it ends."""
        if self.JOB_KIND is None or data.get("kind") != self.JOB_KIND or not data.get("run_id"):
            return
        if show_run(self.query_one(f"#{self.RUNNING}", Vertical), data, self.JOB_KIND) and self.identity is not None:
            self.run_ended(data)

    def run_ended(self, data: dict) -> None:
        """A followed run ended (its last event is `data`): reload what it changed."""
        self.load()

    def follow_started(self, run: dict) -> None:
        """Show the run job.run just started (its events may come before or after this)."""
        self.apply_job({"run_id": run["id"], "kind": self.JOB_KIND, "status": run.get("status", "queued")})
