"""Restore drill: the top rung of the proof ladder.

Restores a snapshot (by default the newest) into a scratch SQLite database, which
`restore` proves against the manifest (row counts, re-encoded table hashes, the audit
chain to its recorded head) and whose client file objects it writes into a scratch
files store, each proven by its keyed hash, measures how long it took, and records the
snapshot as `drilled`. The scratch file lives in the data directory (mode 0600 inside a 0700
directory: it holds the same ciphertext the backups do) and is removed afterwards,
whatever happens.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError
from strongroom.core.backup.snapshots import newest_snapshot, open_configured
from strongroom.core.restore import restore
from strongroom.core.storage import open_target


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    asked = parse("restore_drill", params)
    _, repo = open_configured(ctx, params)
    ids = repo.list_snapshots()
    if not ids:
        raise NotFoundError(f"no snapshot to drill in {repo.target.describe()}")
    # The newest by the daemon's clock, not the highest id: a compacted chain's
    # replacement base has a new id but older data.
    snapshot_id = asked.snapshot_id or newest_snapshot(ctx.engine, ids)
    scratch = Path(tempfile.mkdtemp(prefix=".drill-", dir=ctx.settings.data_dir))
    lock = repo.acquire_lock("shared", "restore_drill")
    try:
        result = restore(repo, snapshot_id, f"sqlite:///{scratch / 'drill.db'}", progress=progress,
                         live=ctx.engine, files_target=open_target(str(scratch / "files")))
    finally:
        lock.release()
        shutil.rmtree(scratch, ignore_errors=True)
    with transaction(ctx.engine) as conn:
        table = Backup.__table__
        conn.execute(update(table).where(table.c.id == snapshot_id).values(proof="drilled", drilled_at=utcnow()))
        audit.append(conn, actor=params.get("actor", "system"), action="RESTORE", table_name="backups",
                     record_id=snapshot_id, details={"drill": True, "rows": result.rows,
                                                     "seconds": result.seconds, "files": result.files})
    return result.as_dict()
