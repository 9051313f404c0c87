"""Bulk reads (core.repository.records) print ids, dates and times as `plain_value`
prints the row's values, on either engine (PostgreSQL sends some as text or naive UTC
for speed), so an export does not depend on the engine or the session's time zone."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select, update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client
from strongroom.core.demo import client_records
from strongroom.core.export import spec
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.records import plain_value, stream_records

MOMENTS = [datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc),                     # no microseconds
           datetime(2026, 3, 29, 1, 30, 0, 1, tzinfo=timezone.utc),
           datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc),
           datetime(987, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc),               # year under 1000
           datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=5, minutes=45)))]


def test_bulk_records_print_values_as_the_row_holds_them(ctx):
    """On each engine (PostgreSQL in a session time zone neither UTC nor a whole hour
    off it): times with and without microseconds, an early year, missing dates."""
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
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Kathmandu'")
        records = [r for batch in stream_records(conn, ctx.keyring, SYSTEM, "clients", fields, reveal=True,
                                                 batch_size=2) for r in batch]
        table = Client.__table__
        rows = conn.execute(select(table).where(table.c.deleted_at.is_(None)).order_by(table.c.id)).mappings().all()
    assert len(records) == len(MOMENTS)
    assert [{f: r[f] for f in plain} for r in records] == [{f: plain_value(row[f]) for f in plain} for row in rows]
