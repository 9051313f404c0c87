"""How sync stands, for people and monitors: per peer and table, and the quarantine.

Read-only views over `sync_peers`, `sync_state`, `sync_conflicts` and `sync_quarantine`
(the engine writes them: core.sync.passes and core.jobs.sync). Lag is given two ways:
in time (since the last successful pass) and in rows (local changes past the peer's
push watermark; an index range scan per table). How far behind this site is of the peer
cannot be told without asking the peer, so pull lag is given only as the watermark.

The quarantine listing names the row, the peer, the reason and when; it never carries
the row's image (ciphertext, but still the row: it stays in the database).
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection, func, select

from strongroom.core.db.models import SyncConflict, SyncPeer, SyncQuarantine, SyncState
from strongroom.core.db.types import utcnow
from strongroom.core.sync import peers as peer_store
from strongroom.core.sync.settings import SyncSettings
from strongroom.core.sync.tables import synced

_peers, _state = SyncPeer.__table__, SyncState.__table__
_quarantine, _conflicts = SyncQuarantine.__table__, SyncConflict.__table__
MAX_PAGE = 500


def quarantined_by_peer(conn: Connection) -> dict[uuid.UUID | None, int]:
    """Open quarantined rows per peer id (None: a peer since forgotten)."""
    return dict(conn.execute(select(_quarantine.c.peer_id, func.count()).where(_quarantine.c.status == "open")
                             .group_by(_quarantine.c.peer_id)).all())


def _tables(conn: Connection, peer: dict) -> list[dict]:
    marks: dict[tuple[str, str], tuple[int, datetime]] = {
        (r.table_name, r.direction): (r.watermark, r.updated_at)
        for r in conn.execute(select(_state.c.table_name, _state.c.direction, _state.c.watermark,
                                     _state.c.updated_at).where(_state.c.peer_id == peer["id"]))}
    out = []
    for spec in synced():
        push, pull = marks.get((spec.name, peer_store.PUSH)), marks.get((spec.name, peer_store.PULL))
        pending = None
        if peer["direction"] != peer_store.PULL and not peer["inbound"]:
            pending = peer_store.pending_in(conn, spec.table, push[0] if push else 0, peer["site_id"])
        touched = [m[1] for m in (push, pull) if m is not None]
        out.append({"table": spec.name, "push_watermark": push[0] if push else 0,
                    "pull_watermark": pull[0] if pull else 0, "pending_rows": pending,
                    "last_moved_at": max(touched) if touched else None})
    return out


def status(conn: Connection, settings: SyncSettings, *, now: datetime | None = None) -> dict:
    """Every peer (outbound first, then the sites that sync with us) with lag in time and
    rows, failures, the last error, the next attempt, clock skew, open conflicts and open
    quarantined rows, and per table its watermarks; plus the totals."""
    now = now or utcnow()
    quarantined = quarantined_by_peer(conn)
    max_lag = settings.max_lag_minutes * 60
    peers = []
    for peer in peer_store.list_peers(conn, now=now):
        skew = peer["clock_skew_seconds"]
        lag = peer["seconds_since_sync"]
        peers.append({
            **{k: peer[k] for k in ("id", "name", "url", "direction", "is_active", "inbound", "site_id",
                                    "last_sync_at", "failures", "last_error", "next_attempt_at",
                                    "clock_skew_seconds", "open_conflicts")},
            "lag_seconds": lag, "pending_rows": peer["pending_changes"],
            "lagging": (not peer["inbound"] and peer["is_active"] and (lag is None or lag > max_lag)),
            "skew_exceeded": skew is not None and abs(skew) > settings.clock_skew_seconds,
            "quarantined": quarantined.get(peer["id"], 0),
            "tables": _tables(conn, peer),
        })
    peers.sort(key=lambda p: (p["inbound"], p["name"]))
    open_conflicts = conn.execute(select(func.count()).select_from(_conflicts)
                                  .where(_conflicts.c.status == "open")).scalar_one()
    return {"peers": peers, "open_conflicts": open_conflicts, "quarantined": sum(quarantined.values()),
            "max_lag_minutes": settings.max_lag_minutes, "clock_skew_seconds": settings.clock_skew_seconds}


def list_quarantine(conn: Connection, *, status: str | None = "open", limit: int = 50,
                    after_id: uuid.UUID | None = None) -> list[dict]:
    """Quarantined rows, oldest id first (page with after_id): id, peer, table, row id,
    reason, detail, status and when it arrived. Never the image."""
    names = dict(conn.execute(select(_peers.c.id, _peers.c.name)).all())
    query = select(_quarantine.c.id, _quarantine.c.peer_id, _quarantine.c.table_name, _quarantine.c.row_id,
                   _quarantine.c.reason, _quarantine.c.detail, _quarantine.c.status,
                   _quarantine.c.received_at).order_by(_quarantine.c.id).limit(min(limit, MAX_PAGE))
    if status is not None:
        query = query.where(_quarantine.c.status == status)
    if after_id is not None:
        query = query.where(_quarantine.c.id > after_id)
    return [{"id": r.id, "peer": names.get(r.peer_id), "table": r.table_name, "row_id": r.row_id,
             "reason": r.reason, "detail": r.detail, "status": r.status, "received_at": r.received_at}
            for r in conn.execute(query)]
