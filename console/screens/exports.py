"""Exports: the history (exports.list), a form for a new export (`n`): tables and
their fields, date/client/practice filters, format, masking and an AES-256 ZIP with its
password; and a saved export configuration run by name (`s`). The request goes to exports.run, which refuses a bad one at once; the run's
progress arrives as `job.*` events. Enter on an export shows it with its manifest.

Starting an export needs job:export:run; the masking profile "full" needs phi:read too;
each is shown disabled with the reason when the user lacks it. PHI fields are marked in
the field list; their values never reach the console (only counts and paths do).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from strongroom.console.screens.detail import DetailScreen
from strongroom.console.screens.form import daemon_sender, send_then_close
from strongroom.console.screens.identity import Identity, why_not_job
from strongroom.console.screens.text import when
from strongroom.console.screens.workers import ask, tab_work
from strongroom.console.widgets.job_progress import show_run
from strongroom.console.widgets.tables import add_columns
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (Checkbox, DataTable, Input, OptionList, RadioButton, RadioSet, Select, SelectionList,
                             Static)
from textual.widgets.option_list import Option
from textual.widgets.selection_list import Selection

KIND = "export"
# Fits 78 columns; where the files are, and any error, show under the table.
COLUMNS = (("Created", "created", 19), ("Status", "status", 9), ("Format", "format", 6), ("Rows", "rows", 7),
           ("Requested by", "by", 24))
PAGE = 100


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
            yield Static("New export · ctrl+s start · ctrl+f find a client · esc cancel", classes="dialog-title")
            with Horizontal(id="export-form-body"):
                with Vertical(id="export-choose"):
                    yield SelectionList[str](*[Selection(name, name, name == "clients") for name in self.tables],
                                             id="export-tables")
                    yield SelectionList[str](id="export-fields")
                with Vertical(id="export-options"):
                    yield Select([(f, f) for f in self.catalogue.get("formats") or []], value="csv",
                                 allow_blank=False, id="export-format")
                    with RadioSet(id="export-masking"):
                        yield RadioButton("masked", value=True, id="masking-masked")
                        yield RadioButton("full (PHI in clear)", id="masking-full",
                                          disabled=self.phi_reason is not None)
                    yield Checkbox("AES-256 ZIP", id="export-encrypt")
                    yield Input(placeholder=f"ZIP password (≥{self.catalogue.get('min_password', 8)} chars)",
                                password=True, id="export-password", disabled=True)
            with Horizontal(id="export-filters"):
                yield Input(placeholder="since YYYY-MM-DD", id="export-since")
                yield Input(placeholder="until YYYY-MM-DD", id="export-until")
                yield Input(placeholder="client id", id="export-client")
                yield Input(placeholder="practice id", id="export-practice")
            yield Static(self.note(), id="export-form-error", classes="muted")

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
        from strongroom.console.screens.client_picker import fill_with_client
        fill_with_client(self.query_one("#export-client", Input))

    def _show_problem(self, problem: str) -> None:
        note = self.query_one("#export-form-error", Static)
        note.update(problem)
        note.set_class(True, "error")

    @work(exclusive=True, group="export-form-send")
    async def _send(self, args: dict) -> None:
        await send_then_close(self, self.send, args, self._show_problem)


class SavedExportScreen(ModalScreen[dict | None]):
    """Choose a saved export configuration (and give its ZIP password, if it makes one);
    dismisses with the exports.run arguments or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, configurations: list[dict], min_password: int) -> None:
        super().__init__()
        self.configurations = {c["name"]: c for c in configurations}
        self.min_password = min_password
        self.chosen: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Run a saved export", classes="dialog-title")
            yield OptionList(*[Option(f"{c['name']}  ({c['format']}, {c['masking_profile']}"
                                      f"{', AES-256 ZIP' if c['encryption_enabled'] else ''})", id=c["name"])
                               for c in self.configurations.values()], id="saved-exports")
            yield Input(placeholder=f"ZIP password (≥{self.min_password} chars), enter to start", password=True,
                        id="saved-password")
            yield Static("enter: run · esc: close", id="saved-hint", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#saved-password", Input).display = False   # until a ZIP-making one is chosen
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.chosen = event.option.id
        if not self.configurations[self.chosen]["encryption_enabled"]:
            self.dismiss({"configuration": self.chosen})
            return
        password = self.query_one("#saved-password", Input)
        password.display = True
        password.focus()

    @on(Input.Submitted, "#saved-password")
    def _password(self, event: Input.Submitted) -> None:
        if len(event.value) < self.min_password:
            self.query_one("#saved-hint", Static).update(
                f"The ZIP password needs at least {self.min_password} characters.")
            return
        self.dismiss({"configuration": self.chosen, "password": event.value})


class ExportsTab(Vertical):
    BINDINGS = [Binding("n", "new_export", "New export"), Binding("s", "run_saved", "Run saved"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity: Identity | None = None
        self.kinds: list[str] = []
        self.exports: dict[str, dict] = {}
        self.shown = False    # the history is fetched once the tab is first looked at

    def compose(self) -> ComposeResult:
        yield Static("", id="exports-summary")
        yield Vertical(id="exports-running")
        yield DataTable(id="exports-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="export-detail", classes="muted")
        yield Static("", id="exports-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one(DataTable), COLUMNS)

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()
        if not self.shown:
            self.shown = True
            if self.identity is not None:
                self.load()

    def why_not_export(self) -> str | None:
        return why_not_job(self.identity, KIND, self.kinds)

    def set_identity(self, identity: Identity, status: dict) -> None:
        self.identity = identity
        self.kinds = list(status.get("job_kinds") or [])
        reason = self.why_not_export()
        self.query_one("#exports-note", Static).update(
            f"n, s: new or saved export disabled ({reason})" if reason else
            "n: new export · s: run a saved one · enter: an export's manifest")
        self.refresh_bindings()
        if self.shown:
            self.load()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action in ("new_export", "run_saved") and self.why_not_export():
            return None
        return True

    @tab_work(exclusive=True, group="exports")
    async def load(self) -> None:
        reason = self.identity.why_not("audit:read")
        if reason:
            self.query_one("#exports-summary", Static).update(f"Export history hidden: {reason}")
            return
        page = await ask(self, "exports.list", {"limit": PAGE}, failing="Exports")
        if not self.is_attached:
            return
        self.show_history(page)

    def show_history(self, page: dict) -> None:
        items = page.get("items") or []
        failed = sum(e.get("status") == "failed" for e in items)
        total = page.get("total", len(items))
        self.query_one("#exports-summary", Static).update(
            "No exports yet." if not total else
            f"{total} exports · newest {when(items[0].get('created_at'))}"
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
        shown = await ask(self, "exports.show", {"export_id": export_id}, failing="Export")
        self.app.push_screen(DetailScreen(f"Export {export_id[:8]}…", shown))

    def action_reload(self) -> None:
        self.load()

    # --- a new export, and its live progress ------------------------------------------------

    def action_new_export(self) -> None:
        reason = self.why_not_export()
        if reason:
            self.notify(f"Cannot export: {reason}", severity="warning")
            return
        self.open_form()

    @tab_work(group="exports-actions")
    async def open_form(self) -> None:
        catalogue = await ask(self, "exports.tables", failing="Exports")
        send = daemon_sender(self, "exports.run", lambda args: args, lambda _args, run: self.started(run))
        self.app.push_screen(ExportFormScreen(catalogue, phi_reason=self.identity.why_not("phi:read"), send=send))

    def action_run_saved(self) -> None:
        reason = self.why_not_export()
        if reason:
            self.notify(f"Cannot export: {reason}", severity="warning")
            return
        self.open_saved()

    @tab_work(group="exports-actions")
    async def open_saved(self) -> None:
        catalogue = await ask(self, "exports.tables", failing="Exports")
        if not catalogue.get("configurations"):
            self.notify("No saved exports yet (strongroom export ... --save-as NAME saves one).", severity="warning")
            return
        screen = SavedExportScreen(catalogue["configurations"], int(catalogue.get("min_password", 8)))
        self.app.push_screen(screen, lambda args: self.start(args) if args else None)

    @tab_work(group="exports-actions")
    async def start(self, args: dict) -> None:
        run = await ask(self, "exports.run", args, failing="Export refused", notice_seconds=10)
        self.started(run)

    def started(self, run: dict) -> None:
        self.apply_job({"run_id": run["id"], "kind": KIND, "status": run.get("status", "queued")})
        self.notify(f"Export started ({run['id'][:8]}…)")

    def apply_job(self, data: dict) -> None:
        """A `job.<id>` event: progress for an export run; reload the history when it ends."""
        if data.get("kind") != KIND or not data.get("run_id"):
            return
        finished = show_run(self.query_one("#exports-running", Vertical), data, KIND)
        if finished and self.identity is not None and self.shown:
            self.load()
