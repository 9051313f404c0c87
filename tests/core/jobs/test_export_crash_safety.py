"""What a crash mid-export leaves (issue 12): unfinished files hold no readable PHI, and
the start-up reconciliation marks the export interrupted, removes its directories,
audits it, and stops counting it against the requester's hourly limit."""
from __future__ import annotations

import io
import json
import os
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from strongroom.core.config import ExportSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Export
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError, RateLimitedError
from strongroom.core.export import spool
from strongroom.core.export.archive import Output
from strongroom.core.jobs import export
from tests.core.jobs.conftest import run_export

SSN = b"900-12-3456"


def _running_export(ctx, actor: str = "user:mgr", minutes_ago: int = 5) -> tuple[uuid.UUID, str]:
    export_id, created = uuid.uuid4(), utcnow() - timedelta(minutes=minutes_ago)
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Export.__table__), [{"id": export_id, "requested_by": actor, "format": "csv",
                                                  "filters": {}, "status": "running", "created_at": created}])
    return export_id, export.directory_name(created, export_id)


def test_an_unfinished_export_file_holds_no_plaintext_until_finish(tmp_path):
    line = b"id,ssn\n" + b"".join(b"%d,%s\n" % (i, SSN) for i in range(100_000))   # several segments
    output = Output(tmp_path, "20260101T000000Z-0000abcd")
    with output.open("clients.csv", text=False, table="clients") as stream:
        stream.write(line)
    on_disk = b"".join(p.read_bytes() for p in output.tmp.iterdir())
    assert len(on_disk) > len(line) and SSN not in on_disk
    final, _ = output.finish({})
    assert (final / "clients.csv").read_bytes() == line
    assert sorted(p.name for p in final.iterdir()) == ["clients.csv", "manifest.json"]


def test_only_the_files_that_stay_are_fsynced_not_the_spool(tmp_path, monkeypatch):
    """A spool is ciphertext under a key that dies with the process: after a crash it is
    unreadable and removed, so forcing it to disk buys nothing (it cost a second disk
    write of the whole export). The plaintext file and the manifest are fsynced."""
    synced = []
    real_fsync = os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording)
    output = Output(tmp_path, "20260101T000000Z-0000abcd")
    with output.open("clients.csv", text=False, table="clients") as stream:
        stream.write(b"id,ssn\n" + b"".join(b"%d,%s\n" % (i, SSN) for i in range(100_000)))
    final, _ = output.finish({})
    names = [os.path.basename(path) for path in synced]
    assert not [name for name in names if name.endswith(spool.SUFFIX)], names
    assert "clients.csv" in names and "manifest.json" in names


def test_a_full_disk_met_while_writing_fails_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    """Hashing and writing run on a helper thread; what it meets is raised in the
    exporting thread, the helper is gone, and abort() leaves no trace."""
    written = []

    def fill_up(self, data):
        written.append(len(data))
        if sum(written) > 3 << 20:
            raise OSError(28, "No space left on device")
        return len(data)
    monkeypatch.setattr(spool.SpoolWriter, "write", fill_up)
    output = Output(tmp_path, "20260101T000000Z-0000abcd")
    with pytest.raises(OSError, match="No space left"):
        with output.open("clients.csv", text=False, table="clients") as stream:
            for _ in range(64):
                stream.write(b"x" * (1 << 20))
    assert not [t for t in threading.enumerate() if t.name == "strongroom-export-writer"]
    output.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_tampered_or_truncated_spool_does_not_open():
    sealed = io.BytesIO()
    writer = spool.SpoolWriter(sealed)
    writer.write(b"x" * (spool.SEGMENT + 10))
    writer.finish()
    whole = sealed.getvalue()
    assert spool.unspool(io.BytesIO(whole), writer.key, io.BytesIO(), name="f") == spool.SEGMENT + 10
    first_segment = 4 + spool.SEGMENT + 16
    for broken in (whole[:first_segment], whole[:-1], whole[:100] + bytes([whole[100] ^ 1]) + whole[101:]):
        with pytest.raises(IntegrityError, match="spool"):
            spool.unspool(io.BytesIO(broken), writer.key, io.BytesIO(), name="f")


def test_reconcile_marks_running_exports_interrupted_removes_their_files_and_audits(ctx, world):
    root = export.export_directory(ctx.settings)
    root.mkdir(mode=0o700, exist_ok=True)
    cut, cut_name = _running_export(ctx)
    moved, moved_name = _running_export(ctx, minutes_ago=7)       # crashed between rename and record
    for directory in (root / f".{cut_name}.tmp", root / moved_name, root / ".20250101T000000Z-deadbeef.tmp"):
        directory.mkdir()
        (directory / "clients.csv.spool").write_bytes(os.urandom(64))
    done = run_export(ctx, tables="clients", format="csv")          # a finished export stays
    (root / "notes-of-mine").mkdir()                                 # and so does what is not an export's

    assert sorted(export.reconcile_interrupted(ctx)) == sorted([cut, moved])

    assert sorted(p.name for p in root.iterdir()) == sorted([os.path.basename(done["location"]), "notes-of-mine"])
    logs = AuditLog.__table__
    with ctx.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(Export.__table__)).mappings()}
        entries = {e["record_id"]: e for e in conn.execute(
            select(logs).where(logs.c.outcome == "interrupted")).mappings()}
    for export_id, removed in ((cut, ["temporary directory"]), (moved, ["unrecorded export directory"])):
        assert rows[export_id]["status"] == "interrupted" and rows[export_id]["finished_at"] is not None
        entry = entries[str(export_id)]
        assert (entry["action"], entry["actor"]) == ("EXPORT", "system")
        details = json.loads(entry["details"])                       # canonical JSON text
        assert details["removed"] == removed and details["requested_by"] == "user:mgr"
    assert rows[uuid.UUID(done["export_id"])]["status"] == "succeeded"
    assert export.reconcile_interrupted(ctx) == []                    # nothing left to do


def test_an_interrupted_export_does_not_count_against_the_hourly_limit(ctx, world):
    ctx.settings = ctx.settings.model_copy(update={"export": ExportSettings(max_per_hour=1)})
    _running_export(ctx)
    with pytest.raises(RateLimitedError):
        run_export(ctx, tables="clients", format="csv")
    export.reconcile_interrupted(ctx)
    assert run_export(ctx, tables="clients", format="csv")["row_count"] == 3
