"""Export job: every format parsed back and compared with the rows as the repository
reads them; masking against phi:read; filters; bad input refused with nothing left
behind; the manifest, the exports row and the audit entry."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pypdf
import pytest
import pyzipper
from sqlalchemy import insert, select, update

from strongroom.core import audit
from strongroom.core.config import ExportSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (Client, ClientStatus, Export, ExportConfiguration, PaymentStatus, 
                                       Practice, SessionStatus, TherapySession)
from strongroom.core.errors import (CancelledError, ConflictError, NotFoundError, PermissionDenied, RateLimitedError,
                                    ValidationError)
from strongroom.core.export import spec
from strongroom.core.jobs import export, kinds
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository import sessions as session_repo
from strongroom.core.repository.records import plain_value
from tests.core.jobs.conftest import ALICE, run_export

PASSWORD = "correct horse battery"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
CLIENT_FIELDS = ("id", "status", "intake_date", "created_at", "first_name", "last_name", "ssn", "email",
                 "phone", "address", "date_of_birth", "medical_history", "notes")
SESSION_FIELDS = ("id", "client_id", "starts_at", "duration_minutes", "price_cents", "notes")


def source_clients(ctx, ids) -> dict[str, dict]:
    """The clients as the repository shows them to someone with phi:read."""
    with transaction(ctx.engine) as conn:
        return {str(i): {k: plain_value(v) for k, v in repo.get_client(conn, ctx.keyring, SYSTEM, i).items()}
                for i in ids}


def source_sessions(ctx, client_ids) -> dict[str, dict]:
    out = {}
    with transaction(ctx.engine) as conn:
        for client_id in client_ids:
            for s in session_repo.list_sessions(conn, ctx.keyring, SYSTEM, client_id):
                out[str(s["id"])] = {k: plain_value(v) for k, v in s.items()}
    return out


def exports_dir(ctx) -> Path:
    return export.export_directory(ctx.settings)


def export_rows(ctx) -> list[dict]:
    with ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Export.__table__)).mappings()]


def as_text(value) -> str:
    return "" if value is None else str(value)


def read_back(fmt: str, data: bytes, fields) -> list[dict]:
    """Rows out of one exported file, as typed as the format allows."""
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        assert rows == [] or tuple(rows[0]) == tuple(fields)
        return rows
    if fmt == "ndjson":
        return [json.loads(line) for line in data.decode().splitlines()]
    if fmt == "json":
        return json.loads(data)
    if fmt == "xml":
        root = ET.fromstring(data)
        return [{child.tag: None if child.get(XSI_NIL) == "true" else (child.text or "") for child in row}
                for row in root.findall("row")]
    raise AssertionError(fmt)


def expected_cell(fmt: str, value):
    if fmt in ("ndjson", "json"):
        return value
    if fmt == "xml":
        return None if value is None else str(value)
    return as_text(value) if not as_text(value).startswith("=") else "'" + as_text(value)


# --- every format, parsed back --------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "xml"])
def test_every_data_format_parses_back_to_the_source_rows(ctx, world, fmt):
    result = run_export(ctx, tables=["clients", "therapy_sessions"], format=fmt, masking="full",
                        fields={"clients": list(CLIENT_FIELDS), "therapy_sessions": list(SESSION_FIELDS)},
                        filters={"practice_id": str(world["practice"])})
    clients = source_clients(ctx, [world["alice"], world["bob"]])
    sessions = source_sessions(ctx, [world["alice"], world["bob"]])
    location = Path(result["location"])
    assert result["rows"] == {"clients": 2, "therapy_sessions": 3} and result["row_count"] == 5
    for table, source, fields in (("clients", clients, CLIENT_FIELDS), ("therapy_sessions", sessions, SESSION_FIELDS)):
        rows = read_back(fmt, (location / f"{table}.{fmt}").read_bytes(), fields)
        assert sorted(r["id"] for r in rows) == sorted(source)
        for row in rows:
            assert list(row) == list(fields)
            assert row == {f: expected_cell(fmt, source[row["id"]][f]) for f in fields}, table


def test_csv_quotes_a_cell_a_spreadsheet_would_run_as_a_formula(ctx, world):
    result = run_export(ctx, tables="clients", fields={"clients": "id,notes,phone"}, format="csv", masking="full")
    rows = list(csv.DictReader(io.StringIO((Path(result["location"]) / "clients.csv").read_text(), newline="")))
    alice = next(r for r in rows if r["id"] == str(world["alice"]))
    assert alice["notes"] == "'" + ALICE["notes"] and alice["phone"] == ALICE["phone"]


def test_csv_with_bom_starts_each_file_with_the_utf8_mark_and_is_otherwise_the_same(ctx, world):
    request = {"tables": ["clients", "therapy_sessions"], "format": "csv", "masking": "full"}
    plain = Path(run_export(ctx, **request)["location"])
    marked = Path(run_export(ctx, **request, bom=True)["location"])
    for name in ("clients.csv", "therapy_sessions.csv"):
        data = (marked / name).read_bytes()
        assert data[:3] == b"\xef\xbb\xbf" and not (plain / name).read_bytes().startswith(b"\xef")
        assert data[3:] == (plain / name).read_bytes()
    manifest = json.loads((marked / "manifest.json").read_text())
    assert manifest["bom"] is True and "bom" not in json.loads((plain / "manifest.json").read_text())
    listed = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert listed["clients.csv"] == hashlib.sha256((marked / "clients.csv").read_bytes()).hexdigest()
    assert export_rows(ctx)[-1]["filters"]["bom"] is True


def test_csv_with_bom_inside_an_encrypted_zip(ctx, world):
    result = run_export(ctx, tables="clients", format="csv", encrypt=True, bom=True,
                        password_sealed=export.seal_password(ctx, PASSWORD))
    with pyzipper.AESZipFile(Path(result["location"]) / "export.zip") as zf:
        zf.setpassword(PASSWORD.encode())
        assert zf.read("clients.csv")[:3] == b"\xef\xbb\xbf"


@pytest.mark.parametrize("fmt", ["ndjson", "json", "xml", "pdf"])
def test_bom_is_refused_for_other_formats_and_nothing_is_written(ctx, world, fmt):
    with pytest.raises(ValidationError, match="bom applies to the csv format only"):
        run_export(ctx, tables="clients", format=fmt, bom=True)
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []


def _pdf_text(path: Path) -> tuple[list[str], str]:
    pages = [page.extract_text() for page in pypdf.PdfReader(path, strict=True).pages]
    return pages, "\n".join(pages)


def test_pdf_report_lists_every_record_and_field(ctx, world):
    result = run_export(ctx, tables=["clients", "therapy_sessions"], format="pdf", masking="full",
                        fields={"clients": list(CLIENT_FIELDS), "therapy_sessions": list(SESSION_FIELDS)},
                        filters={"practice_id": str(world["practice"])})
    _, text = _pdf_text(Path(result["location"]) / "report.pdf")
    words = set(text.split())
    clients = source_clients(ctx, [world["alice"], world["bob"]])
    sessions = source_sessions(ctx, [world["alice"], world["bob"]])
    for source, fields in ((clients, CLIENT_FIELDS), (sessions, SESSION_FIELDS)):
        for record in source.values():
            for field in fields:
                # every word of every value, whole: cells wrap between words, never inside one
                assert set(as_text(record[field]).split()) <= words, field
    assert "2 row(s) in clients" in text and "3 row(s) in therapy_sessions" in text


def test_pdf_header_names_the_practice_requester_masking_and_filters(ctx, world):
    with transaction(ctx.engine) as conn:
        repo.create_client(conn, ctx.keyring, SYSTEM, world["practice"], {"first_name": "Zéllér", "last_name": "東京"})
    result = run_export(ctx, tables="clients", fields={"clients": "id,first_name,last_name"}, format="pdf",
                        masking="full", filters={"practice_id": str(world["practice"]), "since": "2020-01-01"})
    pages, text = _pdf_text(Path(result["location"]) / "report.pdf")
    assert "Zéllér" in text and "東京" in text and "??" not in text
    first = pages[0]
    assert "Export Practice" in first and "user:mgr" in first
    assert "masking: full" in first and "since 2020-01-01" in first and str(world["practice"]) in first
    for number, page in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in page and "CONFIDENTIAL" in page


def test_pdf_of_many_rows_spans_pages_and_stays_valid(ctx, world):
    with transaction(ctx.engine) as conn:
        repo.insert_clients(conn, ctx.keyring, SYSTEM, world["practice"],
                            ({"first_name": f"N{i}", "last_name": "Many"} for i in range(200)))
    result = run_export(ctx, tables="clients", fields={"clients": "id,first_name"}, format="pdf", masking="full")
    pages, text = _pdf_text(Path(result["location"]) / "report.pdf")
    assert len(pages) >= 2 and f"page 1 of {len(pages)}" in pages[0]
    assert all(f"N{i}" in text.split() for i in range(200))


# The hand-written PDF 1.4 writer this replaced spread these 3,301 rows over 1,144 pages.
OLD_WRITER_PAGES = 1144


@pytest.mark.slow
def test_pdf_of_3301_clients_takes_a_fraction_of_the_old_pages_and_cuts_no_word(ctx, world):
    from strongroom.core.demo import client_records
    with transaction(ctx.engine) as conn:
        repo.insert_clients(conn, ctx.keyring, SYSTEM, world["practice"], client_records(3301 - 3))
    result = run_export(ctx, tables="clients", format="pdf", masking="full")
    assert result["row_count"] == 3301
    pages, text = _pdf_text(Path(result["location"]) / "report.pdf")
    assert len(pages) <= OLD_WRITER_PAGES // 4, len(pages)
    words = set(text.split())
    with transaction(ctx.engine) as conn:
        rows = repo.list_clients(conn, ctx.keyring, SYSTEM, limit=10_000)
    missing = {w for r in rows for f in ("first_name", "last_name", "address", "medical_history", "email")
               for w in as_text(plain_value(r.get(f))).split() if w not in words}
    assert not missing, sorted(missing)[:10]


def test_encrypted_zip_opens_with_its_password_only(ctx, world):
    sealed = export.seal_password(ctx, PASSWORD)
    result = run_export(ctx, tables=["clients", "client_files"], format="csv", masking="full", encrypt=True,
                        password_sealed=sealed, fields={"clients": ["id", "ssn"]})
    location = Path(result["location"])
    assert sorted(p.name for p in location.iterdir()) == ["export.zip", "manifest.json"]
    with pyzipper.AESZipFile(location / "export.zip") as zf:
        assert zf.getinfo("clients.csv").flag_bits & 0x1   # encrypted
        with pytest.raises(RuntimeError):
            zf.read("clients.csv", pwd=b"wrong password")
        zf.setpassword(PASSWORD.encode())
        rows = list(csv.DictReader(io.StringIO(zf.read("clients.csv").decode(), newline="")))
        files = list(csv.DictReader(io.StringIO(zf.read("client_files.csv").decode(), newline="")))
    assert {r["id"]: r["ssn"] for r in rows}[str(world["alice"])] == ALICE["ssn"]
    assert [f["file_name"] for f in files] == ["intake form.pdf"] and files[0]["sha256"] == "ab" * 32
    assert PASSWORD not in json.dumps(export_rows(ctx), default=str)


def _zip_date_time(created: str) -> tuple:
    """The export's creation time as a ZIP entry holds it: UTC, seconds rounded down to even."""
    moment = datetime.fromisoformat(created).astimezone(timezone.utc)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second - moment.second % 2)


def test_zip_entries_are_dated_with_the_exports_creation_time_in_utc(ctx, world):
    result = run_export(ctx, tables=["clients", "therapy_sessions"], format="csv", encrypt=True,
                        password_sealed=export.seal_password(ctx, PASSWORD))
    location = Path(result["location"])
    created = json.loads((location / "manifest.json").read_text())["created_at"]
    with pyzipper.AESZipFile(location / "export.zip") as zf:
        entries = zf.infolist()
        zf.setpassword(PASSWORD.encode())
        assert len(zf.read("clients.csv").splitlines()) == 4           # still opens: a header and 3 clients
    assert [e.filename for e in entries] == ["clients.csv", "therapy_sessions.csv"]
    assert {e.date_time for e in entries} == {_zip_date_time(created)} != {(1980, 1, 1, 0, 0, 0)}
    assert all(e.compress_type == pyzipper.ZIP_DEFLATED and e.flag_bits & 0x1 for e in entries)


@pytest.mark.skipif(shutil.which("7z") is None, reason="7z (p7zip-full) is not installed")
def test_encrypted_zip_passes_7zip_test(ctx, world, tmp_path):
    result = run_export(ctx, tables="clients", format="ndjson", encrypt=True,
                        password_sealed=export.seal_password(ctx, PASSWORD))
    archive = Path(result["location"]) / "export.zip"
    ok = subprocess.run(["7z", "t", f"-p{PASSWORD}", str(archive)], capture_output=True, text=True)
    assert ok.returncode == 0 and "Everything is Ok" in ok.stdout, ok.stdout + ok.stderr
    listed = subprocess.run(["7z", "l", "-slt", f"-p{PASSWORD}", str(archive)], capture_output=True, text=True)
    created = json.loads((archive.parent / "manifest.json").read_text())["created_at"]
    stamp = "{:04}-{:02}-{:02} {:02}:{:02}:{:02}".format(*_zip_date_time(created))
    assert f"Modified = {stamp}" in listed.stdout and "1980-01-01" not in listed.stdout, listed.stdout
    bad = subprocess.run(["7z", "t", "-pnot-the-password", str(archive)], capture_output=True, text=True)
    assert bad.returncode != 0


# --- masking ----------------------------------------------------------------------------

def test_masked_by_default_even_for_a_reader_with_phi_read(ctx, world):
    result = run_export(ctx, tables="clients", format="ndjson")
    rows = {r["id"]: r for r in read_back("ndjson", (Path(result["location"]) / "clients.ndjson").read_bytes(), ())}
    alice = rows[str(world["alice"])]
    assert alice["ssn"] == "***-**-3456" and alice["email"] == "al***@example.org"
    assert alice["phone"] == "***-***-0101" and alice["first_name"] == "A***"
    assert alice["medical_history"] == "[redacted]" and alice["date_of_birth"] == "[redacted]"
    assert rows[str(world["bob"])]["ssn"] is None
    assert result["masking_profile"] == "masked"


def test_full_profile_needs_phi_read_and_writes_nothing_without_it(ctx, world):
    with pytest.raises(PermissionDenied, match="phi:read"):
        run_export(ctx, actor="user:staff", tables="clients", format="csv", masking="full")
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []
    result = run_export(ctx, actor="user:staff", tables="clients", format="json")   # masked is allowed
    assert result["row_count"] == 3


def test_exporting_a_table_needs_its_read_permission(ctx, world):
    with pytest.raises(PermissionDenied, match="table:clients:read"):
        run_export(ctx, actor="user:ops", tables="clients", format="csv")
    with pytest.raises(PermissionDenied, match="table:client_files:read"):
        run_export(ctx, actor="user:staff", tables="client_files", format="csv")
    with pytest.raises(PermissionDenied):
        run_export(ctx, actor="user:nobody", tables="clients", format="csv")


# --- filters ----------------------------------------------------------------------------

def test_filters_by_date_client_and_practice(ctx, world):
    def ids(**filters):
        result = run_export(ctx, tables="therapy_sessions", fields={"therapy_sessions": "id"}, format="ndjson",
                            filters=filters)
        return {r["id"] for r in read_back("ndjson", (Path(result["location"]) / "therapy_sessions.ndjson")
                                           .read_bytes(), ())}
    by_client = {str(s): str(c) for s, c in world["sessions"].items()}
    assert ids(since="2025-03-06", until="2025-03-12") == {s for s, c in by_client.items()
                                                           if c in (str(world["bob"]), str(world["carol"]))}
    assert ids(client_id=str(world["alice"])) == {s for s, c in by_client.items() if c == str(world["alice"])}
    assert ids(practice_id=str(world["other"])) == {s for s, c in by_client.items() if c == str(world["carol"])}
    assert ids(since="2025-03-13T00:00:00+00:00") == {s for s, c in by_client.items()
                                                      if c == str(world["alice"])} - ids(until="2025-03-06")


def _ids(ctx, table, **params) -> set[str]:
    result = run_export(ctx, tables=table, fields={table: "id"}, format="ndjson", **params)
    return {r["id"] for r in read_back("ndjson", (Path(result["location"]) / f"{table}.ndjson").read_bytes(), ())}


def _set_zone(ctx, zone: str, *practices) -> None:
    table = Practice.__table__
    with transaction(ctx.engine) as conn:
        conn.execute(update(table).where(table.c.id.in_(practices)).values(timezone=zone))


def _manifest(ctx) -> dict:
    location = export_rows(ctx)[-1]["location"]
    return json.loads((Path(location) / "manifest.json").read_text())


def test_a_relative_range_is_read_in_the_practice_time_zone_and_recorded(ctx, world):
    _set_zone(ctx, "America/New_York", world["practice"], world["other"])
    # 02:00 UTC on 1 April is 31 March in New York: "this month" is all of March there.
    march = _ids(ctx, "therapy_sessions", filters={"range": "this_month"}, as_of="2025-04-01T02:00:00+00:00")
    assert march == {str(s) for s in world["sessions"]}
    manifest = _manifest(ctx)
    assert manifest["filters"] == {"range": "this_month", "time_zone": "America/New_York",
                                   "since": "2025-03-01T00:00:00-05:00", "until": "2025-03-31T23:59:59.999999-04:00"}
    assert export_rows(ctx)[-1]["filters"]["since"] == "2025-03-01T00:00:00-05:00"
    # 30 days to 4 April start on 6 March (05:00 UTC): the session of 5 March is out.
    recent = _ids(ctx, "therapy_sessions", filters={"range": "last_30_days"}, as_of="2025-04-04T12:00:00Z")
    sessions = TherapySession.__table__
    with ctx.engine.connect() as conn:
        later = {str(i) for i in conn.execute(select(sessions.c.id).where(
            sessions.c.starts_at >= datetime(2025, 3, 6, 5, tzinfo=timezone.utc))).scalars()}
    assert recent == later and len(recent) == 3
    assert _ids(ctx, "therapy_sessions", filters={"range": "last_quarter"}, as_of="2025-04-04T12:00:00Z") == march
    assert _ids(ctx, "therapy_sessions", filters={"range": "last_quarter"}, as_of="2025-07-01T12:00:00Z") == set()
    assert _ids(ctx, "therapy_sessions", filters={"range": "last_90_days"}, as_of="2025-06-02T12:00:00Z") == march
    assert _ids(ctx, "therapy_sessions", filters={"range": "last_90_days"}, as_of="2025-06-03T12:00:00Z") == later


def test_practices_in_different_zones_need_a_practice_for_a_range(ctx, world):
    _set_zone(ctx, "Pacific/Auckland", world["other"])
    with pytest.raises(ValidationError, match="different time zones; name one with practice_id"):
        run_export(ctx, tables="clients", format="csv", filters={"range": "this_month"})
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []
    # 20:00 UTC on 31 March is already 1 April in Auckland: this month there is April.
    assert _ids(ctx, "therapy_sessions", filters={"range": "this_month", "practice_id": str(world["other"])},
                as_of="2025-03-31T20:00:00Z") == set()
    assert _manifest(ctx)["filters"]["since"] == "2025-04-01T00:00:00+13:00"


def test_a_saved_configuration_keeps_its_range_and_resolves_it_at_each_run(ctx, world):
    export.save_configuration(ctx, "march", {"tables": "therapy_sessions", "format": "csv",
                                             "filters": {"range": "this_month"}}, SYSTEM)
    with transaction(ctx.engine) as conn:
        saved = conn.execute(select(ExportConfiguration.__table__.c.filters)).scalar_one()
    assert saved == {"range": "this_month"}
    assert run_export(ctx, configuration="march", as_of="2025-03-15T12:00:00Z")["row_count"] == 4
    assert run_export(ctx, configuration="march", as_of="2025-04-15T12:00:00Z")["row_count"] == 0


def test_status_filters_select_exactly_the_rows_with_those_statuses(ctx, world):
    clients, sessions = Client.__table__, TherapySession.__table__
    session_ids = sorted(world["sessions"], key=str)
    with transaction(ctx.engine) as conn:
        conn.execute(update(clients).where(clients.c.id == world["bob"]).values(status=ClientStatus.VIP))
        conn.execute(update(clients).where(clients.c.id == world["carol"]).values(status=ClientStatus.INACTIVE))
        conn.execute(update(sessions).where(sessions.c.id == session_ids[0]).values(
            status=SessionStatus.COMPLETED, payment_status=PaymentStatus.PAID))
        conn.execute(update(sessions).where(sessions.c.id == session_ids[1]).values(
            status=SessionStatus.COMPLETED, payment_status=PaymentStatus.REFUNDED))
        conn.execute(update(sessions).where(sessions.c.id == session_ids[2]).values(status=SessionStatus.CANCELLED))
    assert _ids(ctx, "clients", filters={"client_status": "VIP"}) == {str(world["bob"])}
    assert _ids(ctx, "clients", filters={"client_status": "active,inactive"}) == {str(world["alice"]),
                                                                                 str(world["carol"])}
    assert _ids(ctx, "therapy_sessions", filters={"session_status": "COMPLETED"}) == {str(s) for s in session_ids[:2]}
    assert _ids(ctx, "therapy_sessions", filters={"session_status": "COMPLETED", "payment_status": "PAID"}) == {
        str(session_ids[0])}
    assert _ids(ctx, "therapy_sessions", filters={"payment_status": "PENDING"}) == {str(s) for s in session_ids[2:]}
    assert _ids(ctx, "therapy_sessions", filters={"session_status": "SCHEDULED"}) == {str(session_ids[3])}
    assert _manifest(ctx)["filters"] == {"session_status": ["SCHEDULED"]}


@pytest.mark.parametrize("params, words", [
    ({"filters": {"range": "SECRET-fortnight"}}, "filter range is not one of"),
    ({"filters": {"range": "this_month", "since": "2025-01-01"}}, "range cannot be combined"),
    ({"filters": {"client_status": "SECRET-GOLD"}}, "filter client_status has 1 unknown value(s)"),
    ({"filters": {"payment_status": "PAID"}}, "payment_status applies to table therapy_sessions"),
    ({"filters": {"range": "this_month"}, "as_of": "SECRET-noon"}, "as_of is not an ISO datetime"),
])
def test_bad_range_or_status_is_refused_by_field_and_writes_nothing(ctx, world, params, words):
    with pytest.raises(ValidationError) as err:
        run_export(ctx, tables="clients", format="csv", **params)
    assert words in str(err.value) and "SECRET" not in str(err.value)
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []


def test_an_unknown_practice_time_zone_refuses_a_range_and_writes_nothing(ctx, world):
    _set_zone(ctx, "Mars/Olympus_Mons", world["practice"], world["other"])
    with pytest.raises(ValidationError, match="timezone is not a known IANA time zone"):
        run_export(ctx, tables="clients", format="csv", filters={"range": "last_30_days"})
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []


def test_export_params_take_ranges_and_statuses_and_refuse_unknown_filters():
    checked = kinds.check_params("export", {"tables": "clients", "format": "csv", "filters": {
        "range": "last_90_days", "client_status": ["VIP"]}, "as_of": "2025-04-04T12:00:00Z"})
    assert checked["filters"] == {"range": "last_90_days", "client_status": ["VIP"]}
    assert checked["as_of"].startswith("2025-04-04T12:00:00")
    with pytest.raises(ValidationError, match="filters"):
        kinds.check_params("export", {"tables": "clients", "format": "csv", "filters": {"status": "VIP"}})


def test_deleted_clients_are_not_exported(ctx, world):
    with transaction(ctx.engine) as conn:
        repo.delete_client(conn, SYSTEM, world["bob"])
    result = run_export(ctx, tables="clients", fields={"clients": "id"}, format="csv")
    assert result["rows"] == {"clients": 2}


# --- bad input: a clear error, nothing written -------------------------------------------

@pytest.mark.parametrize("params, words", [
    ({"tables": ["patients"], "format": "csv"}, "1 table name(s) not exportable"),
    ({"tables": [], "format": "csv"}, "at least one table"),
    ({"tables": ["clients"], "fields": {"clients": ["ssn_enc"]}, "format": "csv"}, "1 field name(s) not in table clients"),
    ({"tables": ["clients"], "fields": {"therapy_sessions": ["id"]}, "format": "csv"}, "not exported"),
    ({"tables": ["clients"], "format": "csv", "filters": {"since": "last week"}}, "filter since is not an ISO date"),
    ({"tables": ["clients"], "format": "csv", "filters": {"since": "2025-02-30"}}, "filter since"),
    ({"tables": ["clients"], "format": "csv", "filters": {"since": "2025-05-01", "until": "2025-04-01"}}, "after until"),
    ({"tables": ["clients"], "format": "csv", "filters": {"client_id": "alice"}}, "client_id is not a UUID"),
    ({"tables": ["clients"], "format": "csv", "filters": {"status": "x"}}, "1 unknown filter(s)"),
    ({"tables": ["clients"], "format": "docx"}, "unknown format (known"),
    ({"tables": ["clients"]}, "unknown format"),
    ({"tables": ["clients"], "format": "csv", "masking": "partial"}, "unknown masking profile"),
    ({"tables": ["clients"], "format": "csv", "encrypt": True}, "needs a password"),
    ({"tables": ["clients"], "format": "csv", "encrypt": True, "password_sealed": "bm90IHNlYWxlZA=="}, "does not open"),
])
def test_bad_input_names_the_problem_and_writes_nothing(ctx, world, params, words):
    with pytest.raises(ValidationError) as err:
        run_export(ctx, **params)
    assert words in str(err.value)
    assert not exports_dir(ctx).exists() and export_rows(ctx) == []


def test_a_short_zip_password_is_refused_before_it_is_sealed(ctx):
    with pytest.raises(ValidationError, match="at least 8"):
        export.seal_password(ctx, "short")


def test_an_unwritable_directory_is_refused_by_name(ctx, world, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(directory=blocker / "exports")})
    with pytest.raises(ValidationError, match=f"directory {blocker / 'exports'} is not writable"):
        run_export(ctx, tables="clients", format="csv")
    assert export_rows(ctx) == []


def test_unknown_configuration_is_not_found(ctx, world):
    with pytest.raises(NotFoundError, match="export configuration: none active by that name"):
        run_export(ctx, configuration="monthly")


# --- a run that fails half-way --------------------------------------------------------------

def test_a_cancelled_export_leaves_no_file_and_a_failed_record(ctx, world):
    def cancel(done, total, message):
        if done:
            raise CancelledError("cancelled at a safe point")
    with pytest.raises(CancelledError):
        run_export(ctx, progress=cancel, tables=["clients", "therapy_sessions"], format="pdf")
    assert list(exports_dir(ctx).iterdir()) == []
    (row,) = export_rows(ctx)
    assert row["status"] == "failed" and "cancelled" in row["error"] and row["finished_at"] and row["location"] is None
    with ctx.engine.connect() as conn:
        entry = audit.tail(conn, limit=1)[0]
    assert (entry.action, entry.outcome) == ("EXPORT", "failure")


# --- manifest, record, audit ----------------------------------------------------------------

def test_manifest_record_and_audit_agree_and_carry_no_phi(ctx, world):
    result = run_export(ctx, tables=["clients", "therapy_sessions"], format="csv", masking="full",
                        filters={"since": "2000-01-01"})
    location = Path(result["location"])
    assert oct(location.stat().st_mode & 0o777) == "0o700"
    manifest_bytes = (location / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    assert hashlib.sha256(manifest_bytes).hexdigest() == result["sha256"]
    assert manifest["tables"]["clients"]["rows"] == 3 and manifest["row_count"] == 7
    assert manifest["masking_profile"] == "full" and manifest["requested_by"] == "user:mgr"
    assert manifest["filters"] == {"since": "2000-01-01T00:00:00+00:00"} and manifest["format"] == "csv"
    for entry in manifest["files"]:
        path = location / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert {f["name"] for f in manifest["files"]} == {"clients.csv", "therapy_sessions.csv"}
    assert not [p for p in exports_dir(ctx).iterdir() if p.name.startswith(".")]
    (row,) = export_rows(ctx)
    assert (row["status"], row["row_count"], row["sha256"], row["location"]) == (
        "succeeded", 7, result["sha256"], str(location))
    assert row["requested_by"] == "user:mgr" and row["format"] == "csv" and row["finished_at"]
    with ctx.engine.connect() as conn:
        entry = audit.tail(conn, limit=1)[0]
    assert (entry.action, entry.actor, entry.record_id) == ("EXPORT", "user:mgr", result["export_id"])
    details = json.dumps(entry.details)
    assert entry.details["row_count"] == 7 and entry.details["rows"] == {"clients": 3, "therapy_sessions": 4}
    for value in list(ALICE.values()) + ["Talked about work."]:
        assert value not in details and value not in manifest_bytes.decode()
        assert value not in json.dumps(row, default=str)


def test_a_saved_configuration_runs_by_name(ctx, world):
    with transaction(ctx.engine) as conn:
        conn.execute(insert(ExportConfiguration.__table__), [{
            "id": uuid.uuid4(), "name": "alice-sessions", "format": "json", "masking_profile": "masked",
            "encryption_enabled": False, "fields": ["therapy_sessions.id", "therapy_sessions.notes", "clients"],
            "filters": {"client_id": str(world["alice"])}}])
    result = run_export(ctx, configuration="alice-sessions", tables="ignored", format="pdf")
    assert result["format"] == "json" and result["rows"] == {"therapy_sessions": 2, "clients": 1}
    sessions = json.loads((Path(result["location"]) / "therapy_sessions.json").read_text())
    assert {tuple(s) for s in sessions} == {("id", "notes")}
    assert {s["notes"] for s in sessions} == {"[redacted]", None}
    (row,) = export_rows(ctx)
    assert row["configuration_id"] is not None and row["filters"]["configuration"] == "alice-sessions"


def test_rate_limit_counts_an_actors_exports_in_the_last_hour(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(max_per_hour=2)})
    for _ in range(2):
        run_export(ctx, tables="clients", format="csv")
    with pytest.raises(RateLimitedError, match="limit 2"):
        run_export(ctx, tables="clients", format="csv")
    assert run_export(ctx, actor="user:staff", tables="clients", format="csv")["row_count"] == 3


def test_rows_stream_in_batches_with_progress(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(batch_size=10)})
    with transaction(ctx.engine) as conn:
        repo.insert_clients(conn, ctx.keyring, SYSTEM, world["practice"],
                            ({"first_name": f"N{i}", "last_name": "Many"} for i in range(45)))
    seen = []
    result = run_export(ctx, progress=lambda d, t, m: seen.append((d, t)), tables="clients", format="ndjson")
    assert result["row_count"] == 48
    assert seen[0] == (0, 48) and seen[-1] == (48, 48) and len(seen) == 1 + 5


def test_catalogue_offers_only_real_columns_and_logical_phi_fields():
    from strongroom.core.repository.records import MODELS
    for item in spec.catalogue():
        columns = {c.name for c in MODELS[item["table"]].__table__.columns}
        plain = [f for f in item["fields"] if f not in item["phi"]]
        assert set(plain) <= columns
        assert not [f for f in item["fields"] if f.endswith(("_enc", "_bidx")) or f in ("key_id", "data_checksum")]
    assert "ssn" in next(i for i in spec.catalogue() if i["table"] == "clients")["phi"]


def test_a_configuration_saved_with_checks_runs_by_name_and_names_are_unique(ctx, world):
    mgr = export.principal_of(ctx, "user:mgr")
    saved = export.save_configuration(ctx, "monthly-sessions", {
        "tables": ["therapy_sessions"], "fields": {"therapy_sessions": ["id", "starts_at"]}, "format": "xml",
        "filters": {"since": "2025-03-10"}}, mgr)
    assert saved["fields"] == ["therapy_sessions.id", "therapy_sessions.starts_at"]
    result = run_export(ctx, configuration="monthly-sessions")
    assert result["format"] == "xml" and result["rows"] == {"therapy_sessions": 2}
    with pytest.raises(ConflictError, match="already exists"):
        export.save_configuration(ctx, "monthly-sessions", {"tables": "clients", "format": "csv"}, mgr)
    with pytest.raises(ValidationError, match="configuration name"):
        export.save_configuration(ctx, "Monthly Sessions!", {"tables": "clients", "format": "csv"}, mgr)
    with pytest.raises(PermissionDenied, match="phi:read"):
        export.save_configuration(ctx, "full", {"tables": "clients", "format": "csv", "masking": "full"},
                                  export.principal_of(ctx, "user:staff"))
    with pytest.raises(ValidationError, match=r"field name\(s\) not in table"):
        export.save_configuration(ctx, "bad", {"tables": "clients", "fields": {"clients": "x"}, "format": "csv"}, mgr)
    with ctx.engine.connect() as conn:
        entry = next(e for e in audit.tail(conn, limit=5) if e.action == "CONFIG")
    assert entry.details["name"] == "monthly-sessions" and entry.actor == "user:mgr"


def test_memory_follows_the_batch_not_the_table(ctx, world):
    """Ten times the rows, about the same peak: rows are read, written and dropped a batch
    at a time (one client's sessions, so the key cache does not grow either)."""
    import tracemalloc

    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(batch_size=50, max_per_hour=100)})
    note = "n" * 400

    def add_sessions(n):
        with transaction(ctx.engine) as conn:
            session_repo.insert_sessions(conn, ctx.keyring, SYSTEM, ({
                "client_id": world["bob"], "starts_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "notes": note}
                for _ in range(n)))

    def peak() -> tuple[int, int]:
        tracemalloc.start()
        try:
            result = run_export(ctx, tables="therapy_sessions", format="ndjson", masking="full",
                                filters={"client_id": str(world["bob"])})
            return result["row_count"], tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    add_sessions(199)
    small_rows, small = peak()
    add_sessions(1800)
    large_rows, large = peak()
    assert (small_rows, large_rows) == (200, 2000)
    assert large < small * 1.5, (small, large)
