"""Find a client and choose one: what the console's forms offer (ctrl+f) instead of a
pasted id, for a legal hold, an erasure request or an export's client filter.

The search is clients.find: one exact term (last name, email or the SSN's last four;
case and spacing do not matter, as the blind index normalises them), answered with at
most a page of matches, each masked for everyone (initials, status, when recorded and
the id's first characters), which is enough to tell a handful apart and all the task
needs. The daemon audits the lookup, never the term.
"""
from __future__ import annotations

from strongroom.console.client import ClientError
from strongroom.console.helpers.text import when
from strongroom.console.widgets.plain import Plain
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets.option_list import Option

TERMS = (("last_name", "Last name"), ("email", "Email"), ("ssn_last4", "SSN, last four digits"))


def label(client: dict) -> str:
    """One match as the list shows it: masked name, status, when recorded, the id's start."""
    return f"{client['name']}  ·  {client['status']}  ·  recorded {when(client['created_at'])}  ·  {client['id'][:8]}…"


def fill_with_client(field: Input, *, focus: bool = False) -> None:
    """Open the picker over `field`'s screen and put the chosen client's id into `field`
    (then focus it, if asked); nothing changes if the person cancels."""
    def chosen(client_id: str | None) -> None:
        if client_id:
            field.value = client_id
            if focus:
                field.focus()
    field.app.push_screen(ClientPickerScreen(), chosen)


class ClientPickerScreen(ModalScreen[str | None]):
    """Dismisses with the chosen client's id, or None."""

    DEFAULT_CSS = """
    ClientPickerScreen #picker-term { width: 100%; }
    ClientPickerScreen #picker-results { height: 8; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Plain("Find a client", classes="dialog-title")
            yield Select([(text, name) for name, text in TERMS], value="last_name", allow_blank=False,
                         id="picker-term")
            yield Input(placeholder="exactly as recorded; enter searches", id="picker-value")
            yield OptionList(id="picker-results", markup=False)   # client names
            yield Plain("enter: search, then choose · esc: cancel · names are masked", id="picker-note",
                         classes="muted")

    def on_mount(self) -> None:
        self.query_one("#picker-value", Input).focus()

    @on(Input.Submitted, "#picker-value")
    def _search(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.strip():
            self.find(str(self.query_one("#picker-term", Select).value), event.value)

    @work(exclusive=True, group="client-picker")
    async def find(self, term: str, value: str) -> None:
        note = self.query_one("#picker-note", Static)
        note.update("Searching…")
        try:
            found = await self.app.call("client.find", {term: value})
        except ClientError as err:
            if self.is_attached:
                note.update(f"Refused: {err.message}")
            return
        if not self.is_attached:
            return
        results = self.query_one("#picker-results", OptionList)
        results.clear_options()
        results.add_options([Option(label(client), id=client["id"]) for client in found["clients"]])
        count = len(found["clients"])
        if not count:
            note.update("No client matches. Check the spelling, or search by another term.")
            return
        more = " (more match: add detail, or search by email)" if found.get("more") else ""
        note.update(f"{count} found{more} · enter chooses · esc cancels")
        results.highlighted = 0
        results.focus()

    @on(OptionList.OptionSelected, "#picker-results")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
