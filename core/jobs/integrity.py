"""Integrity job: prove the stored data is what was written.

This first cut checks what the foundation can prove on its own: the audit hash chain,
and every clinical row's `data_checksum` against the row as stored (a row changed
behind the application's back, or damaged on disk, no longer matches). Each check is
recorded in `integrity_checks` with its evidence (counts and row ids, never values).
Later issues add orphan detection, plaintext-PHI scans, backup verification and
restore drills as further checks here.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from strongroom.core import audit, checkpoints
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, ClientFile, IntegrityCheck, Practice, TherapySession
from strongroom.core.db.paging import batches
from strongroom.core.db.types import utcnow
from strongroom.core.errors import IntegrityError
from strongroom.core.ids import new_id
from strongroom.core.repository.changes import row_checksum

CHECKSUMMED = (Practice, Client, TherapySession, ClientFile)
BATCH = 2000
MAX_EVIDENCE_IDS = 50


def _record(ctx: Context, check_type: str, name: str, table: str | None, ok: bool,
            expected: str, actual: str, evidence: dict, started) -> dict:
    row = {"id": new_id(), "check_type": check_type, "name": name, "table_name": table,
           "status": "passed" if ok else "failed", "expected": expected, "actual": actual,
           "evidence": evidence, "started_at": started, "completed_at": utcnow()}
    with transaction(ctx.engine) as conn:
        conn.execute(insert(IntegrityCheck.__table__), [row])
    return {"name": name, "status": row["status"], "expected": expected, "actual": actual, "evidence": evidence}


def check_audit_chain(ctx: Context, progress) -> dict:
    started = utcnow()
    result, cp = checkpoints.verify_against_newest(ctx, progress=lambda d, t, m: progress(d, t, m))
    return _record(ctx, "audit_chain", "audit chain", "audit_logs", result.ok,
                   "every entry links, hashes and is sealed; the newest checkpoint's entry is there",
                   "intact" if result.ok else f"broken at entry {result.broken_id}",
                   {"checked": result.checked, "broken_id": result.broken_id, "reason": result.reason,
                    "head_hash": result.head_hash, "rows_missing_after": result.rows_missing_after,
                    "checkpoint_head_id": cp["head_id"] if cp else None,
                    "unsealed_legacy": result.unsealed_legacy,
                    "database_written": list(result.database_written),
                    "database_written_count": result.database_written_count}, started)


def check_row_checksums(ctx: Context, model, progress) -> dict:
    """Stream the table by primary key and recompute each row's checksum."""
    table = model.__table__
    started = utcnow()
    checked, bad = 0, []
    with ctx.engine.connect() as conn:
        for rows in batches(conn, table, size=BATCH):
            for row in rows:
                if row["data_checksum"] is not None and row["data_checksum"] != row_checksum(dict(row)):
                    bad.append(str(row["id"]))
            checked += len(rows)
            progress(checked, None, f"checksums of {table.name}")
    return _record(ctx, "row_checksum", f"{table.name} row checksums", table.name, not bad,
                   "0 mismatches", f"{len(bad)} mismatches",
                   {"checked": checked, "mismatched": len(bad), "ids": bad[:MAX_EVIDENCE_IDS]}, started)


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    """Run every check; the job fails if any check fails, naming them."""
    checks = [check_audit_chain(ctx, progress)]
    for model in CHECKSUMMED:
        checks.append(check_row_checksums(ctx, model, progress))
    failed = [c["name"] for c in checks if c["status"] != "passed"]
    result = {"checks": checks, "failed": failed, "passed": len(checks) - len(failed)}
    if failed:
        raise IntegrityFailure(f"integrity checks failed: {', '.join(failed)}", result)
    return result


class IntegrityFailure(IntegrityError):
    """Carries the full result so the run's record keeps the evidence."""

    def __init__(self, message: str, result: dict) -> None:
        super().__init__(message)
        self.result = result
