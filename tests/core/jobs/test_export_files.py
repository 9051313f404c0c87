"""Export with files: the content of the client files an export's client_files rows
list goes into its encrypted ZIP, byte for byte, named by file id (never by the
file's own name, which is PHI and the manifest beside the ZIP is in the clear); each
file read is audited; a file that does not prove itself fails the export and leaves
nothing; quarantined files are left out and counted, never silently."""
from __future__ import annotations

import csv
import io
import json
import os
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import pyzipper
from sqlalchemy import select

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Export
from strongroom.core.errors import IntegrityError, ValidationError
from strongroom.core.files import content
from strongroom.core.files.repository import add_file
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice
from tests.core.jobs.conftest import run_export

PASSWORD = "correct horse battery"
# Synthetic documents: a scan that does not compress (two chunks) and a short letter.
SCAN = os.urandom(content.CHUNK_SIZE + 12_345)
LETTER = b"Referral letter for a synthetic client.\n" * 50


def _add(ctx, client_id, name: str, content_type: str, data: bytes) -> uuid.UUID:
    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, SYSTEM, open_files_target(ctx.settings), ctx.settings.files, client_id,
                        name=name, content_type=content_type, size=len(data),
                        content=(data[i:i + 1_000_000] for i in range(0, len(data), 1_000_000)))["id"]


@pytest.fixture
def filed(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Files Practice")
        create_user(conn, ctx.keyring, ctx.settings, practice, "mgr", "Export-Test-Pass-1", "MANAGER")
        alice = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Alice", "last_name": "Arden"})
        bob = repo.create_client(conn, ctx.keyring, SYSTEM, practice, {"first_name": "Bob", "last_name": "Brook"})
    return {"alice": alice, "bob": bob,
            "scan": _add(ctx, alice, "Arden scan.pdf", "application/pdf", SCAN),
            "letter": _add(ctx, alice, "Arden referral.txt", "text/plain", LETTER),
            "bobs": _add(ctx, bob, "Brook consent.pdf", "application/pdf", b"%PDF- synthetic consent")}


def _export_files(ctx, client_id, **more) -> dict:
    return run_export(ctx, tables=["client_files"], format="csv", masking="full", encrypt=True, files=True,
                      password_sealed=export.seal_password(ctx, PASSWORD), filters={"client_id": str(client_id)},
                      **more)


def _exports_dir(ctx) -> Path:
    return Path(ctx.settings.data_dir) / "exports"


def _export_rows(ctx) -> list[dict]:
    with ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Export.__table__)).mappings()]


def test_a_clients_files_go_into_the_zip_byte_for_byte_named_by_id(ctx, filed):
    result = _export_files(ctx, filed["alice"])
    scan, letter = f"files/{filed['scan']}.pdf", f"files/{filed['letter']}.txt"
    assert result["client_files_content"] == {"files": 2, "bytes": len(SCAN) + len(LETTER),
                                              "left_out_quarantined": 0}
    location = Path(result["location"])
    with pyzipper.AESZipFile(location / "export.zip") as zf:
        zf.setpassword(PASSWORD.encode())
        assert sorted(zf.namelist()) == sorted(["client_files.csv", scan, letter])   # not Bob's
        assert zf.read(scan) == SCAN and zf.read(letter) == LETTER
        for name in (scan, letter):
            entry = zf.getinfo(name)
            assert entry.flag_bits & 0x1 and entry.compress_type == pyzipper.ZIP_STORED   # sealed, not deflated
        listed = {r["id"]: r["file_name"] for r in csv.DictReader(io.StringIO(zf.read("client_files.csv").decode()))}
    assert listed == {str(filed["scan"]): "Arden scan.pdf", str(filed["letter"]): "Arden referral.txt"}
    manifest_text = (location / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert "Arden" not in manifest_text                      # no file name beside the ZIP
    assert {f["name"] for f in manifest["files"] if f.get("in")} == {"client_files.csv", scan, letter}
    assert manifest["client_files_content"] == result["client_files_content"]
    assert _export_rows(ctx)[-1]["filters"]["files"] is True


def test_each_exported_file_is_audited_as_a_read_and_the_export_counts_them(ctx, filed):
    _export_files(ctx, filed["alice"])
    t = AuditLog.__table__
    with ctx.engine.connect() as conn:
        entries = conn.execute(select(t.c.action, t.c.actor, t.c.record_id, t.c.details)
                               .where(t.c.table_name.in_(["client_files", "exports"]))).all()
    reads = {str(e.record_id) for e in entries if e.action == "READ" and e.actor == "user:mgr"}
    assert reads == {str(filed["scan"]), str(filed["letter"])}
    exported = [json.loads(e.details) if isinstance(e.details, str) else e.details
                for e in entries if e.action == "EXPORT"]
    assert exported[-1]["client_files_content"]["files"] == 2


@pytest.mark.parametrize("change, words", [
    ({"tables": ["clients"]}, "needs the client_files table"),
    ({"encrypt": False, "password_sealed": None}, "go only into an encrypted ZIP"),
    ({"masking": "masked"}, "cannot be masked"),
])
def test_files_are_refused_where_they_cannot_go_and_nothing_is_written(ctx, filed, change, words):
    params = {"tables": ["client_files"], "format": "csv", "masking": "full", "encrypt": True, "files": True,
              "password_sealed": export.seal_password(ctx, PASSWORD), **change}
    with pytest.raises(ValidationError, match=words):
        run_export(ctx, **{k: v for k, v in params.items() if v is not None})
    assert not _exports_dir(ctx).exists() and _export_rows(ctx) == []


def test_a_tampered_file_fails_the_export_naming_it_and_leaves_nothing(ctx, filed):
    store = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        manifest = content.read_manifest(store, lambda _kid: ctx.keyring.client_cipher(conn, filed["alice"]),
                                         filed["scan"], _storage_key(conn, filed["scan"]))
    chunk = store.root / manifest["chunks"][1]
    raw = bytearray(chunk.read_bytes())
    raw[-1] ^= 1
    chunk.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=f"file {filed['scan']}: chunk 1 failed authentication"):
        _export_files(ctx, filed["alice"])
    assert [p for p in _exports_dir(ctx).iterdir()] == []
    assert _export_rows(ctx)[-1]["status"] == "failed"


def _storage_key(conn, file_id) -> str:
    from strongroom.core.db.models import ClientFile
    t = ClientFile.__table__
    return conn.execute(select(t.c.storage_key).where(t.c.id == file_id)).scalar_one()


def test_with_scanning_on_files_not_scanned_clean_are_left_out_and_counted(ctx, filed):
    """Files are pending here (scanning was off when they were added): with scanning
    on, a manager without files:quarantine:read gets the rows, not the content."""
    scanning = replace(ctx, settings=ctx.settings.model_copy(update={
        "files": ctx.settings.files.model_copy(update={"scanner": "clamd"})}))
    result = _export_files(scanning, filed["alice"])
    assert result["client_files_content"] == {"files": 0, "bytes": 0, "left_out_quarantined": 2}
    with pyzipper.AESZipFile(Path(result["location"]) / "export.zip") as zf:
        assert zf.namelist() == ["client_files.csv"]
