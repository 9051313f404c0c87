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
from tests.core.conftest import READER, seed_clients


def test_a_standby_keyring_forgets_a_key_the_leader_destroyed(ctx):
    ids = seed_clients(ctx, n=3)
    standby = Keyring(load_keks(ctx.settings.keys))          # another process, its own cache
    with transaction(ctx.engine) as conn:
        watermark = forget_destroyed(standby, conn)
        assert get_client(conn, standby, READER, ids[0])["id"] == ids[0]   # now cached there
    with transaction(ctx.engine) as conn:
        request = erasure.request_erasure(conn, client_id=ids[0], actor="user:alice", reason="ref 3")
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob")
    with transaction(ctx.engine) as conn:
        assert forget_destroyed(standby, conn, watermark) > watermark
    with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
        with transaction(ctx.engine) as conn:
            get_client(conn, standby, READER, ids[0], include_deleted=True)
    with transaction(ctx.engine) as conn:
        assert get_client(conn, standby, READER, ids[1])["id"] == ids[1]
