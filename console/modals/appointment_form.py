"""The appointment form: book one, or change one's start, duration, status, payment
status, service, staff member, price and whether the reminder went out.

Status and payment status are picked from the protocol's values
(core.protocol.models.appointments, the same the daemon checks against), and the service
and staff member from the lists the appointments screen loaded (service.list,
staff.list), so nothing is typed there that the daemon could only refuse. Times and
numbers are typed and passed on as typed: the daemon checks them, and a refusal is shown
in its words under the fields with everything kept and nothing changed
(form.send_then_close); when it names a field (`duration_minutes: ...`), the reason is
also shown on that field's own line, right under it, and the field is marked and focused
(form.mark_fields, as in FormScreen). The clinical fields (notes, SOAP summary, billing codes,
insurance info) are PHI and are never shown or asked for here.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from strongroom.console.modals.form import mark_fields, refusal_shower, send_then_close
from strongroom.console.widgets.plain import Plain, PlainLabel
from strongroom.console.widgets.toggles import Check
from strongroom.core.protocol.models.appointments import APPOINTMENT_STATUSES, PAYMENT_STATUSES
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Select, Static

# Every field the form knows, in the order shown, with its label.
LABELS = {"starts_at": "Starts (ISO 8601)", "duration_minutes": "Minutes", "status": "Status",
          "payment_status": "Payment", "service_id": "Service", "staff_id": "Staff member",
          "price_cents": "Price in cents", "reminder_sent": "Reminder"}
ALL_FIELDS = tuple(LABELS)
PLACEHOLDERS = {"starts_at": "2031-03-04T10:00+01:00", "duration_minutes": "5 to 600",
                "price_cents": "e.g. 12000; empty: none, or the service's"}
CHOICES = {"status": APPOINTMENT_STATUSES, "payment_status": PAYMENT_STATUSES}
NONE = "none"     # how an empty service or staff member is offered


def staff_name(member: dict) -> str:
    return f"{member['first_name']} {member['last_name']}"


def service_name(service: dict) -> str:
    return str(service["name"])


def options(records: dict[str, dict], name: Callable[[dict], str], current: str | None) -> list[tuple[Text, str]]:
    """What a service or staff picker offers: the active records by name, plus the one the
    appointment has now even if retired (or not readable: its id), so opening the form
    never changes it. Names are Text, drawn as they are, never read as markup."""
    chosen = [(name(r), key) for key, r in records.items() if r.get("active", True)]
    if current and not any(key == current for _, key in chosen):
        record = records.get(current)
        chosen.append((f"{name(record)} (retired)" if record else f"{current[:8]}…", current))
    return [(Text(label), key) for label, key in sorted(chosen, key=lambda c: c[0].casefold())]


def shown(appointment: dict, field: str) -> Any:
    """An appointment's value as the form holds it: text for typed fields ('' for none),
    the id or None for a picker, the value for a status, a bool for the reminder."""
    value = appointment.get(field)
    if field in ("service_id", "staff_id"):
        return str(value) if value else None
    if field == "reminder_sent":
        return bool(value)
    if field in CHOICES:
        return value
    return "" if value is None else str(value)


class AppointmentForm(ModalScreen[dict | None]):
    """`fields`: which of ALL_FIELDS to show; `initial`: their starting values (as
    `shown` gives them); `send`: takes the form's values and returns None (the form
    closes) or a refusal to show under the fields (form.daemon_sender)."""

    DEFAULT_CSS = """
    AppointmentForm .appointment-row { height: 1; }
    AppointmentForm .appointment-row PlainLabel { width: 18; }
    /* Each field's error line takes the blank line under its row, indented under the
       field, so a refusal changes no layout. */
    AppointmentForm .field-error { height: 1; padding-left: 18; }
    AppointmentForm .-refused { background: $error 30%; }
    AppointmentForm .appointment-row Input, AppointmentForm .appointment-row Select { width: 1fr; }
    AppointmentForm .dialog { max-height: 24; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel"), Binding("ctrl+s", "submit", "Submit")]

    def __init__(self, title: str, explanation: str, *, fields: tuple[str, ...], initial: dict[str, Any],
                 services: dict[str, dict], staff: dict[str, dict],
                 send: Callable[[dict], Awaitable[str | None]], submit: str = "Save") -> None:
        super().__init__()
        self.title_text = title
        self.explanation = explanation
        self.fields = fields
        self.initial = initial
        self.services = services
        self.staff = staff
        self.send = send
        self.submit = submit

    def widget_for(self, field: str) -> Widget:
        value = self.initial.get(field)
        if field in CHOICES:
            allowed = CHOICES[field]
            return Select([(Text(v), v) for v in allowed], value=value if value in allowed else allowed[0],
                          allow_blank=False, compact=True, id=field)
        if field in ("service_id", "staff_id"):
            records, name = (self.services, service_name) if field == "service_id" else (self.staff, staff_name)
            return Select(options(records, name, value), value=value or Select.NULL, allow_blank=True,
                          prompt=NONE, compact=True, id=field)
        if field == "reminder_sent":
            return Check("sent", value=bool(value), compact=True, id=field)
        return Input(value=str(value or ""), placeholder=PLACEHOLDERS.get(field, ""), compact=True, id=field)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Plain(self.title_text, classes="dialog-title")
            yield Plain(self.explanation, id="form-explanation")
            for field in self.fields:
                with Horizontal(classes="appointment-row"):
                    yield PlainLabel(LABELS[field])
                    yield self.widget_for(field)
                yield Plain("", id=f"{field}-error", classes="error field-error")
            yield Plain("", id="form-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.submit} (ctrl+s)", variant="primary", id="submit")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(f"#{self.fields[0]}").focus()

    def values(self) -> dict[str, Any]:
        """What the form holds now, in `shown`'s terms."""
        out: dict[str, Any] = {}
        for field in self.fields:
            widget = self.query_one(f"#{field}")
            if isinstance(widget, Select):
                out[field] = None if widget.is_blank() else widget.value
            elif isinstance(widget, Check):
                out[field] = widget.value
            else:
                out[field] = widget.value.strip()
        return out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "submit":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        mark_fields(self, list(self.fields), {})
        self._send(self.values())

    @work(exclusive=True, group="form-send")
    async def _send(self, values: dict) -> None:
        note = self.query_one("#form-error", Static)
        note.update("Sending…")
        await send_then_close(self, self.send, values, refusal_shower(self, note, list(self.fields)))
