"""Sync peers and how far behind each is.

`sync_state` keeps one watermark per peer, table and direction: `push` is the highest
local `sync_version` the peer has received, `pull` the highest of the peer's that this
database has applied. Lag is then two plain figures: the time since the last sync, and
the local changes the peer has not received yet (rows whose `sync_version` is above the
push watermark of their table; an index range scan, never a table scan).
"""
from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Table, func, insert, select, update

from strongroom.core.db.models import Base, SyncPeer, SyncState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ValidationError
from strongroom.core.ids import new_id
from strongroom.core.sync.conflicts import count_open

PUSH, PULL = "push", "pull"
DIRECTIONS = ("both", PUSH, PULL)
_peers = SyncPeer.__table__
_state = SyncState.__table__


_SYNCABLE = ("sync_version", "data_checksum", "deleted_at")


def synced_tables() -> list[Table]:
    """Every table whose rows carry all the Syncable columns. A sync_version alone does
    not make a table synced: data_keys and retention_archive carry one only so that
    incremental backups take their changed rows; keys wrapped with this site's KEK and
    this site's retention ledger are not rows a peer takes."""
    return [t for t in Base.metadata.sorted_tables if all(c in t.c for c in _SYNCABLE)]


def redact_url(url: str) -> str:
    """A peer address fit to show: any password in it replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def add_peer(conn: Connection, name: str, url: str, *, direction: str = "both",
             last_sync_at: datetime | None = None) -> uuid.UUID:
    """Register a peer; the name is how people and logs refer to it."""
    name = name.strip()
    if not 1 <= len(name) <= 120:
        raise ValidationError("sync peer name must be 1 to 120 characters")
    if not url.strip() or len(url) > 500:
        raise ValidationError(f"sync peer {name}: url must be 1 to 500 characters")
    if direction not in DIRECTIONS:
        raise ValidationError(f"sync peer {name}: direction must be one of {', '.join(DIRECTIONS)}")
    peer_id = new_id()
    conn.execute(insert(_peers), [{"id": peer_id, "name": name, "url": url.strip(), "direction": direction,
                                   "strategies": {}, "is_active": True, "last_sync_at": last_sync_at,
                                   "created_at": utcnow()}])
    return peer_id


def set_watermark(conn: Connection, peer_id: uuid.UUID, table_name: str, direction: str,
                  watermark: int) -> None:
    """Record how far a peer has synced one table in one direction (push or pull)."""
    if direction not in (PUSH, PULL):
        raise ValidationError(f"sync watermark: direction must be {PUSH} or {PULL}")
    if table_name not in {t.name for t in synced_tables()}:
        raise ValidationError(f"sync watermark: {table_name!r} is not a synced table")
    key = (_state.c.peer_id == peer_id, _state.c.table_name == table_name, _state.c.direction == direction)
    values = {"watermark": watermark, "updated_at": utcnow()}
    if conn.execute(update(_state).where(*key).values(**values)).rowcount == 0:
        conn.execute(insert(_state), [{"id": new_id(), "peer_id": peer_id, "table_name": table_name,
                                       "direction": direction, **values}])


def _pending(conn: Connection, watermarks: dict[str, int]) -> int:
    total = 0
    for table in synced_tables():
        total += conn.execute(select(func.count()).select_from(table)
                              .where(table.c.sync_version > watermarks.get(table.name, 0))).scalar_one()
    return total


def list_peers(conn: Connection, *, now: datetime | None = None) -> list[dict]:
    """Every peer with its lag: seconds since the last sync, local changes not yet sent
    (None for a pull-only peer) and open conflicts. Passwords in addresses are masked."""
    now = now or utcnow()
    open_by_peer = count_open(conn)
    watermarks: dict[uuid.UUID, dict[str, dict[str, int]]] = {}
    for row in conn.execute(select(_state.c.peer_id, _state.c.table_name, _state.c.direction, _state.c.watermark)):
        watermarks.setdefault(row.peer_id, {}).setdefault(row.direction, {})[row.table_name] = row.watermark
    peers = []
    for row in conn.execute(select(_peers).order_by(_peers.c.name)).mappings():
        marks = watermarks.get(row["id"], {})
        last = row["last_sync_at"]
        peers.append({
            "id": row["id"], "name": row["name"], "url": redact_url(row["url"]),
            "direction": row["direction"], "is_active": row["is_active"], "last_sync_at": last,
            "seconds_since_sync": None if last is None else max(0.0, round((now - last).total_seconds(), 1)),
            "pending_changes": None if row["direction"] == PULL else _pending(conn, marks.get(PUSH, {})),
            "open_conflicts": open_by_peer.get(row["id"], 0),
        })
    return peers
