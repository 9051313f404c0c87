"""One reconcile pair side by side: both clients' fields as the daemon sent them
(`reconcile.show`: masked without phi:read, and then said so here), each row marked `=`
when the two agree and `≠` when they differ.

The dialog decides nothing itself: m, d and u dismiss it with the action's name and the
Reconcile tab takes it from there (who survives, the confirmation, the daemon's answer).
Which of them may be taken is the tab's to say (Tab.why_not, given as `reasons`): an
action with a reason is shown disabled, and the reason is under the grid.
"""
from __future__ import annotations

from rich.text import Text
from strongroom.console.helpers.text import when
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen

# The fields a person compares to tell one client from two, in that order; the rest of
# the record (free-text history and notes) is not needed to decide and is not shown.
FIELDS = ("first_name", "last_name", "date_of_birth", "phone", "email", "address", "ssn", "status",
          "intake_date", "created_at", "deleted_at")
# What the daemon masks without phi:read (core.masking): two masked values that read the
# same may come from different ones, so they are never marked equal.
PHI = frozenset({"first_name", "last_name", "date_of_birth", "phone", "email", "address", "ssn"})
TIMES = frozenset({"created_at", "deleted_at"})
# 76 wide, less the border and padding: 72; each cell pads 2.
COLUMNS = (("Field", "field", 16), ("Client A", "a", 25), ("Client B", "b", 25))
KEYS = {"merge": "m merge", "dismiss": "d dismiss", "undo": "u undo"}


def tail(value: str | None) -> str:
    """The last 8 hex digits of an id (UUIDv7 ids share their leading, time-based ones)."""
    return "—" if not value else "…" + str(value).replace("-", "")[-8:]


def shown(name: str, value: object) -> Text:
    """A value as plain text (never markup: `[redacted]` is data); — for nothing."""
    if value is None or value == "":
        return Text("—", style="dim")
    return Text(when(str(value))[:16] if name in TIMES else str(value))


def field_cells(name: str, a: dict, b: dict, *, masked: bool = False) -> tuple[Text, Text, Text]:
    """A field's row: `=` when both clients hold the same value, `≠` when not, `?` when
    both are masked alike (masking is deterministic: masks that differ come from values
    that differ, but masks that agree tell nothing)."""
    if masked and name in PHI and a.get(name) is not None and a.get(name) == b.get(name):
        label = Text(f"? {name}")
    elif a.get(name) == b.get(name):
        label = Text(f"= {name}", style="dim")
    else:
        label = Text(f"≠ {name}", style="bold")
    return label, shown(name, a.get(name)), shown(name, b.get(name))


def decision(pair: dict) -> str:
    """Who decided the pair and when, and what a merge moved; empty for an undecided pair."""
    if not pair.get("decided_by"):
        return ""
    text = f"{pair['status']} by {pair['decided_by']} at {str(pair.get('decided_at') or '')[:16].replace('T', ' ')}"
    record = pair.get("merge_record")
    if record:
        kept = "A" if record["survivor"] == str(pair["client_a"]) else "B"
        text += (f"\nkept {kept}: {len(record.get('therapy_sessions') or [])} session(s) and "
                 f"{len(record.get('client_files') or [])} file(s) moved to it")
    return text


def not_now(reasons: dict[str, str | None], keys: dict[str, str]) -> str:
    """The actions that may not be taken now, grouped by why: `m d u: user:x lacks ...`."""
    grouped: dict[str, list[str]] = {}
    for action, reason in reasons.items():
        if reason:
            grouped.setdefault(reason, []).append(keys[action].split()[0])
    return "; ".join(f"{' '.join(letters)}: {reason}" for reason, letters in grouped.items())


class PairScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    PairScreen .dialog.wide { max-height: 95%; }
    PairScreen #pair-head { height: auto; }
    PairScreen #pair-fields { height: auto; max-height: 13; }
    PairScreen #pair-note { height: auto; }
    """
    BINDINGS = [Binding("m", "choose('merge')", "Merge"), Binding("d", "choose('dismiss')", "Dismiss"),
                Binding("u", "choose('undo')", "Undo merge"), Binding("escape,q", "dismiss(None)", "Close")]

    def __init__(self, pair: dict, reasons: dict[str, str | None], *, masked: str | None = None) -> None:
        """`pair`: reconcile.show's answer; `reasons`: per action, why it may not be taken
        now (None: it may); `masked`: why values are masked, when they are."""
        super().__init__()
        self.pair = pair
        self.reasons = reasons
        self.masked = masked

    def compose(self) -> ComposeResult:
        pair = self.pair
        head = (f"score {pair['score']:.2f} · {pair['status']} · reasons: {' '.join(pair['reasons']) or '—'}\n"
                f"A {pair['client_a']}\nB {pair['client_b']}")
        if self.masked:
            head += f"\nPHI masked: {self.masked} · ?: masked, not comparable"
        if decision(pair):
            head += "\n" + decision(pair)
        with Vertical(classes="dialog wide"):
            yield Plain(f"Pair {tail(pair['pair_id'])}: one person or two?", classes="dialog-title")
            yield Plain(Text(head), id="pair-head")
            yield ListTable(id="pair-fields", cursor_type="row")
            yield Plain(self.note(), id="pair-note", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(ListTable)
        add_columns(table, ((label if key == "field" else f"{label} {tail(self.pair['client_' + key])}", key, width)
                            for label, key, width in COLUMNS))
        a, b = self.pair["clients"]
        for name in FIELDS:
            table.add_row(*field_cells(name, a, b, masked=self.masked is not None), key=name)
        table.focus()

    def note(self) -> str:
        offered = [KEYS[a] for a, reason in self.reasons.items() if reason is None]
        text = " · ".join(offered + ["esc close"])
        off = not_now(self.reasons, KEYS)
        return text + (f" — not now: {off}" if off else "")

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "choose" and parameters and self.reasons.get(parameters[0]):
            return None
        return True

    def action_choose(self, action: str) -> None:
        if self.reasons.get(action):
            self.notify(f"Not allowed: {self.reasons[action]}", severity="warning")
            return
        self.dismiss(action)
