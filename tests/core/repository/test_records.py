"""Bulk reads (core.repository.records): what PostgreSQL prints for a bulk reader is
what Python prints for the same value, so an export does not depend on the engine."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Date, Uuid, literal, select, update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client
from strongroom.core.db.types import UTCDateTime
from strongroom.core.demo import client_records
from strongroom.core.export import spec
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.records import _date_text, _utc_text, _uuid_text, plain_value, stream_records

MOMENTS = [datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc),                     # no microseconds
           datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone.utc),
           datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc),
           datetime(987, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc),               # year under 1000
           datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=45)))]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_postgresql_prints_ids_dates_and_times_as_python_does(engine, moment):
    if engine.dialect.name != "postgresql":
        pytest.skip("the constructs are PostgreSQL's; SQLite rows are printed in Python")
    key = uuid.uuid4()
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Kathmandu'")      # not UTC, not a whole hour
        got = conn.execute(select(_utc_text(literal(moment, UTCDateTime())), _date_text(literal(moment.date(), Date())),
                                  _uuid_text(literal(key, Uuid())))).one()
    assert tuple(got) == (moment.astimezone(timezone.utc).isoformat(), moment.date().isoformat(), str(key))


def test_bulk_records_print_values_as_the_row_holds_them(ctx):
    """On each engine: times with and without microseconds, an early year, missing dates."""
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Records Practice")
        created: list = []
        repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(len(MOMENTS), seed=9), created=created)
        ids = sorted(c if isinstance(c, uuid.UUID) else c["id"] for c in created)
        for n, (client, moment) in enumerate(zip(ids, MOMENTS)):
            conn.execute(update(Client).where(Client.id == client).values(
                created_at=moment, intake_date=None if n % 2 else date(987 + n, 1, 31)))
    fields = spec.EXPORTABLE["clients"]
    plain = [c for c in fields if c not in spec.phi_fields("clients")]
    with transaction(ctx.engine, read_only=True) as conn:
        records = [r for batch in stream_records(conn, ctx.keyring, SYSTEM, "clients", fields, reveal=True,
                                                 batch_size=2) for r in batch]
        table = Client.__table__
        rows = conn.execute(select(table).where(table.c.deleted_at.is_(None)).order_by(table.c.id)).mappings().all()
    assert len(records) == len(MOMENTS)
    assert [{f: r[f] for f in plain} for r in records] == [{f: plain_value(row[f]) for f in plain} for row in rows]
