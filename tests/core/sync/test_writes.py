"""core.sync.writes: a batch written by sync is stored exactly as SQLAlchemy stores it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import TherapySession
from strongroom.core.sync.writes import write_rows
from tests.core.conftest import seed_clients

_sessions = TherapySession.__table__
TRICKY = [datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc),                          # no microseconds
          datetime(2024, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),   # not UTC
          datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)]                      # a three-digit year


def _stored(conn) -> list[tuple]:
    """The rows as the engine holds them (SQLite: the text it stores)."""
    if conn.dialect.name == "sqlite":
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT id, starts_at, created_at, updated_at, deleted_at FROM therapy_sessions ORDER BY id")]
    return [tuple(r) for r in conn.execute(select(_sessions.c.id, _sessions.c.starts_at, _sessions.c.created_at,
                                                  _sessions.c.updated_at, _sessions.c.deleted_at)
                                           .order_by(_sessions.c.id))]


def test_datetimes_written_by_a_batch_are_stored_as_sqlalchemy_stores_them(ctx):
    seed_clients(ctx, n=3)
    with ctx.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(_sessions).order_by(_sessions.c.id)).mappings()]
    rows = [{**r, "starts_at": moment, "updated_at": moment + timedelta(seconds=1), "deleted_at": moment}
            for r, moment in zip(rows, TRICKY * len(rows))]
    with transaction(ctx.engine) as conn:
        conn.execute(_sessions.delete())
        conn.execute(insert(_sessions), rows)
        expected = _stored(conn)
        conn.execute(_sessions.delete())
        write_rows(conn, _sessions, rows[:2])
        write_rows(conn, _sessions, rows, keys=("id",))
        assert _stored(conn) == expected


def test_a_naive_datetime_is_refused(ctx):
    seed_clients(ctx, n=1)
    with ctx.engine.connect() as conn:
        row = dict(conn.execute(select(_sessions)).mappings().first())
    with pytest.raises(Exception, match="naive"), transaction(ctx.engine) as conn:
        write_rows(conn, _sessions, [{**row, "starts_at": datetime(2024, 1, 1)}], keys=("id",))


def test_an_update_that_leaves_its_indexed_columns_alone_stores_every_other_column(ctx):
    """`unchanged` columns are not set (their indexes stay as they are); every other
    column is, and a row that is new is inserted whole."""
    seed_clients(ctx, n=3)
    with ctx.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(_sessions).order_by(_sessions.c.id)).mappings()]
    edited = [{**r, "duration_minutes": r["duration_minutes"] + 7, "sync_version": r["sync_version"] + 100}
              for r in rows[1:]]
    with transaction(ctx.engine) as conn:
        conn.execute(_sessions.delete().where(_sessions.c.id == rows[0]["id"]))
        write_rows(conn, _sessions, [rows[0], *edited], keys=("id",),
                   unchanged=("client_id", "key_id", "starts_at", "practice_id"))
    with ctx.engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(_sessions).order_by(_sessions.c.id)).mappings()]
        by_client = conn.execute(select(_sessions.c.id).where(_sessions.c.client_id == rows[1]["client_id"],
                                                             _sessions.c.starts_at == rows[1]["starts_at"])).all()
    assert stored == [rows[0], *edited]
    assert rows[1]["id"] in {r[0] for r in by_client}       # the index still finds the row


def test_json_text_already_encoded_is_stored_as_the_document_it_encodes(ctx):
    """A version's dots and hashes that pass through a pass undecoded (jsoncodec.Encoded)
    are stored as the documents their text encodes, exactly as the same values given as
    dicts, never as JSON strings; by the writer's COPY (PostgreSQL), its executemany
    (SQLite), and the executemany that fills defaults (a row short of a column)."""
    import uuid

    from strongroom.core.db.jsoncodec import Encoded
    from strongroom.core.db.models import SyncRow
    meta = SyncRow.__table__
    dots, hashes = {"*": ["site-a", 7], "notes": ["site-b", 9]}, {"notes": "q1w2e3r4", "status": "a1s2d3f4"}
    ids = [uuid.uuid4() for _ in range(4)]

    def row(rid, as_text: bool, whole: bool = True) -> dict:
        out = {"table_name": "therapy_sessions", "row_id": rid, "origin": "site-a", "hlc": 9, "vv": {"site-a": 9},
               "dots": Encoded('{"*":["site-a",7],"notes":["site-b",9]}') if as_text else dots,
               "hashes": Encoded('{"notes":"q1w2e3r4","status":"a1s2d3f4"}') if as_text else hashes,
               "source": None, "pending": None, "version": 3}
        if not whole:
            del out["pending"]
        return out

    with transaction(ctx.engine) as conn:
        write_rows(conn, meta, [row(ids[0], True), row(ids[1], False)], keys=("table_name", "row_id"))
        write_rows(conn, meta, [row(ids[2], True, whole=False), row(ids[3], False, whole=False)],
                   keys=("table_name", "row_id"))
        stored = {r.row_id: (r.dots, r.hashes) for r in conn.execute(select(meta.c.row_id, meta.c.dots,
                                                                             meta.c.hashes))}
    assert [stored[i] for i in ids] == [(dots, hashes)] * 4
