"""Verify job: prove snapshots are still whole.

Fast: the manifest authenticates (HMAC) and every chunk it references is present at
its recorded size. With `read_data`: every chunk is fetched, authenticated, decrypted,
decompressed and re-addressed, and each table's SHA-256 recomputed. Only a read-data
pass raises a snapshot's proof to `verified`; a failure names each object at fault and
fails the run, leaving the proof where it was.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError, NotFoundError
from strongroom.core.backup.snapshots import open_configured
from strongroom.core.backup.verify import bytes_checked

MAX_REPORTED = 50


class VerifyFailure(IntegrityError):
    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Verify one snapshot (`snapshot_id`) or, by default, every snapshot in the
    repository of the backup configuration `configuration` (default "default")."""
    asked = parse("verify", params)
    cfg, repo = open_configured(ctx, params)
    read_data = asked.read_data
    wanted = asked.snapshot_id
    ids = [wanted] if wanted else repo.list_snapshots()
    if wanted and ids[0] not in repo.list_snapshots():
        raise NotFoundError(f"snapshot {wanted} is not in {repo.target.describe()}")
    lock = repo.acquire_lock("shared", "verify")
    report: list[dict] = []
    try:
        manifests: dict[uuid.UUID, Any] = {}
        for snapshot_id in ids:
            try:
                manifests[snapshot_id] = repo.read_manifest(snapshot_id)
            except IntegrityError as exc:
                manifests[snapshot_id] = exc
        # One unit per run, bytes, against one total: the bytes every snapshot holds
        # (the count no longer starts again at 0 for each snapshot of the run).
        total = sum(bytes_checked(m, read_data=read_data) for m in manifests.values() if not isinstance(m, Exception))
        before = 0
        for n, snapshot_id in enumerate(ids, 1):
            manifest = manifests[snapshot_id]
            if isinstance(manifest, Exception):
                report.append({"snapshot_id": str(snapshot_id), "problems": [str(manifest)]})
                continue
            step = lambda d, _t, m, n=n, at=before: progress(  # noqa: E731
                min(at + d, total), total, f"snapshot {n}/{len(ids)}: {m}")
            problems = (repo.verify_read_data(manifest, step, workers=2) if read_data
                        else repo.verify_fast(manifest, step))
            before += bytes_checked(manifest, read_data=read_data)
            lock.check()
            report.append({"snapshot_id": str(snapshot_id), "problems": [str(p) for p in problems[:MAX_REPORTED]],
                           "problem_count": len(problems)})
    finally:
        lock.release()
    bad = [r for r in report if r["problems"]]
    now = utcnow()
    with transaction(ctx.engine) as conn:
        if read_data:
            good = [uuid.UUID(r["snapshot_id"]) for r in report if not r["problems"]]
            table = Backup.__table__
            if good:
                conn.execute(update(table).where(table.c.id.in_(good), table.c.proof.in_(("none", "written")))
                             .values(proof="verified", verified_at=now))
                conn.execute(update(table).where(table.c.id.in_(good)).values(verified_at=now))
        audit.append(conn, actor=params.get("actor", "system"), action="VERIFY", table_name="backups",
                     outcome="failure" if bad else "success",
                     details={"snapshots": len(report), "failed": len(bad), "read_data": read_data,
                              "configuration": cfg.name})
    result = {"snapshots": report, "read_data": read_data, "failed": len(bad), "configuration": cfg.name}
    if bad:
        first = bad[0]
        raise VerifyFailure(f"{len(bad)} of {len(report)} snapshot(s) failed verification; first: "
                            f"{first['snapshot_id']}: {first['problems'][0]}", result)
    return result
