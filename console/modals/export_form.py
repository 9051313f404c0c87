"""The new-export form (`n` on the Exports tab), in three sections so it fits 80x24:

- Export: tables and their fields, format, masking, an AES-256 ZIP with its password,
  and a UTF-8 byte order mark for CSV;
- Filters: a relative range (last 30 days ...) or since/until, never both (choosing a
  range disables since and until), client and practice, and status filters as pick
  lists of the values the daemon's catalogue names (each enabled only while its table
  is chosen);
- Save as: a name, and with it a schedule (cron, UTC), retention days and the systemd
  credential holding a scheduled ZIP's password. With a name, ctrl+s saves the request
  as a configuration (export.configuration.create, as `strongroom export --save-as`)
  instead of starting an export; `s` on the tab runs it.

PHI fields are marked in the field list; the profile "full" (PHI in clear) is offered
disabled, with the reason, to a user without phi:read. Given `send` (and `save`), the
form submits itself and stays open with everything chosen when the daemon refuses the
request (modals/form.py)."""
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
from textual.widgets import Checkbox, Input, RadioSet, Select, SelectionList, Static, TabbedContent, TabPane
from textual.widgets.selection_list import Selection

Sender = Callable[[dict], Awaitable[str | None]]
RANGE_NAMES = {"last_30_days": "last 30 days", "last_90_days": "last 90 days", "this_month": "this month",
               "last_quarter": "last quarter"}


def _filters(values: dict) -> dict:
    """The request's filters: a range replaces since/until; a status filter only for an
    exported table (the form disables the others), as the CLI's comma-separated values."""
    names = ("range", "client_id", "practice_id") if values.get("range") else \
        ("since", "until", "client_id", "practice_id")
    filters = {k: values[k] for k in names if values.get(k)}
    for name, chosen in (values.get("statuses") or {}).items():
        if chosen:
            filters[name] = ",".join(chosen)
    return filters


def _fields(values: dict) -> dict[str, list[str]]:
    tables = list(values["tables"])
    fields: dict[str, list[str]] = {}
    for item in values["fields"]:
        table, _, field = item.partition(".")
        if table in tables:
            fields.setdefault(table, []).append(field)
    return {t: fields.get(t, []) for t in tables}


def request_from(values: dict) -> dict:
    """The exports.run arguments for what the form holds."""
    args = {"tables": list(values["tables"]), "fields": _fields(values), "filters": _filters(values),
            "format": values["format"], "masking": values["masking"], "encrypt": values["encrypt"]}
    if values["encrypt"]:
        args["password"] = values["password"]
    if values.get("bom") and values["format"] == "csv":
        args["bom"] = True
    if values.get("files") and values["encrypt"]:
        args["files"] = True       # the listed client files' content in the ZIP (jobs.export)
    return args


def save_request_from(values: dict) -> dict:
    """The export.configuration.create arguments (as `strongroom export --save-as` sends
    them): the request without a password (asked at each run, or read from the named
    credential by a scheduled run), with its schedule, retention and credential."""
    args = {"name": values["save_as"], **request_from({**values, "encrypt": False, "bom": False, "files": False}),
            "encrypt": values["encrypt"]}
    if values.get("schedule"):
        args["schedule"] = values["schedule"]
    if values.get("retention_days"):
        args["retention_days"] = int(values["retention_days"])
    if values.get("password_credential"):
        args["password_credential"] = values["password_credential"]
    return args


class ExportFormScreen(ModalScreen[dict | None]):
    """The new-export form; dismisses with the exports.run (or, with a name to save it
    as, export.configuration.create) arguments, or None."""

    DEFAULT_CSS = """
    ExportFormScreen #export-dialog { width: 78; height: auto; max-height: 24; border: thick $primary;
                                      background: $surface; padding: 0 1; }
    ExportFormScreen #export-sections { height: 17; }
    ExportFormScreen #export-sections ContentSwitcher { height: 15; }
    ExportFormScreen .export-section { height: 15; }
    ExportFormScreen #export-form-body { height: 14; }
    ExportFormScreen #export-choose { width: 36; }
    ExportFormScreen #export-tables { height: 5; }
    ExportFormScreen #export-fields { height: 9; }
    ExportFormScreen #export-options { width: 1fr; }
    ExportFormScreen #export-masking { height: 4; width: 100%; }
    ExportFormScreen #export-checks { height: 3; }
    ExportFormScreen #export-checks Checkbox { width: auto; }
    ExportFormScreen .export-row { height: 3; }
    ExportFormScreen .export-row Input { width: 1fr; }
    ExportFormScreen .export-row Select { width: 1fr; }
    ExportFormScreen #export-statuses { height: 6; }
    ExportFormScreen #export-statuses SelectionList { width: 1fr; height: 6; padding: 0 1; }
    ExportFormScreen .export-explain { height: auto; }
    ExportFormScreen #export-form-error { height: auto; max-height: 3; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Start export"),
                Binding("ctrl+f", "find_client", "Find client"),
                Binding("ctrl+o", "next_section", "Next section")]

    def __init__(self, catalogue: dict, *, phi_reason: str | None, send: Sender | None = None,
                 save: Sender | None = None) -> None:
        """`send`: submits the exports.run arguments itself and closes the form only when
        it returns None; the refusal it returns instead (the daemon's words, naming the
        field) is shown here with everything chosen and typed kept (form.FormScreen).
        `save`: the same for the export.configuration.create arguments, when the form
        names a configuration to save."""
        super().__init__()
        self.catalogue = catalogue
        self.phi_reason = phi_reason
        self.send = send
        self.save = save
        self.tables = {t["table"]: t for t in catalogue.get("tables") or []}
        # status filter -> (its table, its values), from the daemon's catalogue
        self.statuses = {s["filter"]: (s["table"], list(s["values"])) for s in catalogue.get("status_filters") or []}

    def compose(self) -> ComposeResult:
        minimum = self.catalogue.get("min_password", 8)
        with Vertical(id="export-dialog"):
            yield Plain("New export · ctrl+s start/save · ctrl+o section · ctrl+f client · esc",
                        classes="dialog-title")
            with TabbedContent(id="export-sections", initial="export-section-main"):
                with TabPane("Export", id="export-section-main"):
                    with Vertical(classes="export-section"):
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
                                with Horizontal(id="export-checks"):
                                    yield Check("AES-256 ZIP", id="export-encrypt")
                                    yield Check("UTF-8 BOM", id="export-bom")
                                    yield Check("Files", id="export-files", disabled=True,
                                                tooltip="With client_files, full PHI and the ZIP: "
                                                        "each listed file's content in the ZIP")
                                yield Input(placeholder=f"ZIP password (≥{minimum} chars)", password=True,
                                            id="export-password", disabled=True)
                with TabPane("Filters", id="export-section-filters"):
                    with Vertical(classes="export-section"):
                        with Horizontal(classes="export-row"):
                            yield Select([("no range", "")]
                                         + [(RANGE_NAMES.get(r, r), r) for r in self.catalogue.get("ranges") or []],
                                         value="", allow_blank=False, id="export-range")
                            yield Input(placeholder="since YYYY-MM-DD", id="export-since")
                            yield Input(placeholder="until YYYY-MM-DD", id="export-until")
                        with Horizontal(classes="export-row"):
                            yield Input(placeholder="client id (ctrl+f finds one)", id="export-client")
                            yield Input(placeholder="practice id", id="export-practice")
                        with Horizontal(id="export-statuses"):
                            for name, (table, values) in self.statuses.items():
                                picks = PickList[str](*[Selection(v, v) for v in values],
                                                      id=f"export-{name.replace('_', '-')}")
                                picks.border_title = name.replace("_", " ")
                                picks.border_subtitle = table
                                yield picks
                        yield Plain("A range (whole days, the practice's time) replaces since/until. A status "
                                    "list applies when its table is exported; none ticked: all.",
                                    classes="export-explain muted")
                with TabPane("Save as", id="export-section-save"):
                    with Vertical(classes="export-section"):
                        with Horizontal(classes="export-row"):
                            yield Input(placeholder="name to save as", id="export-save-as")
                            yield Input(placeholder="schedule: cron, UTC", id="export-schedule",
                                        disabled=True)
                        with Horizontal(classes="export-row"):
                            yield Input(placeholder="retention days (1-3650)", id="export-retention", disabled=True)
                            yield Input(placeholder="password credential (systemd)", id="export-credential",
                                        disabled=True)
                        yield Plain("With a name, ctrl+s saves this export (it does not run it): s on the "
                                    "Exports tab runs it, and so does its schedule, if any (crontab(5), UTC, "
                                    "e.g. 0 6 * * 1). Its ZIP password is asked at each run; a scheduled "
                                    "encrypted one reads it from the named systemd credential. No password or "
                                    "BOM is saved; empty retention: the daemon's default.",
                                    classes="export-explain muted")
            yield Plain(self.note(), id="export-form-error", classes="muted")

    def note(self) -> str:
        if self.phi_reason:
            return f"* PHI, masked · full disabled: {self.phi_reason}"
        return "* PHI: masked unless the profile is full"

    def on_mount(self) -> None:
        self._show_fields()
        self._show_statuses()
        self.query_one("#export-tables", SelectionList).focus()

    @on(SelectionList.SelectedChanged, "#export-tables")
    def _tables_changed(self) -> None:
        self._show_fields()
        self._show_statuses()

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

    def _status_list(self, name: str) -> SelectionList:
        return self.query_one(f"#export-{name.replace('_', '-')}", SelectionList)

    def _show_statuses(self) -> None:
        """A status filter is enabled only while the table it applies to is chosen."""
        chosen = set(self.query_one("#export-tables", SelectionList).selected)
        for name, (table, _) in self.statuses.items():
            self._status_list(name).disabled = table not in chosen

    @on(Checkbox.Changed, "#export-encrypt")
    def _encrypt_changed(self, event: Checkbox.Changed) -> None:
        self.query_one("#export-password", Input).disabled = not event.value
        self.query_one("#export-files", Checkbox).disabled = not event.value

    @on(Select.Changed, "#export-format")
    def _format_changed(self, event: Select.Changed) -> None:
        self.query_one("#export-bom", Checkbox).disabled = event.value != "csv"

    @on(Select.Changed, "#export-range")
    def _range_changed(self, event: Select.Changed) -> None:
        for field in ("#export-since", "#export-until"):
            self.query_one(field, Input).disabled = bool(event.value)

    @on(Input.Changed, "#export-save-as")
    def _save_as_changed(self, event: Input.Changed) -> None:
        for field in ("#export-schedule", "#export-retention", "#export-credential"):
            self.query_one(field, Input).disabled = not event.value.strip()

    SECTIONS = ("export-section-main", "export-section-filters", "export-section-save")
    FIRST = {"export-section-main": "#export-tables", "export-section-filters": "#export-range",
             "export-section-save": "#export-save-as"}

    def action_next_section(self) -> None:
        active = self.query_one("#export-sections", TabbedContent).active
        self.show_section(self.SECTIONS[(self.SECTIONS.index(active) + 1) % len(self.SECTIONS)])

    def show_section(self, pane: str, focus: str | None = None) -> None:
        """Show a section with its first field (or `focus`) focused: focus left behind in
        a hidden section would bring that section back."""
        self.query_one(focus or self.FIRST[pane]).focus()
        self.query_one("#export-sections", TabbedContent).active = pane

    def _text(self, field: str) -> str:
        widget = self.query_one(field, Input)
        return "" if widget.disabled else widget.value.strip()

    def values(self) -> dict:
        masking = self.query_one("#export-masking", RadioSet).pressed_button
        period = self.query_one("#export-range", Select).value
        fmt = self.query_one("#export-format", Select).value
        return {"tables": self.query_one("#export-tables", SelectionList).selected,
                "fields": self.query_one("#export-fields", SelectionList).selected,
                "format": fmt,
                "masking": "full" if masking is not None and masking.id == "masking-full" else "masked",
                "encrypt": self.query_one("#export-encrypt", Checkbox).value,
                "bom": fmt == "csv" and self.query_one("#export-bom", Checkbox).value,
                "files": (self.query_one("#export-encrypt", Checkbox).value
                          and self.query_one("#export-files", Checkbox).value),
                "password": self.query_one("#export-password", Input).value,
                "range": period if isinstance(period, str) else "",
                "since": self._text("#export-since"),
                "until": self._text("#export-until"),
                "client_id": self._text("#export-client"),
                "practice_id": self._text("#export-practice"),
                "statuses": {name: list(self._status_list(name).selected) for name in self.statuses
                             if not self._status_list(name).disabled},
                "save_as": self._text("#export-save-as"),
                "schedule": self._text("#export-schedule"),
                "retention_days": self._text("#export-retention"),
                "password_credential": self._text("#export-credential")}

    def problem(self, values: dict) -> str | None:
        """What the form itself can tell is missing or wrong (the daemon checks the rest)."""
        if not values["tables"]:
            return "Choose at least one table."
        if any(not [f for f in values["fields"] if f.startswith(f"{t}.")] for t in values["tables"]):
            return "Choose at least one field of each table."
        if values["save_as"]:
            if values["bom"]:
                return "UTF-8 BOM is not kept in a saved configuration: choose it when running one, or clear it."
            if values["files"]:
                return "Files is not kept in a saved configuration: choose it when running one, or clear it."
            days = values["retention_days"]
            if days and not (days.isdigit() and 1 <= int(days) <= 3650):
                return "Retention days: a whole number from 1 to 3650, or empty for the default."
            return None
        minimum = int(self.catalogue.get("min_password", 8))
        if values["encrypt"] and len(values["password"]) < minimum:
            return f"The ZIP password needs at least {minimum} characters."
        return None

    def action_submit(self) -> None:
        values = self.values()
        problem = self.problem(values)
        if problem:
            self._show_problem(problem)
            return
        if values["save_as"]:
            args, sender = save_request_from(values), self.save
        else:
            args, sender = request_from(values), self.send
        if sender is None:
            self.dismiss(args)
        else:
            self._send(sender, args)

    def action_find_client(self) -> None:
        """The client filter from the client picker instead of a pasted id."""
        from strongroom.console.modals.client_picker import fill_with_client
        self.show_section("export-section-filters", "#export-client")
        fill_with_client(self.query_one("#export-client", Input))

    def _show_problem(self, problem: str) -> None:
        note = self.query_one("#export-form-error", Static)
        note.update(problem)
        note.set_class(True, "error")

    @work(exclusive=True, group="export-form-send")
    async def _send(self, sender: Sender, args: dict) -> None:
        await send_then_close(self, sender, args, self._show_problem)
