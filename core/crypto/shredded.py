"""Keys destroyed elsewhere leave this process's key cache.

A Keyring caches unwrapped data keys for its life. The process that destroys a key
(an erasure, `keys destroy-retired`) forgets it at once, but another process on the
same database (the standby daemon, which answers requests while the leader runs jobs)
would go on decrypting the erased client with its cached copy until restarted. The
daemon therefore calls `forget_destroyed` on a short period: one indexed query for key
records destroyed since the last call (data_keys.sync_version, which a trigger moves on
every change), and each is dropped from the cache. That covers keys destroyed by a sync
pass too, whether the daemon ran it, another process did, or a peer pushed into this
database: the pass writes the destroyed state here, and the trigger moves the version.

On PostgreSQL versions come from a sequence, so a transaction holding a lower version can
commit after one holding a higher: a watermark moved to the highest version seen could
step over a key destroyed in the slower transaction. Writers hold the change lock shared
until they commit (core.repository.changes); the watermark moves only when the lock can
be taken at once, exclusively, before reading (no writer in flight, so nothing below can
still appear). Otherwise the keys found are forgotten and the watermark stays, to be read
again next time: forgetting twice costs nothing, and destroyed keys are few.
"""
from __future__ import annotations

from sqlalchemy import Connection, select, text

from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import DataKey, KeyState
from strongroom.core.db.pg import CHANGE_LOCK_KEY

_keys = DataKey.__table__


def forget_destroyed(keyring: Keyring, conn: Connection, after_version: int = 0) -> int:
    """Drop from `keyring`'s cache every key destroyed with a record version above
    `after_version`; returns the version to pass next time."""
    settled = _no_writer_in_flight(conn)
    rows = conn.execute(select(_keys.c.id, _keys.c.sync_version).where(
        _keys.c.state == KeyState.DESTROYED, _keys.c.sync_version > after_version)).all()
    for row in rows:
        keyring.forget(row.id)
    if not settled:
        return after_version
    return max([after_version, *(r.sync_version for r in rows)])


def _no_writer_in_flight(conn: Connection) -> bool:
    """PostgreSQL: take the change lock exclusively if no writer holds it (released with
    the caller's transaction; it holds up writers only for the one indexed read). SQLite
    commits in version order."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": CHANGE_LOCK_KEY}).scalar())
