"""Keys destroyed elsewhere leave this process's key cache.

A Keyring caches unwrapped data keys for its life. The process that destroys a key
(an erasure, `keys destroy-retired`) forgets it at once, but another process on the
same database (the standby daemon, which answers requests while the leader runs jobs)
would go on decrypting the erased client with its cached copy until restarted. The
daemon therefore calls `forget_destroyed` on a short period: one indexed query for key
records destroyed since the last call (data_keys.sync_version, which a trigger moves on
every change), and each is dropped from the cache.
"""
from __future__ import annotations

from sqlalchemy import Connection, select

from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import DataKey, KeyState

_keys = DataKey.__table__


def forget_destroyed(keyring: Keyring, conn: Connection, after_version: int = 0) -> int:
    """Drop from `keyring`'s cache every key destroyed with a record version above
    `after_version`; returns the version to pass next time."""
    rows = conn.execute(select(_keys.c.id, _keys.c.sync_version).where(
        _keys.c.state == KeyState.DESTROYED, _keys.c.sync_version > after_version)).all()
    for row in rows:
        keyring.forget(row.id)
    return max([after_version, *(r.sync_version for r in rows)])
