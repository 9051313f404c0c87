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
from strongroom.core.export import archive, spool
from strongroom.core.export.archive import Output
from strongroom.core.jobs import export
from tests.core.jobs.conftest import run_export
from tests.killed import READY, files_holding, killed_when_ready

SSN = b"900-12-3456"


def _running_export(ctx, actor: str = "user:mgr", minutes_ago: int = 5) -> tuple[uuid.UUID, str]:
    export_id, created = uuid.uuid4(), utcnow() - timedelta(minutes=minutes_ago)
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Export.__table__), [{"id": export_id, "requested_by": actor, "format": "csv",
                                                  "filters": {}, "status": "running", "created_at": created}])
    return export_id, export.directory_name(created, export_id)


@pytest.fixture(params=["unnamed", "spool"])
def written_as(request, monkeypatch):
    """Both ways an unfinished file is kept unreadable: unnamed (O_TMPFILE, where the
    filesystem has it) and the sealed spool (everywhere else)."""
    if request.param == "spool":
        monkeypatch.setattr(archive, "unnamed_file", lambda directory: None)
    return request.param


def test_an_unfinished_export_file_holds_no_plaintext_until_finish(tmp_path, written_as):
    line = b"id,ssn\n" + b"".join(b"%d,%s\n" % (i, SSN) for i in range(100_000))   # several segments
    output = Output(tmp_path, "20260101T000000Z-0000abcd")
    with output.open("clients.csv", text=False, table="clients") as stream:
        stream.write(line)
    on_disk = b"".join(p.read_bytes() for p in output.tmp.iterdir())
    assert SSN not in on_disk
    if written_as == "spool":
        assert len(on_disk) > len(line)              # sealed, under a key in memory only
    else:
        assert list(output.tmp.iterdir()) == []      # nothing under any name
    final, _ = output.finish({})
    assert (final / "clients.csv").read_bytes() == line
    assert sorted(p.name for p in final.iterdir()) == ["clients.csv", "manifest.json"]


def test_an_export_killed_mid_write_leaves_no_plaintext_under_any_name(tmp_path, written_as):
    """kill -9 while a data file is being written: what is left in the directory (the
    daemon's start-up removes it) holds no PHI."""
    spool_only = "archive.unnamed_file = lambda directory: None\n" if written_as == "spool" else ""
    killed_when_ready(
        "import time\nfrom strongroom.core.export import archive\n" + spool_only +
        f"output = archive.Output({str(tmp_path)!r}, '20260101T000000Z-0000abcd')\n"
        "with output.open('clients.csv', text=False, table='clients') as stream:\n"
        f"    stream.write(b''.join(b'%d,%s\\n' % (i, {SSN!r}) for i in range(100000)))\n"
        "    stream.flush()\n"
        f"    print({READY!r}, flush=True)\n"
        "    time.sleep(60)\n")
    assert files_holding(tmp_path, SSN) == []


def test_only_the_files_that_stay_are_fsynced_not_the_spool(tmp_path, monkeypatch, written_as):
    """A spool is ciphertext under a key that dies with the process: after a crash it is
    unreadable and removed, so forcing it to disk buys nothing (it cost a second disk
    write of the whole export). The plaintext file and the manifest are fsynced; an
    unnamed file is fsynced once it has its name."""
    synced = []
    real_fsync = os.fsync

    def recording(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_ino))
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording)
    output = Output(tmp_path, "20260101T000000Z-0000abcd")
    with output.open("clients.csv", text=False, table="clients") as stream:
        stream.write(b"id,ssn\n" + b"".join(b"%d,%s\n" % (i, SSN) for i in range(100_000)))
    final, _ = output.finish({})
    names = [os.path.basename(path) for path, _ in synced]
    assert not [name for name in names if name.endswith(spool.SUFFIX)], names
    inodes = {inode for _, inode in synced}     # an unnamed file's link keeps naming it "(deleted)"
    assert (final / "clients.csv").stat().st_ino in inodes and (final / "manifest.json").stat().st_ino in inodes


class _FillingUp:
    """An unnamed file on a disk that fills up after 3 MiB."""

    def __init__(self, fh) -> None:
        self._fh, self.written = fh, 0

    def write(self, data) -> int:
        self.written += len(data)
        if self.written > 3 << 20:
            raise OSError(28, "No space left on device")
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)


def test_a_full_disk_met_while_writing_fails_the_file_and_leaves_nothing(tmp_path, monkeypatch, written_as):
    """Hashing and writing run on a helper thread; what it meets is raised in the
    exporting thread, the helper is gone, and abort() leaves no trace."""
    if written_as == "spool":
        written = []

        def fill_up(self, data):
            written.append(len(data))
            if sum(written) > 3 << 20:
                raise OSError(28, "No space left on device")
            return len(data)
        monkeypatch.setattr(spool.SpoolWriter, "write", fill_up)
    else:
        real = archive.unnamed_file
        monkeypatch.setattr(archive, "unnamed_file", lambda directory: _FillingUp(real(directory)))
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
