"""A key destroyed by one process leaves another process's cache (the standby daemon's)."""
from __future__ import annotations

import pytest

from strongroom.core.crypto.kek import load_keks
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.crypto.shredded import forget_destroyed
from strongroom.core.db.engine import transaction
from strongroom.core.errors import KeyUnavailableError
from strongroom.core.repository.clients import get_client
from strongroom.core.retention import erasure
from strongroom.core.files.store import open_files_target
from tests.core.conftest import READER, seed_clients


def test_a_standby_keyring_forgets_a_key_the_leader_destroyed(ctx):
    ids = seed_clients(ctx, n=3)
    standby = Keyring(load_keks(ctx.settings.keys))          # another process, its own cache
    with transaction(ctx.engine) as conn:
        watermark = forget_destroyed(standby, conn)
        assert get_client(conn, standby, READER, ids[0])["id"] == ids[0]   # now cached there
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=ids[0], actor="user:alice", reason="ref 3")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    with transaction(ctx.engine) as conn:
        assert forget_destroyed(standby, conn, watermark) > watermark
    with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
        with transaction(ctx.engine) as conn:
            get_client(conn, standby, READER, ids[0], include_deleted=True)
    with transaction(ctx.engine) as conn:
        assert get_client(conn, standby, READER, ids[1])["id"] == ids[1]



def _key_of(engine, client_id):
    from sqlalchemy import select
    from strongroom.core.db.models import DataKey
    keys = DataKey.__table__
    with transaction(engine, read_only=True) as conn:
        return conn.execute(select(keys.c.id).where(keys.c.client_id == client_id)).scalar_one()


def _cache(keyring, engine, key_id) -> None:
    """The key unwrapped into `keyring`'s cache, as a daemon's command would leave it."""
    with transaction(engine, read_only=True) as conn:
        keyring.cipher(conn, key_id)


def _still_opens(keyring, engine, key_id) -> bool:
    """Whether `keyring` would still hand out the key (from its cache: the database says destroyed)."""
    try:
        with transaction(engine, read_only=True) as conn:
            keyring.cipher(conn, key_id)
    except KeyUnavailableError:
        return False
    return True


def test_keys_a_peer_destroyed_and_a_sync_pass_brought_here_leave_the_daemon_keyring(ctx, first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    erased = _first_client(first_site)
    key_id = _key_of(ctx.engine, erased)
    daemon = Keyring(load_keks(ctx.settings.keys))          # the central daemon's own cache
    with transaction(ctx.engine) as conn:
        watermark = forget_destroyed(daemon, conn)
    _cache(daemon, ctx.engine, key_id)
    with transaction(laptop.engine) as conn:                # the erasure happens at the laptop
        laptop.keyring.destroy_client_keys(conn, erased)
    laptop.sync(first_site)                                 # run by the laptop's process, not the daemon
    assert _still_opens(daemon, ctx.engine, key_id)         # cached: the daemon would go on using it
    with transaction(ctx.engine) as conn:
        forget_destroyed(daemon, conn, watermark)
    assert not _still_opens(daemon, ctx.engine, key_id)


def _first_client(site):
    from sqlalchemy import select
    from strongroom.core.db.models import Client
    with transaction(site.engine, read_only=True) as conn:
        return conn.execute(select(Client.__table__.c.id).order_by(Client.__table__.c.id).limit(1)).scalar_one()


def test_a_key_destroyed_in_a_transaction_that_commits_late_is_still_forgotten(ctx):
    """PostgreSQL hands out key versions from a sequence, so a transaction holding a lower
    version can commit after one holding a higher: the watermark must not pass it."""
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: versions commit in order")
    first, second = seed_clients(ctx, n=2)[:2]
    standby = Keyring(load_keks(ctx.settings.keys))
    keys = {c: _key_of(ctx.engine, c) for c in (first, second)}
    for key_id in keys.values():
        _cache(standby, ctx.engine, key_id)
    with transaction(ctx.engine) as conn:
        watermark = forget_destroyed(standby, conn)
    slow = ctx.engine.connect()
    slow_tx = slow.begin()
    ctx.keyring.destroy_client_keys(slow, first)            # lower version, not yet committed
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, second)       # higher version, committed first
    with ctx.engine.connect() as conn:
        watermark = forget_destroyed(standby, conn, watermark)
    slow_tx.commit()
    slow.close()
    assert not _still_opens(standby, ctx.engine, keys[second])
    with ctx.engine.connect() as conn:
        forget_destroyed(standby, conn, watermark)
    assert not _still_opens(standby, ctx.engine, keys[first])
