"""The practice's encryption level (practice.encryption.show), opened from the Compliance
tab (`e`): the level in force, whether the running configuration meets it, and each
requirement with its evidence and, when unmet, what would meet it.

`c` chooses another level, for a user holding keys:manage (the daemon's permission for
practice.encryption.set; everyone else sees it disabled with the reason): a picker
saying which levels the configuration meets now, then a confirmation listing what the
chosen level requires. The daemon decides: a level the configuration does not meet is
refused naming what is missing, shown here in its words, and nothing changes.
"""
from __future__ import annotations

from strongroom.console.client import ClientError
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

SET = "keys:manage"


def evidence_text(evidence: dict) -> str:
    """A requirement's evidence as `name: value` pairs, nested ones flattened one level."""
    parts = []
    for key, value in evidence.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {'—' if v is None else v}" for k, v in value.items()) or "—"
        parts.append(f"{key}: {'—' if value is None else value}")
    return "; ".join(parts)


def requirement_lines(requirements: list[dict]) -> list[str]:
    """Each requirement as drawn: met or not, its level, what it is, its evidence and,
    when unmet, what would meet it."""
    lines = []
    for r in requirements:
        lines.append(f"[{'✓' if r['met'] else '✗'}] {r['level']}: {r['name']}")
        lines.append(f"    evidence: {evidence_text(r['evidence'])}")
        if not r["met"] and r.get("fix"):
            lines.append(f"    to meet it: {r['fix']}")
    return lines


def summary(status: dict) -> str:
    """One line for the Compliance tab: the level in force and whether it is met."""
    met = sum(r["met"] for r in status["requirements"])
    return (f"Encryption level {status['level']}: {'met' if status['met'] else 'NOT MET'} "
            f"({met}/{len(status['requirements'])} requirements)")


class LevelScreen(ModalScreen[str | None]):
    """Choose a level: one line each, the one in force disabled, each saying whether the
    running configuration meets it now (an unmet one may still be chosen: the daemon
    then says what is missing)."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, status: dict) -> None:
        super().__init__()
        self.status = status

    def compose(self) -> ComposeResult:
        options = []
        for check in self.status["offered"]:
            current = check["level"] == self.status["level"]
            state = "in force" if current else "met now" if check["met"] else "NOT met now"
            options.append(Option(f"{check['level']:<9} {len(check['requirements'])} requirements · {state}",
                                  id=check["level"], disabled=current))
        with Vertical(classes="dialog"):
            yield Plain("Another encryption level", classes="dialog-title")
            yield OptionList(*options, id="levels", markup=False)
            yield Plain("enter: choose · esc: close", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class EncryptionScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    EncryptionScreen #encryption-dialog { width: 96%; max-width: 110; height: 90%; border: thick $primary;
                                          background: $surface; padding: 0 1; }
    EncryptionScreen VerticalScroll { height: 1fr; }
    EncryptionScreen #encryption-error { color: $error; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("c", "choose", "Choose level"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, identity: Identity) -> None:
        super().__init__()
        self.identity = identity
        self.status: dict = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="encryption-dialog"):
            yield Plain("Encryption level", classes="dialog-title")
            yield Plain("Loading…", id="encryption-summary")
            with VerticalScroll():
                yield Plain("", id="encryption-requirements")
            yield Plain("", id="encryption-error")
            yield Plain("", id="encryption-note", classes="muted")

    def on_mount(self) -> None:
        self.load()

    def why_not(self, action: str) -> str | None:
        if action != "choose":
            return None
        if not self.status:
            return "the level has not loaded"
        return self.identity.why_not(SET)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return None if action == "choose" and self.why_not(action) else True

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="encryption-load")
    async def load(self) -> None:
        try:
            status = await fetch(self, "practice.encryption.show")
        except ClientError as err:
            self.query_one("#encryption-summary", Static).update(f"Encryption level: {err.message}")
            return
        self.show(status)

    def show(self, status: dict) -> None:
        self.status = status
        self.query_one("#encryption-summary", Static).update(
            summary(status) + f" · levels: {', '.join(status['levels'])}")
        self.query_one("#encryption-requirements", Static).update("\n".join(requirement_lines(status["requirements"])))
        reason = self.why_not("choose")
        self.query_one("#encryption-note", Static).update(
            f"Choosing another level disabled: {reason} · esc close" if reason else "c choose another level · esc close")
        self.refresh_bindings()

    def action_choose(self) -> None:
        reason = self.why_not("choose")
        if reason:
            self.notify(f"Not allowed: {reason}", severity="warning")
            return
        self.app.push_screen(LevelScreen(self.status), self._chosen)

    def _chosen(self, level: str | None) -> None:
        if level is None:
            return
        check = next(c for c in self.status["offered"] if c["level"] == level)
        levels = self.status["levels"]
        below = levels[levels.index(level) - 1] if levels.index(level) else None
        # Its own requirements, and any of the levels below it that is not met now: the
        # whole list would not fit the dialog at 80x24.
        lines = [f"• {r['name']}" + ("" if r["met"] else " (NOT met now)") for r in check["requirements"]
                 if r["level"] == level or not r["met"]]
        lower = levels.index(level) < levels.index(self.status["level"])
        self.app.push_screen(
            ConfirmScreen(f"Put encryption level {level} in force?",
                          f"Level {level} requires" + (f" all of {below}, plus" if below else "") + ":\n"
                          + "\n".join(lines) + "\n"
                          + (f"This lowers what the practice promises (from {self.status['level']}). " if lower else "")
                          + "The daemon refuses it, changing nothing, unless the running configuration meets "
                          "every requirement. Recorded in the audit log under your name.", yes=f"Set {level}"),
            lambda yes: self.put(level) if yes else None)

    @tab_work(group="encryption-set")
    async def put(self, level: str) -> None:
        error = self.query_one("#encryption-error", Static)
        error.update("")
        try:
            status = await fetch(self, "practice.encryption.set", {"level": level})
        except ClientError as err:
            error.update(f"Refused: {err.message}")
            self.notify(f"Refused: {err.message}", severity="error", timeout=10)
            return
        self.notify(f"Encryption level {status['level']} in force.")
        self.show(status)
