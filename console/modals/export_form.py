"""The new-export form (`n` on the Exports tab): tables and their fields, date, client and
practice filters, format, masking and an AES-256 ZIP with its password. PHI fields are
marked in the field list; the profile "full" (PHI in clear) is offered disabled, with the
reason, to a user without phi:read. Given `send`, the form submits itself and stays open
with everything chosen when the daemon refuses the request (modals/form.py)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from strongroom.console.modals.form import send_then_close
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.toggles import Check, PickList, Radio
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Checkbox, Input, RadioSet, Select, SelectionList, Static
from textual.widgets.selection_list import Selection


def request_from(values: dict) -> dict:
    """The exports.run arguments for what the form holds."""
    tables = list(values["tables"])
    fields: dict[str, list[str]] = {}
    for item in values["fields"]:
        table, _, field = item.partition(".")
        if table in tables:
            fields.setdefault(table, []).append(field)
    filters = {k: values[k] for k in ("since", "until", "client_id", "practice_id") if values.get(k)}
    args = {"tables": tables, "fields": {t: fields.get(t, []) for t in tables}, "filters": filters,
            "format": values["format"], "masking": values["masking"], "encrypt": values["encrypt"]}
    if values["encrypt"]:
        args["password"] = values["password"]
    return args


class ExportFormScreen(ModalScreen[dict | None]):
    """The new-export form; dismisses with the exports.run arguments or None."""

    DEFAULT_CSS = """
    ExportFormScreen #export-dialog { width: 78; height: auto; max-height: 24; border: thick $primary;
                                      background: $surface; padding: 0 1; }
    ExportFormScreen #export-form-body { height: 14; }
    ExportFormScreen #export-choose { width: 38; }
    ExportFormScreen #export-tables { height: 5; }
    ExportFormScreen #export-fields { height: 9; }
    ExportFormScreen #export-options { width: 1fr; }
    ExportFormScreen #export-masking { height: 4; width: 100%; }
    ExportFormScreen #export-encrypt { height: 3; width: 100%; }
    ExportFormScreen #export-filters { height: 3; }
    ExportFormScreen #export-filters Input { width: 1fr; }
    ExportFormScreen #export-form-error { height: auto; max-height: 3; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Start export"),
                Binding("ctrl+f", "find_client", "Find client")]

    def __init__(self, catalogue: dict, *, phi_reason: str | None,
                 send: Callable[[dict], Awaitable[str | None]] | None = None) -> None:
        """`send`: submits the exports.run arguments itself and closes the form only when
        it returns None; the refusal it returns instead (the daemon's words, naming the
        field) is shown here with everything chosen and typed kept (form.FormScreen)."""
        super().__init__()
        self.catalogue = catalogue
        self.phi_reason = phi_reason
        self.send = send
        self.tables = {t["table"]: t for t in catalogue.get("tables") or []}

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Plain("New export · ctrl+s start · ctrl+f find a client · esc cancel", classes="dialog-title")
            with Horizontal(id="export-form-body"):
                with Vertical(id="export-choose"):
                    yield PickList[str](*[Selection(name, name, name == "clients") for name in self.tables],
                                             id="export-tables")
                    yield PickList[str](id="export-fields")
                with Vertical(id="export-options"):
                    yield Select([(f, f) for f in self.catalogue.get("formats") or []], value="csv",
                                 allow_blank=False, id="export-format")
                    with RadioSet(id="export-masking"):
                        yield Radio("masked", value=True, id="masking-masked")
                        yield Radio("full (PHI in clear)", id="masking-full",
                                          disabled=self.phi_reason is not None)
                    yield Check("AES-256 ZIP", id="export-encrypt")
                    yield Input(placeholder=f"ZIP password (≥{self.catalogue.get('min_password', 8)} chars)",
                                password=True, id="export-password", disabled=True)
            with Horizontal(id="export-filters"):
                yield Input(placeholder="since YYYY-MM-DD", id="export-since")
                yield Input(placeholder="until YYYY-MM-DD", id="export-until")
                yield Input(placeholder="client id", id="export-client")
                yield Input(placeholder="practice id", id="export-practice")
            yield Plain(self.note(), id="export-form-error", classes="muted")

    def note(self) -> str:
        if self.phi_reason:
            return f"* PHI, masked · full disabled: {self.phi_reason}"
        return "* PHI: masked unless the profile is full"

    def on_mount(self) -> None:
        self._show_fields()
        self.query_one("#export-tables", SelectionList).focus()

    @on(SelectionList.SelectedChanged, "#export-tables")
    def _tables_changed(self) -> None:
        self._show_fields()

    def _show_fields(self) -> None:
        """The fields of the chosen tables, all chosen at first, PHI marked with *."""
        chosen = self.query_one("#export-tables", SelectionList).selected
        fields = self.query_one("#export-fields", SelectionList)
        kept = set(fields.selected)
        known = {fields.get_option_at_index(n).value for n in range(fields.option_count)}
        fields.clear_options()
        for table in chosen:
            info = self.tables[table]
            for name in info["fields"]:
                value = f"{table}.{name}"
                fields.add_option(Selection(f"{value}{'*' if name in info['phi'] else ''}", value,
                                            value in kept or value not in known))

    @on(Checkbox.Changed, "#export-encrypt")
    def _encrypt_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#export-password", Input).disabled = not event.value

    def values(self) -> dict:
        masking = self.query_one("#export-masking", RadioSet).pressed_button
        return {"tables": self.query_one("#export-tables", SelectionList).selected,
                "fields": self.query_one("#export-fields", SelectionList).selected,
                "format": self.query_one("#export-format", Select).value,
                "masking": "full" if masking is not None and masking.id == "masking-full" else "masked",
                "encrypt": self.query_one("#export-encrypt", Checkbox).value,
                "password": self.query_one("#export-password", Input).value,
                "since": self.query_one("#export-since", Input).value.strip(),
                "until": self.query_one("#export-until", Input).value.strip(),
                "client_id": self.query_one("#export-client", Input).value.strip(),
                "practice_id": self.query_one("#export-practice", Input).value.strip()}

    def action_submit(self) -> None:
        values = self.values()
        problem = None
        if not values["tables"]:
            problem = "Choose at least one table."
        elif any(not [f for f in values["fields"] if f.startswith(f"{t}.")] for t in values["tables"]):
            problem = "Choose at least one field of each table."
        elif values["encrypt"] and len(values["password"]) < int(self.catalogue.get("min_password", 8)):
            problem = f"The ZIP password needs at least {self.catalogue.get('min_password', 8)} characters."
        if problem:
            self._show_problem(problem)
            return
        if self.send is None:
            self.dismiss(request_from(values))
        else:
            self._send(request_from(values))

    def action_find_client(self) -> None:
        """The client filter from the client picker instead of a pasted id."""
        from strongroom.console.modals.client_picker import fill_with_client
        fill_with_client(self.query_one("#export-client", Input))

    def _show_problem(self, problem: str) -> None:
        note = self.query_one("#export-form-error", Static)
        note.update(problem)
        note.set_class(True, "error")

    @work(exclusive=True, group="export-form-send")
    async def _send(self, args: dict) -> None:
        await send_then_close(self, self.send, args, self._show_problem)
