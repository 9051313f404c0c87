"""XML exports against the published schema docs/export.xsd: real exports (clients and
sessions, NULLs, non-ASCII text, masked and full) validate with xmllint; files that
break the format do not; the published file is what core.export.xsd writes."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.export import xsd
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository import sessions as session_repo
from strongroom.core.repository.practices import create_practice
from tests.core.export.conftest import SCHEMA, needs_xmllint, xmllint

def test_published_schema_is_what_the_generator_writes():
    assert SCHEMA.read_text(encoding="utf-8") == xsd.schema()


@pytest.fixture
def world(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Praxis Müller")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        zoe = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {
            "first_name": "Zoë", "last_name": "Ørsted-Łukasiewicz", "ssn": "900-12-3456",
            "email": "zoe@example.org", "address": "Straße 5, 東京", "medical_history": "Ängste; \"<none>\" & more\r\n",
            "date_of_birth": "1980-02-03"})
        bare = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Jo", "last_name": "Ng"})
        for client, notes, price in ((zoe, "Gespräch über Arbeit — gut.", 15000), (bare, None, None)):
            session_repo.create_session(conn, ctx.keyring, SYSTEM, {
                "client_id": client, "starts_at": datetime(2025, 3, 5, 10, tzinfo=timezone.utc),
                "notes": notes, "price_cents": price})
    return practice


@needs_xmllint
@pytest.mark.parametrize("masking", ["full", "masked"])
def test_real_xml_exports_validate_against_the_schema(ctx, world, masking):
    result = export.run(ctx, {"actor": "user:mgr", "tables": ["clients", "therapy_sessions"], "format": "xml",
                              "masking": masking}, lambda *a: None)
    location = Path(result["location"])
    files = sorted(location.glob("*.xml"))
    assert [f.name for f in files] == ["clients.xml", "therapy_sessions.xml"]
    clients = files[0].read_text(encoding="utf-8")
    assert 'xsi:nil="true"' in clients and "null=" not in clients
    if masking == "full":
        assert "Zoë" in clients and "東京" in clients
    assert 'xsi:nil="true"' in files[1].read_text(encoding="utf-8")   # Jo's session: no notes, no price
    for path in files:
        checked = xmllint(path)
        assert checked.returncode == 0, checked.stderr
        assert "validates" in checked.stderr


@needs_xmllint
def test_chosen_fields_in_any_order_validate(ctx, world):
    result = export.run(ctx, {"actor": "user:mgr", "tables": ["clients"], "format": "xml", "masking": "full",
                              "fields": {"clients": ["notes", "last_name", "id", "intake_date"]}}, lambda *a: None)
    checked = xmllint(Path(result["location"]) / "clients.xml")
    assert checked.returncode == 0, checked.stderr


BROKEN = {
    "an unknown field": "<row><colour>blue</colour></row>",
    "a null without xsi:nil on an integer": "<row><duration_minutes/></row>",
    "a status outside its enumeration": "<row><status>LOST</status></row>",
    "a field twice": "<row><notes>a</notes><notes>b</notes></row>",
    "a content under xsi:nil": '<row><notes xsi:nil="true">x</notes></row>',
}


@needs_xmllint
@pytest.mark.parametrize("what", BROKEN)
def test_files_breaking_the_format_do_not_validate(tmp_path, what):
    path = tmp_path / "bad.xml"
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n'
                    f'<export xmlns:xsi="{xsd.XSI}" table="therapy_sessions" xsi:type="therapy_sessions-export">'
                    f"{BROKEN[what]}</export>\n", encoding="utf-8")
    assert xmllint(path).returncode != 0


@needs_xmllint
def test_a_root_without_its_table_type_does_not_validate(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text('<?xml version="1.0"?><export table="clients"><row/></export>', encoding="utf-8")
    assert xmllint(path).returncode != 0
