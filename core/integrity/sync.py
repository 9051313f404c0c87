"""Sync consistency with each active peer: the sites compared by ranges of rows
(core.sync.consistency), for the integrity job when peers exist.

Rows that differ are a warning, not a failure: changes waiting for the next pass and
conflicts waiting for a person make two sites differ for a while by design. A peer that
cannot be reached is a warning too (the sync job's own failures report that). Evidence
is counts and row ids, never values."""
from __future__ import annotations

from strongroom.core.context import Context
from strongroom.core.db.types import utcnow
from strongroom.core.integrity import MAX_EVIDENCE_IDS, OK, WARN, record
from strongroom.core.sync.consistency import check_peer
from strongroom.core.sync.peers import active_outbound


def check_name(peer: str) -> str:
    """The recorded name of the consistency check with `peer` (health reads it back)."""
    return f"sync consistency with {peer}"


def check_sync(ctx: Context, progress) -> list[dict]:
    """One check per active peer; none when there are no peers."""
    out = []
    with ctx.engine.connect() as conn:
        names = [p["name"] for p in active_outbound(conn)]
    for n, name in enumerate(names, 1):
        started = utcnow()
        try:
            report = check_peer(ctx, name)
        except Exception as exc:     # noqa: BLE001  the peer (its address, its server), not this database
            out.append(record(ctx, "sync", check_name(name), None, WARN,
                              "the two sites hold the same rows", f"peer not reachable ({type(exc).__name__})",
                              {"peer": name, "error": type(exc).__name__}, started))
            continue
        differing = {t["table"]: {k: t[k] for k in ("missing_here", "missing_there", "differing")}
                     for t in report["tables"] if not (t["missing_here"] == t["missing_there"] == t["differing"] == 0)}
        ids = [e["row_id"] for t in report["tables"] for e in t["examples"]][:MAX_EVIDENCE_IDS]
        rows = sum(sum(v.values()) for v in differing.values())
        out.append(record(ctx, "sync", check_name(name), None, OK if report["consistent"] else WARN,
                          "the two sites hold the same rows",
                          "identical" if report["consistent"] else f"{rows} rows differ (unsent changes or open "
                                                                   "conflicts, until the next pass)",
                          {"peer": name, "differing_by_table": differing, "ids": ids,
                           "rows_compared": {t["table"]: t["rows_here"] for t in report["tables"]}}, started))
        progress(n, len(names), f"sync consistency with {name}")
    return out
