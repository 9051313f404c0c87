"""Batch writes: through COPY on PostgreSQL, an executemany on SQLite, the same rows either way."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from strongroom.core.db.bulkwrite import upsert, write_rows
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import TherapySession
from tests.core.conftest import seed_clients

_sessions = TherapySession.__table__


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(_sessions).order_by(_sessions.c.id)).mappings()]


def test_rows_written_in_a_batch_read_back_as_the_statement_by_statement_write_left_them(ctx):
    seed_clients(ctx, n=12)
    originals = _rows(ctx.engine)
    with transaction(ctx.engine) as conn:
        conn.execute(_sessions.delete())
        write_rows(conn, _sessions, originals[:5])                      # plain inserts
        write_rows(conn, _sessions, originals[5:])                      # a second batch, one transaction
    assert _rows(ctx.engine) == originals     # enums, bytes, NULLs and datetimes all as they were


def test_an_upsert_updates_the_rows_that_exist_and_inserts_the_others(ctx):
    seed_clients(ctx, n=10)
    originals = _rows(ctx.engine)
    changed = [{**r, "status": "CANCELLED", "sync_version": r["sync_version"] + 100} for r in originals[:4]]
    with transaction(ctx.engine) as conn:
        conn.execute(_sessions.delete().where(_sessions.c.id.in_([r["id"] for r in originals[4:]])))
        write_rows(conn, _sessions, changed + originals[4:], keys=("id",))
    after = {r["id"]: r for r in _rows(ctx.engine)}
    assert len(after) == 10
    assert all(after[r["id"]]["status"].value == "CANCELLED" for r in changed)
    assert all(after[r["id"]] == r for r in originals[4:])


def test_a_batch_in_a_transaction_that_rolls_back_leaves_nothing(ctx):
    seed_clients(ctx, n=10)
    originals = _rows(ctx.engine)
    with pytest.raises(RuntimeError), transaction(ctx.engine) as conn:
        conn.execute(_sessions.delete())
        write_rows(conn, _sessions, [{**r, "status": "CANCELLED"} for r in originals])
        raise RuntimeError("abandon")
    assert _rows(ctx.engine) == originals
    with transaction(ctx.engine) as conn:               # the connection's staging table is usable again
        write_rows(conn, _sessions, originals, keys=("id",))
        assert conn.execute(select(func.count()).select_from(_sessions)).scalar() == 10


def test_the_upsert_statement_is_one_statement_for_either_engine(ctx):
    seed_clients(ctx, n=2)
    originals = _rows(ctx.engine)
    with transaction(ctx.engine) as conn:
        conn.execute(upsert(conn, _sessions, ("id",)), [{**r, "status": "CANCELLED"} for r in originals])
        assert {r.status.value for r in conn.execute(select(_sessions.c.status))} == {"CANCELLED"}


def test_json_and_bytes_through_copy_read_back_as_an_insert_statement_left_them(ctx):
    """COPY takes JSON as the dialect's serializer writes it and bytes as they are (not
    through psycopg's wrappers): the stored values are the ones an INSERT stores, NULLs,
    JSON null, escapes and all."""
    import uuid
    from sqlalchemy import insert
    from strongroom.core.db.bulkwrite import copy_processor
    from strongroom.core.db.models import Client, SyncRow
    meta = SyncRow.__table__
    awkward = [{"a\\b": "tab\there\nnewline", "é": ["\u2028", 1, None, True]}, [], {}, None, {"n": 2 ** 53}]
    rows = [{"table_name": "clients", "row_id": uuid.uuid4(), "origin": "s", "hlc": n, "vv": value,
             "dots": {"*": ["s", n]}, "hashes": {"f": "\\x00"}, "source": None, "pending": value, "version": n}
            for n, value in enumerate(awkward)]
    twins = [{**row, "row_id": uuid.uuid4()} for row in rows]
    with transaction(ctx.engine) as conn:
        write_rows(conn, meta, rows)
        conn.execute(insert(meta), twins)
    with ctx.engine.connect() as conn:
        stored = {r.row_id: dict(r._mapping) for r in conn.execute(select(meta))}
    for row, twin in zip(rows, twins):
        assert {**stored[row["row_id"]], "row_id": None} == {**stored[twin["row_id"]], "row_id": None}
        assert stored[row["row_id"]]["vv"] == row["vv"]
    with ctx.engine.connect() as conn:
        if conn.dialect.name == "postgresql":     # JSON null is a value, not SQL NULL, as an INSERT leaves it
            nulls = conn.execute(select(func.count()).select_from(meta).where(meta.c.pending.is_(None))).scalar()
            assert nulls == 0
            assert copy_processor(Client.__table__.c.notes_enc, conn.dialect) is None
    seed_clients(ctx, n=3)
    clients = Client.__table__
    with ctx.engine.connect() as conn:
        originals = [dict(r) for r in conn.execute(select(clients).order_by(clients.c.id)).mappings()]
    odd = b"\x00\\\n\t\r\\x41\xff"
    with transaction(ctx.engine) as conn:
        write_rows(conn, clients, [{**r, "notes_enc": odd + r["notes_enc"] if r["notes_enc"] else odd}
                                   for r in originals], keys=("id",))
    with ctx.engine.connect() as conn:
        notes = [r.notes_enc for r in conn.execute(select(clients.c.notes_enc).order_by(clients.c.id))]
    assert notes == [odd + r["notes_enc"] if r["notes_enc"] else odd for r in originals]


def _postgresql_only(ctx) -> None:
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's; SQLite keeps an executemany")


def test_synced_tables_and_their_metadata_are_copied_in_binary(ctx):
    """Binary COPY sends bytes, UUIDs, integers and timestamps as they are, where text
    COPY spelled ciphertext as hex for the server to parse back: every table a sync pass
    writes in bulk is copied so."""
    from strongroom.core.db.bulkwrite import _stage_of
    from strongroom.core.db.models import SyncRow
    from strongroom.core.sync.tables import synced
    _postgresql_only(ctx)
    with transaction(ctx.engine) as conn:
        cursor = conn.connection.driver_connection.cursor()
        for table in [spec.table for spec in synced()] + [SyncRow.__table__]:
            assert _stage_of(conn, cursor, table).binary, table.name


def test_a_table_with_a_column_binary_copy_cannot_take_as_it_comes_is_copied_as_text(ctx):
    """A naive timestamp and a numeric go to the server as text, which it parses as the
    column's type: stored as an INSERT stores them, the JSON column included."""
    import datetime
    import decimal
    import uuid
    from sqlalchemy import JSON, Column, DateTime, MetaData, Numeric, Table, Uuid, insert
    from strongroom.core.db.bulkwrite import _stage_of
    _postgresql_only(ctx)
    odd = Table("bulk_odd_kinds", MetaData(), Column("id", Uuid, primary_key=True), Column("amount", Numeric(10, 2)),
                Column("at", DateTime()), Column("doc", JSON))
    odd.create(ctx.engine)
    try:
        rows = [{"id": uuid.uuid4(), "amount": decimal.Decimal("12.34"), "at": datetime.datetime(2026, 1, 2, 3, 4, 5),
                 "doc": {"a": [1, None]}}, {"id": uuid.uuid4(), "amount": None, "at": None, "doc": None}]
        twins = [{**row, "id": uuid.uuid4()} for row in rows]
        with transaction(ctx.engine) as conn:
            assert not _stage_of(conn, conn.connection.driver_connection.cursor(), odd).binary
            write_rows(conn, odd, rows)
            conn.execute(insert(odd), twins)
        with ctx.engine.connect() as conn:
            stored = {r.id: dict(r._mapping) for r in conn.execute(select(odd))}
        for row, twin in zip(rows, twins):
            assert {**stored[row["id"]], "id": None} == {**stored[twin["id"]], "id": None}
    finally:
        odd.drop(ctx.engine)


def test_a_column_whose_database_type_drifted_from_the_model_keeps_its_table_in_text_copy(ctx):
    """The model says an aware timestamp; the database holds one without a zone (a
    schema that drifted): binary COPY would refuse the value, text COPY stores what an
    INSERT stores."""
    import datetime
    import uuid
    from sqlalchemy import Column, MetaData, Table, Uuid, insert, text
    from strongroom.core.db.bulkwrite import _stage_of
    from strongroom.core.db.types import UTCDateTime
    _postgresql_only(ctx)
    drifted = Table("bulk_drifted", MetaData(), Column("id", Uuid, primary_key=True), Column("at", UTCDateTime))
    with transaction(ctx.engine) as conn:
        conn.execute(text("CREATE TABLE bulk_drifted (id uuid PRIMARY KEY, at timestamp)"))
    try:
        moment = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
        rows, twins = [{"id": uuid.uuid4(), "at": moment}], [{"id": uuid.uuid4(), "at": moment}]
        with transaction(ctx.engine) as conn:
            assert not _stage_of(conn, conn.connection.driver_connection.cursor(), drifted).binary
            write_rows(conn, drifted, rows)
            conn.execute(insert(drifted), twins)
        with ctx.engine.connect() as conn:
            stored = dict(conn.execute(text("SELECT id, at FROM bulk_drifted")).all())
        assert stored[rows[0]["id"]] == stored[twins[0]["id"]]
    finally:
        drifted.drop(ctx.engine)
