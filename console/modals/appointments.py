"""One client's appointments (the therapy sessions the practice books), opened from the
practice screen (`b`) once the client is chosen in the client picker.

Listed newest first from appointment.list, with the service and staff member by name
(service.list, staff.list). `a` books one, `s` sets the selected one's status and `y` its
payment status, each through a form that sends itself (form.daemon_sender): a value the
daemon refuses is shown in its words under the fields, everything typed kept and nothing
changed. Booking and changing need `table:therapy_sessions:write` (the front desk has
it); without it the keys are shown disabled with the reason, and the daemon checks
again. Notes are never shown here: the list would open them for `phi:read`, an audited
read this screen has no use for.
"""
from __future__ import annotations

import uuid
from typing import Any

from strongroom.console.client import ClientError
from strongroom.console.helpers.gates import Gated
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.text import fit, when
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.modals.practice import money
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

STATUSES = ("SCHEDULED", "CONFIRMED", "CANCELLED", "COMPLETED")
PAYMENT_STATUSES = ("PENDING", "PAID", "FAILED", "REFUNDED")
COLUMNS = (("Starts (UTC)", "starts", 16), ("Min", "minutes", 3), ("Status", "status", 9),
           ("Payment", "payment", 8), ("Price", "price", 8), ("Service", "service", 12), ("Staff", "staff", 12),
           ("Reminder", "reminder", 8))
BOOK_FIELDS = (("starts_at", "Starts (ISO 8601 with a timezone)", "e.g. 2031-03-04T10:00+01:00"),
               ("duration_minutes", "Duration in minutes", "5 to 600"),
               ("service", "Service, by name or id (optional)", "its price unless one is given"),
               ("staff", "Staff member, by name or id (optional)", "e.g. Ola Penn"),
               ("price_cents", "Price in cents (optional)", "e.g. 12000"))
WRITE = "table:therapy_sessions:write"
# Which permission each action needs; the daemon checks again.
NEEDS = {"book": WRITE, "set_status": WRITE, "set_payment": WRITE}


def staff_name(member: dict) -> str:
    return f"{member['first_name']} {member['last_name']}"


def resolve(kind: str, typed: str, records: dict[str, dict], name) -> str:
    """The id of the record `typed` names: an id as given (the daemon checks it is the
    practice's), else the one active record with that name, whatever its case."""
    try:
        return str(uuid.UUID(typed))
    except ValueError:
        pass
    matches = [key for key, record in records.items()
               if record.get("active", True) and name(record).casefold() == typed.casefold()]
    if len(matches) != 1:
        raise ValueError(f"{kind}: {'no active one' if not matches else 'more than one'} is named {typed!r}; "
                         "give its id")
    return matches[0]


class AppointmentsScreen(Gated, ModalScreen[None]):
    NEEDS = NEEDS
    DEFAULT_CSS = """
    AppointmentsScreen #appointments-dialog { width: 96%; max-width: 110; height: 90%; border: thick $primary;
                                              background: $surface; padding: 0 1; }
    AppointmentsScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("a", "book", "Book"),
                Binding("s", "set_status", "Status"), Binding("y", "set_payment", "Payment"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, identity: Identity, client_id: str) -> None:
        super().__init__()
        self.identity = identity
        self.client_id = client_id
        self.loaded = False
        self.appointments: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.staff: dict[str, dict] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="appointments-dialog"):
            yield Plain(f"Appointments · client {self.client_id[:8]}… · a book · s status · y payment · esc",
                        classes="dialog-title")
            yield ListTable(id="appointments-table", cursor_type="row", zebra_stripes=True)
            yield Plain("Loading…", id="appointments-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one("#appointments-table", DataTable), COLUMNS)
        self.query_one("#appointments-table", DataTable).focus()
        self.load()

    # --- what may be done, and why not --------------------------------------------------

    def selected(self) -> dict | None:
        table = self.query_one("#appointments-table", DataTable)
        if not table.row_count:
            return None
        return self.appointments.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def why_not(self, action: str) -> str | None:
        reason = self.identity.why_not(NEEDS[action])
        if reason is None and action != "book" and self.selected() is None:
            return "no appointment selected"
        return reason

    def on_data_table_row_highlighted(self) -> None:
        self.refresh_bindings()

    # --- loading ----------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="appointments-load")
    async def load(self) -> None:
        note = self.query_one("#appointments-note", Static)
        try:
            page = await fetch(self, "appointment.list", {"client_id": self.client_id})
        except ClientError as err:
            note.update(f"Appointments: {err.message}")
            return
        # Names for the ids; without the practice's read permissions the ids stay.
        for cmd, target in (("service.list", self.services), ("staff.list", self.staff)):
            try:
                answer = await fetch(self, cmd, {"include_inactive": True})
            except ClientError:
                continue
            target.clear()
            target.update((str(r["id"]), r) for r in answer["items"])
        self.appointments = {str(a["id"]): a for a in page["items"]}
        self.loaded = True
        self.show()

    def name_of(self, records: dict[str, dict], key: Any, name) -> str:
        if not key:
            return "—"
        record = records.get(str(key))
        return name(record) if record else f"{str(key)[:8]}…"

    def show(self) -> None:
        table = self.query_one("#appointments-table", DataTable)
        kept = table.cursor_row
        table.clear()
        widths = [width for _, _, width in COLUMNS]
        for key, a in self.appointments.items():
            cells = (when(a["starts_at"])[:16], str(a["duration_minutes"]), a["status"], a["payment_status"],
                     money(a.get("price_cents")), self.name_of(self.services, a.get("service_id"), lambda s: s["name"]),
                     self.name_of(self.staff, a.get("staff_id"), staff_name),
                     "sent" if a.get("reminder_sent") else "no")
            table.add_row(*(fit(str(value), width) for value, width in zip(cells, widths)), key=key)
        if table.row_count:
            table.move_cursor(row=min(kept, table.row_count - 1))
        read_only = self.identity.why_not(WRITE)
        self.query_one("#appointments-note", Static).update(
            f"{len(self.appointments)} appointments, newest first"
            + ("" if read_only is None else f" · read only: {read_only}"))
        self.refresh_bindings()

    # --- changes ------------------------------------------------------------------------

    def _sender(self, cmd: str, build, done: str):
        """A FormScreen `send` for `cmd` that says `done` and reloads once the daemon accepts."""
        def finished(_values: dict, _answer: Any) -> None:
            self.notify(done)
            self.load()
        return daemon_sender(self, cmd, build, finished)

    def _booking(self, values: dict) -> dict:
        args: dict[str, Any] = {"client_id": self.client_id, "starts_at": values["starts_at"],
                                "duration_minutes": values["duration_minutes"]}
        if values["service"]:
            args["service_id"] = resolve("service", values["service"], self.services, lambda s: s["name"])
        if values["staff"]:
            args["staff_id"] = resolve("staff", values["staff"], self.staff, staff_name)
        if values["price_cents"]:
            args["price_cents"] = values["price_cents"]
        return args

    def action_book(self) -> None:
        if self.refused("book"):
            return
        self.app.push_screen(FormScreen(
            "Book an appointment", "Money in whole cents (12000 is 120.00); without a price the service's applies.",
            BOOK_FIELDS, submit="Book", values={"duration_minutes": "50"},
            send=self._sender("appointment.add", self._booking, "Booked.")))

    def _set(self, action: str, field: str, label: str, allowed: tuple[str, ...]) -> None:
        if self.refused(action):
            return
        appointment = self.selected()
        self.app.push_screen(FormScreen(
            f"{label} of the appointment at {when(appointment['starts_at'])[:16]} UTC", ", ".join(allowed) + ".",
            ((field, label, " / ".join(allowed)),), submit="Save", values={field: appointment[field]},
            send=self._sender("appointment.set", lambda v: {"appointment_id": str(appointment["id"]), field: v[field].upper()},
                              f"{label} saved.")))

    def action_set_status(self) -> None:
        self._set("set_status", "status", "Status", STATUSES)

    def action_set_payment(self) -> None:
        self._set("set_payment", "payment_status", "Payment status", PAYMENT_STATUSES)
