"""core.sync.idsets: `column IN (ids)` as one bound value, on either engine."""
from __future__ import annotations

import uuid

from sqlalchemy import select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client
from strongroom.core.sync.idsets import among, held
from tests.core.conftest import client_ids, seed_clients

_clients = Client.__table__


def test_among_finds_the_ids_held_and_only_those(ctx):
    seed_clients(ctx, n=4)
    ids = client_ids(ctx)
    stranger = uuid.uuid4()
    with transaction(ctx.engine, read_only=True) as conn:
        asked = [ids[0], ids[2], stranger]
        found = conn.execute(select(_clients.c.id).where(among(conn, _clients.c.id, asked))).scalars().all()
        assert sorted(found) == sorted([ids[0], ids[2]])
        assert conn.execute(select(_clients.c.id).where(among(conn, _clients.c.id, []))).all() == []
        assert held(conn, _clients.c.id, {*ids[:3], stranger, None}) == set(ids[:3])


def test_among_takes_values_that_are_not_uuids(ctx):
    seed_clients(ctx, n=3)
    with transaction(ctx.engine, read_only=True) as conn:
        rows = conn.execute(select(_clients.c.id, _clients.c.data_checksum).order_by(_clients.c.id)).all()
        asked = [rows[1].data_checksum, "0" * 64]
        found = conn.execute(select(_clients.c.id).where(among(conn, _clients.c.data_checksum, asked))).scalars().all()
        assert found == [rows[1].id]
