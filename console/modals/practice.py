"""The practice's details, its staff and its service catalogue (practice.show, staff.list,
services.list), opened from the Users tab (`p`) or the command palette on any tab.

Editing needs the practice's write permissions (the owner, or an operator admin): `e`
edits the details, `n` adds a staff member, `v` adds a service, enter edits the selected
row and `x` retires or reinstates it (nothing is ever deleted: sessions keep the staff
member and service they were booked with). Each form sends itself and stays open with
what was typed when the daemon refuses a value, showing the refusal, which names the
field. The tax id and licence number arrive masked unless the user may edit them; the
daemon audits opening them. Working hours and specializations are edited with the CLI
(`strongroom staff set`), whose flags suit their structure better than one text box.
`b` chooses a client in the client picker and opens their appointments
(console/modals/appointments.py); `f`, the same way, their files (console/modals/files.py).
"""
from __future__ import annotations

from typing import Any

from strongroom.console.client import ClientError
from strongroom.console.helpers.gates import Gated
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.text import fit
from strongroom.console.helpers.workers import ask, fetch, tab_work
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain, PlainLabel
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

# Fit an 80-column terminal (the dialog leaves 72 cells); longer values end in an ellipsis.
STAFF_COLUMNS = (("Name", "name", 18), ("Role", "role", 12), ("Email", "email", 18), ("Rate/h", "rate", 8),
                 ("Active", "active", 6))
SERVICE_COLUMNS = (("Service", "name", 22), ("Category", "category", 14), ("Min", "minutes", 4),
                   ("Price", "price", 9), ("Active", "active", 6))
DETAILS = (("name", "Name"), ("address", "Address (optional)"), ("phone", "Phone (optional)"),
           ("email", "Email (optional)"), ("tax_id", "Tax id (optional)"), ("license_number", "Licence number (optional)"))
STAFF_FIELDS = (("first_name", "First name", ""), ("last_name", "Last name", ""),
                ("role", "Role", "ADMIN, MANAGER, PRACTITIONER or STAFF"), ("email", "Email (optional)", ""),
                ("phone", "Phone (optional)", ""), ("hourly_rate_cents", "Hourly rate in cents (optional)", "e.g. 9500"))
SERVICE_FIELDS = (("name", "Name", ""), ("category", "Category", "e.g. therapy, assessment"),
                  ("duration_minutes", "Duration in minutes", "e.g. 50"), ("price_cents", "Price in cents", "e.g. 12000"),
                  ("description", "Description (optional)", ""))
# Which permission each action needs; the daemon checks again.
NEEDS = {"edit_details": "table:practices:write", "add_staff": "table:staff:write",
         "add_service": "table:services:write", "edit_row": None, "toggle_active": None,
         "appointments": "table:therapy_sessions:read", "files": "table:client_files:read"}
# Choosing the client for `b` and `f` is a client.find, which needs this too.
FIND_CLIENT = "table:clients:read"


def money(cents: Any) -> str:
    """Integer cents as an amount with two decimals; — for none."""
    if cents in (None, ""):
        return "—"
    return f"{int(cents) / 100:,.2f}"


def yes_no(value: Any) -> str:
    return "✓ yes" if value else "✗ no"


def changes(initial: dict, values: dict, optional: set[str]) -> dict:
    """The set-command arguments for what an edit form changed: changed values as typed
    (the daemon parses numbers and refuses a bad one by name), emptied optional fields
    in `clear`."""
    args: dict[str, Any] = {}
    clear = []
    for name, value in values.items():
        before = "" if initial.get(name) is None else str(initial[name])
        if value == before:
            continue
        if value == "" and name in optional:
            clear.append(name)
        elif value != "":
            args[name] = value
    if clear:
        args["clear"] = clear
    return args


def typed(values: dict) -> dict:
    """The add-command arguments: every field given, as typed; empty optional ones left out."""
    return {name: value for name, value in values.items() if value != ""}


class PracticeScreen(Gated, ModalScreen[None]):
    NEEDS = NEEDS
    DEFAULT_CSS = """
    PracticeScreen #practice-dialog { width: 96%; max-width: 110; height: 90%; border: thick $primary;
                                      background: $surface; padding: 0 1; }
    PracticeScreen #practice-details { height: auto; max-height: 4; }
    PracticeScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("e", "edit_details", "Edit details"),
                Binding("n", "add_staff", "Add staff"), Binding("v", "add_service", "Add service"),
                Binding("enter", "edit_row", "Edit", show=False), Binding("x", "toggle_active", "Retire/reinstate"),
                Binding("b", "appointments", "Appointments"), Binding("f", "files", "Files"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, identity: Identity) -> None:
        super().__init__()
        self.identity = identity
        self.practice: dict = {}
        self.staff: dict[str, dict] = {}
        self.services: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="practice-dialog"):
            yield Plain("Practice · e details · n staff · v service · ⏎ edit · x retire · esc",
                         classes="dialog-title")
            yield Plain("Loading…", id="practice-details")
            yield PlainLabel("Staff", classes="section")
            yield ListTable(id="practice-staff", cursor_type="row", zebra_stripes=True)
            yield PlainLabel("Services", classes="section")
            yield ListTable(id="practice-services", cursor_type="row", zebra_stripes=True)
            yield Plain("", id="practice-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one("#practice-staff", DataTable), STAFF_COLUMNS)
        add_columns(self.query_one("#practice-services", DataTable), SERVICE_COLUMNS)
        self.query_one("#practice-staff", DataTable).focus()
        self.load()

    # --- what may be done, and why not --------------------------------------------------

    def focused_table(self) -> str | None:
        focused = self.focused
        if isinstance(focused, DataTable) and focused.id in ("practice-staff", "practice-services"):
            return focused.id
        return None

    def selected(self) -> tuple[str, dict] | None:
        """("staff" or "services", the selected record) in the focused table."""
        table_id = self.focused_table()
        if table_id is None:
            return None
        table = self.query_one(f"#{table_id}", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        kind = "staff" if table_id == "practice-staff" else "services"
        record = (self.staff if kind == "staff" else self.services).get(key)
        return None if record is None else (kind, record)

    def why_not(self, action: str) -> str | None:
        needed = NEEDS.get(action)
        if needed is None and action in ("edit_row", "toggle_active"):
            chosen = self.selected()
            if chosen is None:
                return "no staff member or service selected"
            needed = f"table:{chosen[0]}:write"
        if action in ("appointments", "files"):
            return self.identity.why_not(needed) or self.identity.why_not(FIND_CLIENT)
        return self.identity.why_not(needed) if needed else None

    def on_data_table_row_highlighted(self) -> None:
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter on a row (the table takes the key itself): edit it."""
        event.stop()
        self.action_edit_row()

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()

    # --- loading ----------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="practice-load")
    async def load(self) -> None:
        try:
            practice = await fetch(self, "practice.show")
            staff = await fetch(self, "staff.list", {"include_inactive": True})
            services = await fetch(self, "service.list", {"include_inactive": True})
        except ClientError as err:
            self.query_one("#practice-details", Static).update(f"Practice: {err.message}")
            return
        self.practice = practice
        self.staff = {str(s["id"]): s for s in staff["items"]}
        self.services = {str(s["id"]): s for s in services["items"]}
        self.show()

    def show(self) -> None:
        p = self.practice
        self.query_one("#practice-details", Static).update(
            f"{p.get('name') or '—'} · {p.get('address') or 'no address'} · {p.get('phone') or 'no phone'} · "
            f"{p.get('email') or 'no email'}\ntax id {p.get('tax_id') or '—'} · licence "
            f"{p.get('license_number') or '—'} · time zone {p.get('timezone') or '—'}")
        self._fill("#practice-staff", STAFF_COLUMNS, self.staff, lambda s: (
            f"{s['first_name']} {s['last_name']}", s["role"], s.get("email") or "—",
            money(s.get("hourly_rate_cents")), yes_no(s.get("active"))))
        self._fill("#practice-services", SERVICE_COLUMNS, self.services, lambda s: (
            s["name"], s["category"], str(s["duration_minutes"]), money(s["price_cents"]), yes_no(s.get("active"))))
        self.query_one("#practice-note", Static).update(
            f"{len(self.staff)} staff, {len(self.services)} services"
            + ("" if self.why_not("appointments") else " · b appointments")
            + ("" if not self.identity.why_not("table:practices:write")
               else " · read only: " + str(self.identity.why_not("table:practices:write"))))
        self.refresh_bindings()

    def _fill(self, selector: str, columns: tuple, records: dict[str, dict], cells) -> None:
        table = self.query_one(selector, DataTable)
        kept = table.cursor_row
        table.clear()
        widths = [width for _, _, width in columns]
        for key, record in records.items():
            table.add_row(*(fit(str(value), width) for value, width in zip(cells(record), widths)), key=key)
        if table.row_count:
            table.move_cursor(row=min(kept, table.row_count - 1))

    # --- changes ------------------------------------------------------------------------

    def _sender(self, cmd: str, build):
        """A FormScreen `send` for `cmd` (form.daemon_sender) that reloads when done."""
        return daemon_sender(self, cmd, build, lambda _values, _answer: self.load())

    def action_edit_details(self) -> None:
        if self.refused("edit_details"):
            return
        initial = {name: self.practice.get(name) for name, _ in DETAILS}
        self.app.push_screen(FormScreen(
            "The practice's details",
            "Tax id and licence number are kept encrypted with the system key. Empty an optional field to clear it.",
            tuple((name, label, "") for name, label in DETAILS), submit="Save", values=initial,
            send=self._sender("practice.set", lambda v: changes(initial, v, {n for n, _ in DETAILS} - {"name"}))))

    def action_add_staff(self) -> None:
        if self.refused("add_staff"):
            return
        self.app.push_screen(FormScreen(
            "Add a staff member", "Working hours and specializations: strongroom staff set ID --hours/--specialization.",
            STAFF_FIELDS, submit="Add", send=self._sender("staff.add", typed)))

    def action_add_service(self) -> None:
        if self.refused("add_service"):
            return
        self.app.push_screen(FormScreen(
            "Add a service", "Money in whole cents (12000 is 120.00).", SERVICE_FIELDS, submit="Add",
            send=self._sender("service.add", typed)))

    def action_edit_row(self) -> None:
        if self.refused("edit_row"):
            return
        kind, record = self.selected()
        fields = STAFF_FIELDS if kind == "staff" else SERVICE_FIELDS
        initial = {name: record.get(name) for name, _, _ in fields}
        optional = {name for name, label, _ in fields if "(optional)" in label}
        id_field = "staff_id" if kind == "staff" else "service_id"
        title = (f"Edit {record['first_name']} {record['last_name']}" if kind == "staff"
                 else f"Edit the service {record['name']}")
        self.app.push_screen(FormScreen(
            title, "Only what you change is sent.", fields, submit="Save", values=initial,
            send=self._sender(f"{kind}.set", lambda v: {id_field: str(record["id"]),
                                                         **changes(initial, v, optional)})))

    def action_toggle_active(self) -> None:
        if self.refused("toggle_active"):
            return
        kind, record = self.selected()
        self.change(kind, record)

    def action_appointments(self) -> None:
        """A client's appointments: the client from the picker, then appointments.py."""
        from strongroom.console.modals.appointments import AppointmentsScreen
        self._for_client("appointments", AppointmentsScreen)

    def action_files(self) -> None:
        """A client's files: the client from the picker, then files.py."""
        from strongroom.console.modals.files import FilesScreen
        self._for_client("files", FilesScreen)

    def _for_client(self, action: str, screen: type) -> None:
        """`screen(identity, client_id)` for the client chosen in the client picker
        (nothing if the person closes it), unless `action` is refused."""
        from strongroom.console.modals.client_picker import ClientPickerScreen

        if self.refused(action):
            return

        def chosen(client_id: str | None) -> None:
            if client_id:
                self.app.push_screen(screen(self.identity, client_id))
        self.app.push_screen(ClientPickerScreen(), chosen)

    @tab_work(group="practice-change")
    async def change(self, kind: str, record: dict) -> None:
        id_field = "staff_id" if kind == "staff" else "service_id"
        await ask(self, f"{kind}.set", {id_field: str(record["id"]), "active": not record.get("active")},
                  failing="Refused", notice_seconds=10)
        self.notify(("Reinstated" if not record.get("active") else "Retired") + " (kept for past sessions).")
        self.load()
