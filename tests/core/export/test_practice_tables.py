"""Exports of the practice's staff and service catalogue (issue 20): every format, the
same rules as the clinical tables (permission per table, since/until on when the row was
recorded), lists and maps as compact JSON text in every format (one schema describes
them), and a client_id filter refused for tables that hold no client's data rather than
silently exporting all of them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.errors import PermissionDenied, ValidationError
from strongroom.core.export import spec
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.practices import create_practice
from tests.core.export.conftest import needs_xmllint, xmllint

HOURS = {"tue": ["13:00-17:00"], "mon": ["09:00-17:00"]}


@pytest.fixture
def practice_people(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Catalogue Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Noor", "last_name": "Haddad", "role": "PRACTITIONER",
            "specializations": ["CBT", "EMDR"], "working_hours": HOURS, "hourly_rate_cents": 12000})
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Intake, extended", "category": "assessment", "duration_minutes": 90, "price_cents": 18000})
    return {"staff": str(staff), "service": str(service)}


def run(ctx, tables, fmt, **extra) -> Path:
    result = export.run(ctx, {"actor": "user:mgr", "tables": tables, "format": fmt, "masking": "masked",
                              **extra}, lambda *a: None)
    return Path(result["location"])


def test_staff_and_services_are_in_the_catalogue_without_bookkeeping_columns():
    tables = {item["table"]: item for item in spec.catalogue()}
    assert {"staff", "services"} <= set(tables)
    assert tables["staff"]["phi"] == [] and tables["services"]["phi"] == []
    assert {"first_name", "specializations", "working_hours", "hourly_rate_cents", "active"} <= set(
        tables["staff"]["fields"])
    assert {"name", "category", "duration_minutes", "price_cents"} <= set(tables["services"]["fields"])
    for item in (tables["staff"], tables["services"]):
        assert not {"sync_version", "data_checksum", "deleted_at"} & set(item["fields"])
        assert item["date_field"] == "created_at"


def test_ndjson_carries_the_rows_with_lists_and_maps_as_json_text(ctx, practice_people):
    location = run(ctx, ["staff", "services"], "ndjson")
    (staff_file,) = location.glob("staff*.ndjson")
    (row,) = [json.loads(line) for line in staff_file.read_text(encoding="utf-8").splitlines() if line]
    assert row["id"] == practice_people["staff"] and row["first_name"] == "Noor"
    assert row["role"] == "PRACTITIONER" and row["hourly_rate_cents"] == 12000 and row["active"] is True
    assert json.loads(row["specializations"]) == ["CBT", "EMDR"]
    assert json.loads(row["working_hours"]) == HOURS
    (services_file,) = location.glob("services*.ndjson")
    (service,) = [json.loads(line) for line in services_file.read_text(encoding="utf-8").splitlines() if line]
    assert service["name"] == "Intake, extended" and service["price_cents"] == 18000


def test_csv_quotes_the_json_text_so_a_spreadsheet_reads_it_back(ctx, practice_people):
    location = run(ctx, ["staff"], "csv")
    (path,) = location.glob("staff*.csv")
    with path.open(encoding="utf-8", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert json.loads(row["working_hours"]) == HOURS and row["active"] == "true"


@needs_xmllint
def test_the_xml_of_both_validates_against_the_published_schema(ctx, practice_people):
    location = run(ctx, ["staff", "services"], "xml")
    for table in ("staff", "services"):
        checked = xmllint(location / f"{table}.xml")
        assert checked.returncode == 0, checked.stderr


def test_a_client_id_filter_is_refused_for_tables_that_hold_no_clients_data(ctx, practice_people):
    with pytest.raises(ValidationError, match="client_id .* staff") as refused:
        run(ctx, ["clients", "staff"], "csv", filters={"client_id": practice_people["service"]})
    assert practice_people["service"] not in str(refused.value)
    with pytest.raises(ValidationError, match="client_id"):
        spec.where_clause("services", {"client_id": practice_people["service"]})


def test_reading_staff_needs_its_table_permission(ctx, practice_people):
    from strongroom.core.principal import Principal
    from strongroom.core.repository.records import stream_columns
    reader = Principal(actor="user:limited", permissions=frozenset({"table:clients:read", "export"}))
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(PermissionDenied, match="table:staff:read"):
            next(stream_columns(conn, ctx.keyring, reader, "staff", ("first_name",)))
