"""Peers from the config file: `[sync.peers.NAME]` brought into `sync_peers`.

The daemon applies them at start and on SIGHUP (as backup configurations are). A peer
named in the file is added when missing and its address, direction and per-table
strategies follow the file when they differ; whether it is paused stays the operator's
(`strongroom sync peer pause|resume`), so a reload does not undo a pause. A peer that
leaves the file is left alone: it may have been added with `strongroom sync peer add`,
and removing a peer is a deliberate act (`strongroom sync peer remove`).

Each change is audited (CONFIG) by name and by the fields that changed, never by the
address: it may hold a password.
"""
from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, select, update

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import SyncPeer
from strongroom.core.errors import StrongroomError, ValidationError
from strongroom.core.sync import peers as peer_store
from strongroom.core.sync.settings import SyncSettings

_peers = SyncPeer.__table__


def apply_one(conn: Connection, name: str, url: str, direction: str, strategies: dict, *,
              actor: str = "system") -> uuid.UUID:
    """Bring one configured peer's row in line with the file; returns its id."""
    try:
        url = peer_store.check_url(name, url)
    except ValidationError as exc:
        raise ValidationError(f"[sync.peers.{name}]: {str(exc).split(': ', 1)[-1]}") from None
    existing = conn.execute(select(_peers).where(_peers.c.name == name)).mappings().first()
    if existing is None:
        peer_id = peer_store.add_peer(conn, name, url, direction=direction)
        conn.execute(update(_peers).where(_peers.c.id == peer_id).values(strategies=dict(strategies)))
        audit.append(conn, actor=actor, action="CONFIG", table_name="sync_peers", record_id=peer_id,
                     details={"event": "sync_peer_added", "peer": name, "source": "config"})
        return peer_id
    wanted = {"url": url, "direction": direction, "strategies": dict(strategies)}
    changed = sorted(k for k, v in wanted.items() if existing[k] != v)
    if changed:
        conn.execute(update(_peers).where(_peers.c.id == existing["id"]).values(**wanted))
        audit.append(conn, actor=actor, action="CONFIG", table_name="sync_peers", record_id=existing["id"],
                     details={"event": "sync_peer_updated", "peer": name, "fields": changed, "source": "config"})
    return existing["id"]


def apply(conn: Connection, settings: SyncSettings, *, actor: str = "system") -> dict[str, uuid.UUID]:
    """Every `[sync.peers.NAME]` into `sync_peers`; returns name -> id."""
    return {name: apply_one(conn, name, peer.url, peer.direction, peer.strategies, actor=actor)
            for name, peer in sorted(settings.peers.items())}


def apply_configured_peers(engine: Engine, settings: SyncSettings) -> dict[str, uuid.UUID]:
    """`apply` in a transaction of its own, one peer at a time: a peer the file gets wrong
    (an address a check refuses) is skipped and reported, and the others still apply.
    Returns name -> id of the peers applied; raises the first error after trying all."""
    applied, failed = {}, []
    for name, peer in sorted(settings.peers.items()):
        try:
            with transaction(engine) as conn:
                applied[name] = apply_one(conn, name, peer.url, peer.direction, peer.strategies)
        except StrongroomError as exc:
            failed.append(exc)
    if failed:
        raise failed[0]
    return applied
