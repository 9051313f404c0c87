"""`strongroom appointments` against a real daemon (both engines): book a client's
appointment for a service with a staff member, list and show it, change its status and
payment, notes read from a file (never argv) and masked for the front desk; the clinical
fields (session number, consent verified, and the PHI ones, SOAP summary, billing codes
and insurance info, from files or standard input only) set, shown and cleared; bad
input a clear error naming the field (never the value), non-zero exit, nothing changed."""
import contextlib
import io
import json

import pytest

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from tests.conftest import per_engine_per_module
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import PASSWORD, data_transaction, make_data_dir, running_daemon

NOTE = "zq-spoke about sleeping badly"
# Synthetic clinical text, nobody's data.
SOAP = "zq-S: sleeps 4h. O: calm. A: improving. P: continue"
CODES = "zq-90834, F51.01"
INSURANCE = "zq-Acme Mutual, member 0000-TEST"


@contextlib.contextmanager
def _appointment_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    with data_transaction(data_dir) as (ctx, conn):
        clients: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), demo.client_records(1), created=clients)
        create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "desk", PASSWORD, Role.STAFF, actor="test")
    with running_daemon(data_dir, tmp_path) as proc:
        proc.client_id = str(clients[0])
        proc.xdg = tmp_path / "xdg"
        yield proc


@pytest.fixture
def appointment_daemon(tmp_path, db_url, monkeypatch):
    """A daemon over one client (`.client_id`) and a front-desk account `desk`."""
    with _appointment_daemon(tmp_path, db_url) as proc:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(proc.xdg))
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        yield proc


_one_appointment_daemon = per_engine_per_module("_one_appointment_daemon", _appointment_daemon,
                                                "`appointment_daemon`, one per engine.")


@pytest.fixture
def shared_appointment_daemon(_one_appointment_daemon, monkeypatch):
    """`appointment_daemon` shared by the refusals of one engine (per module and worker):
    each books its own appointment and checks that the refusal changed nothing."""
    proc = _one_appointment_daemon
    monkeypatch.setenv("XDG_CONFIG_HOME", str(proc.xdg))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
    return proc


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def _json(capsys, d, *args) -> dict:
    code, out, err = cli(capsys, d, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_appointments_from_the_command_line(appointment_daemon, capsys, tmp_path):
    d = appointment_daemon
    service = _json(capsys, d, "services", "add", "--name", "Intake", "--category", "assessment",
                    "--duration-minutes", "60", "--price-cents", "15000")
    staff = _json(capsys, d, "staff", "add", "--first-name", "Ola", "--last-name", "Penn", "--role", "PRACTITIONER")
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTE)
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00+01:00",
                   "--duration", "60", "--service", service["id"], "--staff", staff["id"], "--type", "intake",
                   "--status", "confirmed", "--notes-file", notes)
    assert (booked["status"], booked["payment_status"], booked["price_cents"]) == ("CONFIRMED", "PENDING", 15000)
    assert booked["service_id"] == service["id"] and booked["staff_id"] == staff["id"]
    assert booked["starts_at"].startswith("2031-03-04T09:00")         # stored in UTC
    assert NOTE not in json.dumps(booked)                             # answered masked

    changed = _json(capsys, d, "appointments", "set", booked["id"], "--status", "COMPLETED",
                    "--payment-status", "paid", "--price", "12000", "--reminder-sent", "--clear", "staff-id")
    assert (changed["status"], changed["payment_status"], changed["price_cents"]) == ("COMPLETED", "PAID", 12000)
    assert changed["reminder_sent"] is True and changed["staff_id"] is None

    code, out, err = cli(capsys, d, "appointments", "list", d.client_id)
    assert code == 0, err
    assert booked["id"] in out and "COMPLETED" in out and "PAID" in out and "12000" in out
    (listed,) = _json(capsys, d, "appointments", "list", d.client_id, "--limit", "5")["items"]
    # set answers the notes masked; the local operator has phi:read, so list and show open them
    assert changed["notes"] != NOTE and listed == {**changed, "notes": NOTE}
    code, out, err = cli(capsys, d, "appointments", "show", booked["id"])
    assert code == 0 and f"notes: {NOTE}" in out, err


def test_the_front_desk_sees_notes_masked(appointment_daemon, capsys, tmp_path):
    d = appointment_daemon
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTE)
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                   "--notes-file", notes)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    code, _, err = cli(capsys, d, "login", "-u", "desk", "--password-file", password_file)
    assert code == 0, err
    shown = _json(capsys, d, "appointments", "show", booked["id"])
    assert shown["notes"] and NOTE not in json.dumps(shown)


@pytest.mark.parametrize("args, field, value", [
    (("add", "CLIENT", "--starts", "2031-03-04T10:00:00Z", "--status", "zqlater"), "status", "ZQLATER"),
    (("add", "CLIENT", "--starts", "zq-tuesday"), "starts_at", "zq-tuesday"),
    (("add", "CLIENT", "--starts", "2031-03-04T10:00:00Z", "--price", "-5"), "price_cents", "-5"),
    (("add", "CLIENT", "--starts", "2031-03-04T10:00:00Z", "--duration", "zq50"), "duration_minutes", "zq50"),
    (("add", "CLIENT", "--starts", "2031-03-04T10:00:00Z", "--service", "zq-nope"), "service_id", "zq-nope"),
    (("add", "zq-client", "--starts", "2031-03-04T10:00:00Z"), "client_id", "zq-client"),
    (("set", "BOOKED", "--payment-status", "zqowed"), "payment_status", "ZQOWED"),
    (("set", "BOOKED", "--price", "zq12.50"), "price_cents", "zq12.50"),
    (("list", "CLIENT", "--limit", "zq9"), "limit", "zq9"),
])
def test_bad_input_is_refused_by_field_and_changes_nothing(shared_appointment_daemon, capsys, args, field, value):
    d = shared_appointment_daemon
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z")
    args = [{"CLIENT": d.client_id, "BOOKED": booked["id"]}.get(a, a) for a in args]
    before = cli(capsys, d, "appointments", "list", d.client_id, "--json")[1]
    code, out, err = cli(capsys, d, "appointments", *args)
    assert code != 0 and field in err and value not in err + out and value.lower() not in err + out, err
    assert "internal" not in err
    assert cli(capsys, d, "appointments", "list", d.client_id, "--json")[1] == before


def test_set_without_a_field_is_a_usage_error(shared_appointment_daemon, capsys):
    d = shared_appointment_daemon
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z")
    code, _, err = cli(capsys, d, "appointments", "set", booked["id"])
    assert code == 2 and "at least one field" in err


def _stdin(monkeypatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode()), encoding="utf-8"))


def test_the_clinical_fields_are_set_shown_and_cleared(appointment_daemon, capsys, tmp_path, monkeypatch):
    d = appointment_daemon
    (tmp_path / "soap.txt").write_text(SOAP)
    (tmp_path / "codes.txt").write_text(CODES)
    _stdin(monkeypatch, INSURANCE)
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                   "--session-number", "3", "--consent-verified", "--soap-summary-file", tmp_path / "soap.txt",
                   "--billing-codes-file", tmp_path / "codes.txt", "--insurance-info-file", "-")
    assert (booked["session_number"], booked["consent_verified"]) == (3, True)
    answered = json.dumps(booked)
    assert all(value not in answered for value in (SOAP, CODES, INSURANCE))      # answered masked
    assert all(booked[f] for f in ("soap_summary", "billing_codes", "insurance_info"))

    # The local operator has phi:read: show opens them (audited) in both forms.
    shown = _json(capsys, d, "appointments", "show", booked["id"])
    assert (shown["soap_summary"], shown["billing_codes"], shown["insurance_info"]) == (SOAP, CODES, INSURANCE)
    code, out, err = cli(capsys, d, "appointments", "show", booked["id"])
    assert code == 0, err
    assert f"soap summary: {SOAP}" in out and f"billing codes: {CODES}" in out
    assert f"insurance info: {INSURANCE}" in out and "session number 3; consent verified" in out

    (tmp_path / "soap2.txt").write_text(SOAP + " (revised)")
    changed = _json(capsys, d, "appointments", "set", booked["id"], "--no-consent-verified",
                    "--session-number", "4", "--soap-summary-file", tmp_path / "soap2.txt",
                    "--clear", "billing-codes", "--clear", "insurance-info")
    assert (changed["session_number"], changed["consent_verified"]) == (4, False)
    assert changed["billing_codes"] is None and changed["insurance_info"] is None
    shown = _json(capsys, d, "appointments", "show", booked["id"])
    assert shown["soap_summary"] == SOAP + " (revised)" and shown["notes"] is None

    cleared = _json(capsys, d, "appointments", "set", booked["id"], "--clear", "session-number",
                    "--clear", "soap-summary")
    assert cleared["session_number"] is None and cleared["soap_summary"] is None
    code, out, err = cli(capsys, d, "appointments", "show", booked["id"])
    assert code == 0 and "session number -; consent not verified" in out and "soap summary" not in out, err


def test_the_front_desk_sees_the_clinical_fields_masked(appointment_daemon, capsys, tmp_path, monkeypatch):
    d = appointment_daemon
    _stdin(monkeypatch, SOAP)
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                   "--soap-summary-file", "-", "--session-number", "2")
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    code, _, err = cli(capsys, d, "login", "-u", "desk", "--password-file", password_file)
    assert code == 0, err
    code, out, err = cli(capsys, d, "appointments", "show", booked["id"])
    assert code == 0, err
    assert "soap summary: [redacted]" in out and SOAP not in out and "session number 2" in out
    assert "billing codes" not in out          # empty stays empty: that it is empty is not PHI


def test_the_phi_fields_are_never_taken_from_the_command_line(appointment_daemon, capsys):
    d = appointment_daemon
    for option in ("--soap-summary", "--billing-codes", "--billing-code", "--insurance-info", "--notes"):
        code, out, err = cli(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                             option, "zq-secret")
        assert code == 2 and "zq-secret" not in out + err, (option, err)
    assert _json(capsys, d, "appointments", "list", d.client_id)["items"] == []


@pytest.mark.parametrize("args, field", [
    (("--session-number", "0"), "session_number"),
    (("--session-number", "zq3"), "session_number"),
    (("--billing-codes-file", "BIG"), "billing_codes"),
    (("--insurance-info-file", "BIG"), "insurance_info"),
])
def test_bad_clinical_values_are_refused_by_field_and_change_nothing(shared_appointment_daemon, capsys, tmp_path,
                                                                      args, field):
    d = shared_appointment_daemon
    big = tmp_path / "big.txt"
    big.write_text("zq-" + "x" * 6000)                     # over the daemon's limit for both
    booked = _json(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z")
    before = cli(capsys, d, "appointments", "list", d.client_id, "--json")[1]
    for command in (("add", d.client_id, "--starts", "2031-03-04T10:00:00Z"), ("set", booked["id"])):
        code, out, err = cli(capsys, d, "appointments", *command, *[big if a == "BIG" else a for a in args])
        assert code != 0 and field in err and "internal" not in err, err
        assert "zq3" not in err + out and "zq-x" not in err + out
    assert cli(capsys, d, "appointments", "list", d.client_id, "--json")[1] == before


def test_a_phi_file_that_cannot_be_read_or_a_second_stdin_is_refused_without_its_path(
        appointment_daemon, capsys, tmp_path, monkeypatch):
    d = appointment_daemon
    missing = tmp_path / "zq-Quillfeather-intake.txt"          # a path may itself name the client
    code, out, err = cli(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                         "--soap-summary-file", missing)
    assert code == 2 and "--soap-summary-file" in err and "Quillfeather" not in out + err, err
    _stdin(monkeypatch, SOAP)
    code, out, err = cli(capsys, d, "appointments", "add", d.client_id, "--starts", "2031-03-04T10:00:00Z",
                         "--soap-summary-file", "-", "--insurance-info-file", "-")
    assert code == 2 and "standard input" in err and SOAP not in out + err, err
    assert _json(capsys, d, "appointments", "list", d.client_id)["items"] == []


def test_the_values_the_cli_offers_are_the_protocols():
    """The CLI spells the statuses and clearable fields out (importing the protocol would
    load pydantic for `--help`); they must be the protocol's, in its order."""
    from strongroom.console.cli import appointments
    from strongroom.core.protocol.models import appointments as protocol

    assert appointments.APPOINTMENT_STATUSES == protocol.APPOINTMENT_STATUSES
    assert appointments.PAYMENT_STATUSES == protocol.PAYMENT_STATUSES
    assert appointments.CLEARABLE == protocol.CLEARABLE
