"""One client's appointments (the therapy sessions the practice books), opened from the
practice screen (`b`) once the client is chosen in the client picker.

Listed newest first from appointment.list, with the service and staff member by name
(service.list, staff.list). `a` books one; `e` (or enter) edits the selected one's
start, duration, status, payment status, service, staff member, price and reminder; `s`
and `y` change just its status or payment status. Each is an AppointmentForm
(appointment_form.py) that sends itself: statuses, services and staff are picked from
lists, a value the daemon refuses is shown in its words under the fields, everything
kept and nothing changed. An edit sends only what changed, an emptied price, service or
staff member as `clear`. Booking and changing need `table:therapy_sessions:write` (the
front desk has it); without it the keys are shown disabled with the reason, and the
daemon checks again. Notes and the other clinical fields are never shown or asked for
here: they are PHI this screen has no use for.
"""
from __future__ import annotations

from typing import Any

from strongroom.console.client import ClientError
from strongroom.console.helpers.gates import Gated
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.text import fit, when
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.appointment_form import (ALL_FIELDS, AppointmentForm, service_name, shown,
                                                       staff_name)
from strongroom.console.modals.form import daemon_sender
from strongroom.console.modals.practice import money
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

COLUMNS = (("Starts (UTC)", "starts", 16), ("Min", "minutes", 3), ("Status", "status", 9),
           ("Payment", "payment", 8), ("Price", "price", 8), ("Service", "service", 12), ("Staff", "staff", 12),
           ("Reminder", "reminder", 8))
# What appointment.set may empty of the fields this screen edits (the others are required).
EMPTIED = ("service_id", "staff_id", "price_cents")
WRITE = "table:therapy_sessions:write"
# Which permission each action needs; the daemon checks again.
NEEDS = {"book": WRITE, "edit": WRITE, "set_status": WRITE, "set_payment": WRITE}


def changes(appointment: dict, values: dict[str, Any]) -> dict[str, Any]:
    """appointment.set's arguments for what the form changed: only fields whose value
    differs from the appointment's (so an edit never rewrites, or audits, what it did not
    touch), an emptied optional one as `clear`. Nothing changed is a ValueError, shown in
    the form like a refusal."""
    args: dict[str, Any] = {}
    cleared: list[str] = []
    for field, value in values.items():
        if value == shown(appointment, field):
            continue
        if value in (None, "") and field in EMPTIED:
            cleared.append(field)
        else:
            args[field] = value
    if not args and not cleared:
        raise ValueError("Nothing changed (esc closes the form).")
    return {"appointment_id": str(appointment["id"]), **args, **({"clear": cleared} if cleared else {})}


def booking(client_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """appointment.add's arguments: what was picked, what was typed, leaving out an empty
    optional field so the daemon's default applies (50 minutes, the service's price)."""
    args: dict[str, Any] = {"client_id": client_id}
    for field, value in values.items():
        if value not in (None, "", False):
            args[field] = value
    return args


class AppointmentsScreen(Gated, ModalScreen[None]):
    NEEDS = NEEDS
    DEFAULT_CSS = """
    AppointmentsScreen #appointments-dialog { width: 96%; max-width: 110; height: 90%; border: thick $primary;
                                              background: $surface; padding: 0 1; }
    AppointmentsScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("a", "book", "Book"),
                Binding("e", "edit", "Edit"), Binding("s", "set_status", "Status"),
                Binding("y", "set_payment", "Payment"),
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
            yield Plain(f"Appointments · client {self.client_id[:8]}… · a book · e edit · s status · y payment"
                        " · esc",
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

    def on_data_table_row_selected(self) -> None:
        """enter on a row edits it, as on the practice screen's lists."""
        self.action_edit()

    # --- loading ----------------------------------------------------------------------

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="appointments-load")
    async def load(self) -> None:
        note = self.query_one("#appointments-note", Static)
        try:
            # phi false: this screen shows no clinical field, so none is opened or audited as read
            page = await fetch(self, "appointment.list", {"client_id": self.client_id, "phi": False})
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
                     money(a.get("price_cents")), self.name_of(self.services, a.get("service_id"), service_name),
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
        """A form's `send` for `cmd` that says `done` and reloads once the daemon accepts."""
        def finished(_values: dict, _answer: Any) -> None:
            self.notify(done)
            self.load()
        return daemon_sender(self, cmd, build, finished)

    def _form(self, title: str, explanation: str, fields: tuple[str, ...], initial: dict[str, Any],
              send, submit: str = "Save") -> None:
        self.app.push_screen(AppointmentForm(title, explanation, fields=fields, initial=initial,
                                             services=self.services, staff=self.staff, send=send, submit=submit))

    def action_book(self) -> None:
        if self.refused("book"):
            return
        self._form("Book an appointment", "Money in whole cents (12000 is 120.00); without a price the "
                   "service's applies.", ALL_FIELDS, {"duration_minutes": "50"},
                   self._sender("appointment.add", lambda v: booking(self.client_id, v), "Booked."), submit="Book")

    def _change(self, action: str, fields: tuple[str, ...], what: str) -> None:
        """The form for `fields` of the selected appointment, saving only what changed."""
        if self.refused(action):
            return
        appointment = self.selected()
        self._form(f"{what} of the appointment at {when(appointment['starts_at'])[:16]} UTC",
                   "Only what you change is saved; an emptied price, service or staff member is cleared.",
                   fields, {field: shown(appointment, field) for field in fields},
                   self._sender("appointment.set", lambda v: changes(appointment, v), f"{what} saved."))

    def action_edit(self) -> None:
        self._change("edit", ALL_FIELDS, "Changes")

    def action_set_status(self) -> None:
        self._change("set_status", ("status",), "Status")

    def action_set_payment(self) -> None:
        self._change("set_payment", ("payment_status",), "Payment status")
