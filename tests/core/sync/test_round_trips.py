"""A pass costs a number of database round trips that grows with its batches, not with
its rows: rows are read, checked and written a batch at a time on both sides (the
statements of both engines are counted, whichever engine makes them)."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

from sqlalchemy import Engine, event, func, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, TherapySession
from strongroom.core.demo import client_records
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.clients import insert_clients, update_client
from strongroom.core.repository.practices import only_practice
from strongroom.core.repository.sessions import insert_sessions
from tests.core.conftest import WRITER

_seeds = itertools.count(100)


def _bookings(site) -> tuple:
    with transaction(site.engine) as conn:
        practice = only_practice(conn)
        service = services_repo.create_service(conn, SYSTEM, practice, {
            "name": "Intake", "category": "therapy", "duration_minutes": 50, "price_cents": 9000})
        staff = staff_repo.create_staff(conn, SYSTEM, practice, {
            "first_name": "Ada", "last_name": "Moss", "role": "PRACTITIONER"})
    return practice, service, staff


def _new_clients(site, practice, n: int, booking: tuple | None = None) -> list:
    """`n` new clients (each its own key), each with a session (booked with a service and
    a staff member when `booking` is given)."""
    created: list = []
    seed = next(_seeds)
    with transaction(site.engine) as conn:
        insert_clients(conn, site.keyring, SYSTEM, practice, client_records(n, seed=seed), created=created)
        insert_sessions(conn, site.keyring, SYSTEM, [
            {"client_id": cid, "starts_at": datetime(2026, 3, 1 + i % 27, 9, tzinfo=timezone.utc),
             "notes": f"session {i}", **({"service_id": booking[0], "staff_id": booking[1]} if booking else {})}
            for i, cid in enumerate(created)])
    return created


def _edit(site, ids: list) -> None:
    with transaction(site.engine) as conn:
        for cid in ids:
            update_client(conn, site.keyring, WRITER, cid, {"phone": f"555-{next(_seeds):04d}"})


class Statements:
    """Every statement any engine of this process sends (both sides of a pass)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args) -> None:
        self.count += 1

    def __enter__(self) -> "Statements":
        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self)


def _round(first_site, laptop, practice, booking, n: int) -> int:
    """Rows changed on both sides (new clients with keys and booked sessions at the
    central site, new clients and edits at the laptop), then one pass: its statements."""
    _new_clients(first_site, practice, n, booking)
    edited = _new_clients(laptop, practice, n)
    _edit(laptop, edited[: n // 2])                 # a second local version before the pass
    with Statements() as statements:
        result = laptop.sync(first_site, batch_size=500)
    assert result["pull"]["clients"]["applied"] == n
    assert result["pull"]["therapy_sessions"]["applied"] == n
    assert result["push"]["clients"]["applied"] == n
    assert result["push"]["therapy_sessions"]["applied"] == n
    return statements.count


def test_a_pass_costs_round_trips_per_batch_not_per_row(first_site, join_site):
    laptop = join_site("laptop")
    practice, service, staff = _bookings(first_site)
    laptop.sync(first_site)            # joined: staff and services are held on both sides
    few = _round(first_site, laptop, practice, (service, staff), 4)
    many = _round(first_site, laptop, practice, (service, staff), 40)
    # Ten times the rows, all in one batch per table and direction: the same statements
    # (a little slack for what a pass decides per pass, not per row).
    assert many <= few + 4, (few, many)
    for site in (first_site, laptop):
        with transaction(site.engine, read_only=True) as conn:
            assert conn.execute(select(func.count()).select_from(Client.__table__)).scalar_one() == 12 + 88
            assert conn.execute(select(func.count()).select_from(TherapySession.__table__)
                                ).scalar_one() == 10 + 88
