"""Sync peers and how far behind each is.

`sync_state` keeps one watermark per peer, table and direction: `push` is the highest
local `sync_version` the peer has received, `pull` the highest of the peer's that this
database has applied. Lag is then two plain figures: the time since the last sync, and
the local changes the peer has not received yet (rows whose `sync_version` is above the
push watermark of their table; an index range scan, never a table scan).
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Connection, Table, delete, func, insert, select, update
from sqlalchemy.engine import make_url

from strongroom.core.db.engine import normalise_url
from strongroom.core.db.models import SyncPeer, SyncState
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.sync.conflicts import count_open

PUSH, PULL = "push", "pull"
DIRECTIONS = ("both", PUSH, PULL)
_peers = SyncPeer.__table__
_state = SyncState.__table__


def outbound():
    """Peers this site reaches: not removed, not a site that syncs with us (inbound)."""
    return (~_peers.c.url.startswith("removed:")) & (~_peers.c.url.startswith("inbound:"))


def active_outbound(conn: Connection) -> list[dict]:
    """The peers a pass (or a consistency check) goes to, by name."""
    return [dict(r) for r in conn.execute(select(_peers).where(_peers.c.is_active.is_(True), outbound())
                                          .order_by(_peers.c.name)).mappings()]


def synced_tables() -> list[Table]:
    """The tables a sync pass moves rows of (core.sync.tables), in the order it moves them."""
    from strongroom.core.sync.tables import synced
    return [spec.table for spec in synced()]


WATERMARKED = ("data_keys",)   # moved by sync, but not as Syncable rows (core.sync.keys)
LOOPBACK = ("localhost", "127.0.0.1", "::1", "")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_url(name: str, url: str) -> str:
    """A peer's database URL, checked: SQLite (a file) or PostgreSQL, and PostgreSQL off
    this machine only with TLS that verifies the server (sslmode=verify-full). Errors
    name the peer and the rule, never the URL (it may hold a password)."""
    url = (url or "").strip()
    if not url or len(url) > 500:
        raise ValidationError(f"sync peer {name}: url must be 1 to 500 characters")
    try:
        parsed = make_url(normalise_url(url))
    except Exception:
        raise ValidationError(f"sync peer {name}: url is not a database URL "
                              "(sqlite:////path/to/strongroom.db or postgresql://user@host/db)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ValidationError(f"sync peer {name}: a SQLite peer needs a database file path")
        return url
    if backend != "postgresql":
        raise ValidationError(f"sync peer {name}: only sqlite and postgresql peers are supported")
    host = (parsed.host or "").strip("[]")
    if host not in LOOPBACK and not host.startswith("/") and parsed.query.get("sslmode") != "verify-full":
        raise ValidationError(f"sync peer {name}: a PostgreSQL peer off this machine must use TLS with "
                              "certificate verification (add ?sslmode=verify-full to the url)")
    return url


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
    name = (name or "").strip()
    if not NAME.match(name):
        raise ValidationError("sync peer name must be 1 to 64 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")
    url = check_url(name, url)
    if direction not in DIRECTIONS:
        raise ValidationError(f"sync peer {name}: direction must be one of {', '.join(DIRECTIONS)}")
    if conn.execute(select(_peers.c.id).where(_peers.c.name == name)).first() is not None:
        raise ConflictError(f"sync peer {name} already exists")
    peer_id = new_id()
    conn.execute(insert(_peers), [{"id": peer_id, "name": name, "url": url, "direction": direction,
                                   "strategies": {}, "is_active": True, "last_sync_at": last_sync_at,
                                   "created_at": utcnow(), "failures": 0}])
    return peer_id


def get_peer(conn: Connection, name: str, *, for_update: bool = False) -> dict:
    query = select(_peers).where(_peers.c.name == name, ~_peers.c.url.startswith("inbound:"))
    row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
    if row is None:
        raise NotFoundError("no such sync peer (see strongroom sync peer list)")
    return dict(row)


def remove_peer(conn: Connection, name: str) -> dict:
    """Forget a peer with its watermarks; its resolved conflicts stay as evidence, and a
    peer with open conflicts is refused (resolve them first)."""
    from strongroom.core.db.models import SyncConflict
    peer = get_peer(conn, name, for_update=True)
    conflicts = SyncConflict.__table__
    still_open = conn.execute(select(func.count()).select_from(conflicts).where(
        conflicts.c.peer_id == peer["id"], conflicts.c.status == "open")).scalar_one()
    if still_open:
        raise ConflictError(f"sync peer {name} has {still_open} open conflicts; resolve them before removing it")
    conn.execute(delete(_state).where(_state.c.peer_id == peer["id"]))
    conn.execute(update(_peers).where(_peers.c.id == peer["id"])
                 .values(is_active=False, url=f"removed:{peer['id']}", name=f"removed-{peer['id'].hex[:12]}"))
    return peer


def set_active(conn: Connection, name: str, active: bool) -> dict:
    peer = get_peer(conn, name, for_update=True)
    conn.execute(update(_peers).where(_peers.c.id == peer["id"]).values(is_active=active, next_attempt_at=None))
    return {**peer, "is_active": active}


def record_success(conn: Connection, peer_id: uuid.UUID, *, site: str, now: datetime,
                   skew_seconds: float | None) -> None:
    conn.execute(update(_peers).where(_peers.c.id == peer_id).values(
        last_sync_at=now, last_attempt_at=now, failures=0, last_error=None, next_attempt_at=None, site_id=site,
        clock_skew_ms=None if skew_seconds is None else round(skew_seconds * 1000)))


def record_failure(conn: Connection, peer_id: uuid.UUID, *, error: str, now: datetime,
                   retry_delay_seconds: int, max_delay_seconds: int = 3600) -> int:
    """Count a failed pass; the next scheduled attempt waits `retry_delay * 2^(n-1)`
    (capped). Returns the number of failures in a row."""
    failures = (conn.execute(select(_peers.c.failures).where(_peers.c.id == peer_id)).scalar() or 0) + 1
    delay = min(max_delay_seconds, retry_delay_seconds * 2 ** min(failures - 1, 16))
    conn.execute(update(_peers).where(_peers.c.id == peer_id).values(
        failures=failures, last_error=error[:500], last_attempt_at=now,
        next_attempt_at=now + timedelta(seconds=delay)))
    return failures


def set_watermark(conn: Connection, peer_id: uuid.UUID, table_name: str, direction: str,
                  watermark: int, after_id: uuid.UUID | None = None) -> None:
    """Record how far a peer has synced one table in one direction (push or pull): every
    row below version `watermark`, and of that version those up to `after_id` (all of
    them when None)."""
    if direction not in (PUSH, PULL):
        raise ValidationError(f"sync watermark: direction must be {PUSH} or {PULL}")
    if table_name not in {t.name for t in synced_tables()} | set(WATERMARKED):
        raise ValidationError(f"sync watermark: {table_name!r} is not a synced table")
    key = (_state.c.peer_id == peer_id, _state.c.table_name == table_name, _state.c.direction == direction)
    values = {"watermark": watermark, "after_id": after_id, "updated_at": utcnow()}
    if conn.execute(update(_state).where(*key).values(**values)).rowcount == 0:
        conn.execute(insert(_state), [{"id": new_id(), "peer_id": peer_id, "table_name": table_name,
                                       "direction": direction, **values}])


def pending_in(conn: Connection, table: Table, watermark: int, peer_site: str | None) -> int:
    """Rows of `table` changed past the push watermark, less those received from this very
    peer and not changed since (a pass never sends those back: no echo)."""
    from strongroom.core.db.models import SyncRow
    meta = SyncRow.__table__
    query = select(func.count()).select_from(table).where(table.c.sync_version > watermark)
    if peer_site is not None:
        query = (query.select_from(table.outerjoin(meta, (meta.c.table_name == table.name)
                                                   & (meta.c.row_id == table.c.id)))
                 .where((meta.c.source.is_(None)) | (meta.c.source != peer_site)
                        | (meta.c.version != table.c.sync_version)))
    return conn.execute(query).scalar_one()


def _pending(conn: Connection, watermarks: dict[str, int], peer_site: str | None) -> int:
    """`pending_in` over every synced table."""
    return sum(pending_in(conn, table, watermarks.get(table.name, 0), peer_site) for table in synced_tables())


def list_peers(conn: Connection, *, now: datetime | None = None) -> list[dict]:
    """Every peer with its lag: seconds since the last sync, local changes not yet sent
    (None for a pull-only peer) and open conflicts. Passwords in addresses are masked."""
    now = now or utcnow()
    open_by_peer = count_open(conn)
    watermarks: dict[uuid.UUID, dict[str, dict[str, int]]] = {}
    for row in conn.execute(select(_state.c.peer_id, _state.c.table_name, _state.c.direction, _state.c.watermark)):
        watermarks.setdefault(row.peer_id, {}).setdefault(row.direction, {})[row.table_name] = row.watermark
    peers = []
    for row in conn.execute(select(_peers).where(~_peers.c.url.startswith("removed:"))
                            .order_by(_peers.c.name)).mappings():
        marks = watermarks.get(row["id"], {})
        last = row["last_sync_at"]
        peers.append({
            "id": row["id"], "name": row["name"], "url": redact_url(row["url"]),
            "direction": row["direction"], "is_active": row["is_active"], "last_sync_at": last,
            "seconds_since_sync": None if last is None else max(0.0, round((now - last).total_seconds(), 1)),
            "pending_changes": None if row["direction"] == PULL else _pending(conn, marks.get(PUSH, {}), row["site_id"]),
            "open_conflicts": open_by_peer.get(row["id"], 0),
            # An inbound peer is a site that syncs with us; we do not reach it.
            "inbound": row["url"].startswith("inbound:"), "site_id": row["site_id"],
            "failures": row["failures"], "last_error": row["last_error"],
            "next_attempt_at": row["next_attempt_at"], "clock_skew_seconds": None if row["clock_skew_ms"] is None else row["clock_skew_ms"] / 1000,
        })
    return peers
