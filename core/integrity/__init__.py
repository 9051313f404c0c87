"""Integrity checks: each one named, each with a status and evidence.

A check looks at one property of the stored data and answers `ok`, `warn` (something
to look at that does not make the data wrong, e.g. a retired key still in use) or
`fail` (the data is not what it must be). Evidence is counts and row ids, never a
value: a planted plaintext SSN is reported by its row id, not echoed. Every check is
recorded as a row of `integrity_checks` (core/jobs/integrity.py runs them all).

Modules by what they check: `orphans` (rows pointing at rows that do not exist or are
tombstoned), `envelopes` (plaintext where ciphertext belongs), `keys` (live rows on
destroyed or unknown keys), `backups` (snapshots verified and restore-drilled),
`unaudited` (rows changed between the two newest snapshots with no audit entry),
`files` (client file content in its store: no row without its objects, no object
without a live row, content as recorded).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import IntegrityCheck
from strongroom.core.db.types import utcnow
from strongroom.core.ids import new_id

OK, WARN, FAIL = "ok", "warn", "fail"
STATUSES = (OK, WARN, FAIL)
# Evidence lists at most this many row ids per finding; the counts are always complete.
MAX_EVIDENCE_IDS = 50
# Rows written before checks had three states said passed/failed.
_GOOD = frozenset({OK, "passed"})


def is_ok(status: str | None) -> bool:
    """True for a check that found nothing wrong (`ok`, or `passed` in older rows)."""
    return status in _GOOD


def is_failure(status: str | None) -> bool:
    """True for a check that found the data wrong (`fail`, or `failed` in older rows)."""
    return status in (FAIL, "failed")


def worst(*statuses: str) -> str:
    """The most severe of `statuses` (ok < warn < fail)."""
    return max(statuses, key=STATUSES.index, default=OK)


def record(ctx: Context, check_type: str, name: str, table: str | None, status: str,
           expected: str, actual: str, evidence: dict, started: datetime) -> dict:
    """Store one check's outcome in `integrity_checks`; returns it as the job reports it."""
    if status not in STATUSES:
        raise ValueError(f"unknown integrity status {status!r}")
    row = {"id": new_id(), "check_type": check_type, "name": name, "table_name": table,
           "status": status, "expected": expected[:200], "actual": actual[:200],
           "evidence": evidence, "started_at": started, "completed_at": utcnow()}
    with transaction(ctx.engine) as conn:
        conn.execute(insert(IntegrityCheck.__table__), [row])
    return {"name": name, "status": status, "expected": row["expected"], "actual": row["actual"],
            "evidence": evidence}
