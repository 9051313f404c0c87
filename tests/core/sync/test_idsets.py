"""core.sync.idsets: `column IN (ids)` as one bound value, on either engine."""
from __future__ import annotations

import re
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


def test_among_hands_the_database_its_ids_as_one_value_read_once(ctx):
    """A pass asks about a batch of 2,000 ids of tables that may be small (a new site's
    data keys, its clients), which the database then reads whole rather than by index.
    The ids must then be one value, made once: on PostgreSQL a uuid[] (their text cast
    to one in the query was made again for every row read: 2.7 s for 2,000 data keys
    against 2,000 ids, where the index read took 6 ms); on SQLite a list subquery run
    once, not for each row."""
    seed_clients(ctx, n=3)
    asked = [*client_ids(ctx), *(uuid.uuid4() for _ in range(50))]
    with transaction(ctx.engine, read_only=True) as conn:
        query = select(_clients.c.id).where(among(conn, _clients.c.id, asked))
        compiled = query.compile(dialect=conn.dialect)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
            conn.exec_driver_sql("SET LOCAL enable_indexonlyscan = off")
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
            plan = "\n".join(conn.exec_driver_sql("EXPLAIN " + compiled.string, compiled.params).scalars())
            assert "Seq Scan on clients" in plan
            assert re.search(r"Filter: \(id = ANY \('\{[0-9a-f,-]+\}'::uuid\[\]\)\)", plan), plan
        else:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string,
                                        tuple(compiled.params[k] for k in compiled.positiontup)).all()
            details = [row[-1] for row in plan]
            assert any("LIST SUBQUERY" in d for d in details) and not any("CORRELATED" in d for d in details), details
        assert len(conn.execute(query).all()) == 3
