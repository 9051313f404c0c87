"""The `reconcile` job: find likely duplicate clients within each practice (or one).

Per practice: the clients' names, dates of birth, phones and emails are read and
decrypted into memory (core.reconcile.repository), blocked (candidates.py) so only
clients sharing a block are compared, scored (score.py), and the pairs at or above
the threshold recorded (ids, score, reason codes). Nothing is merged: people decide
each pair with `reconcile merge` or `reconcile dismiss`.
"""
from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import select

from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError
from strongroom.core.jobs import kinds
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.reconcile import candidates, repository
from strongroom.core.reconcile.score import THRESHOLD, score_if_candidate


def match(people: list, blind: list | None = None, *, threshold: float = THRESHOLD,
          stats: dict | None = None) -> list[tuple[Any, Any, float, list[str]]]:
    """(id, id, score, reasons) of every blocked pair scoring at least `threshold`."""
    found = []
    for i, j in candidates.pairs(people, blind, stats):
        scored = score_if_candidate(people[i], people[j], threshold)
        if scored is not None:
            found.append((people[i].id, people[j].id, *scored))
    return found


def reconcile_practice(ctx: Context, practice_id: uuid.UUID, principal: Principal = SYSTEM,
                       requested_by: str | None = None) -> dict:
    """Find and record the candidate pairs of one practice; returns counts and timings.
    The pass reads as `principal` (the daemon's own job: nothing it decrypts is shown to
    anyone); `requested_by` is the person who started it, named in the READ entry."""
    started = time.monotonic()
    with transaction(ctx.engine) as conn:
        repository.audit_read(conn, principal, practice_id, requested_by=requested_by)
    # Read and match without holding the write lock; only storing the pairs writes.
    with transaction(ctx.engine, read_only=True) as conn:
        people, blind = repository.load_people(conn, ctx.keyring, principal, practice_id)
    read = time.monotonic()
    stats: dict = {}
    found = match(people, blind, stats=stats)
    with transaction(ctx.engine) as conn:
        saved = repository.save_pairs(conn, practice_id, found, utcnow())
    return {"practice_id": str(practice_id), "clients": len(people), "pairs_found": len(found), **saved,
            **stats, "read_seconds": round(read - started, 2),
            "seconds": round(time.monotonic() - started, 2)}


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    options = kinds.parse("reconcile", params)
    with transaction(ctx.engine, read_only=True) as conn:
        if options.practice_id is not None:
            if conn.execute(select(Practice.id).where(Practice.id == options.practice_id)).first() is None:
                raise NotFoundError("practice_id: no such practice")
            practices = [options.practice_id]
        else:
            practices = list(conn.execute(select(Practice.id).where(Practice.deleted_at.is_(None))
                                          .order_by(Practice.id)).scalars())
    results = []
    progress(0, len(practices), "matching clients")
    for done, practice in enumerate(practices, 1):
        results.append(reconcile_practice(ctx, practice, requested_by=params.get("actor")))
        progress(done, len(practices), f"{done} of {len(practices)} practices")
    return {"practices": results, "pairs_found": sum(r["pairs_found"] for r in results),
            "new": sum(r["new"] for r in results)}
