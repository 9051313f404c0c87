"""A sync pass between two sites: rows travel both ways, once, readable where they land."""
from __future__ import annotations

from sqlalchemy import func, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, SyncConflict, TherapySession
from strongroom.core.repository.clients import get_client, update_client
from tests.core.conftest import WRITER, client_ids


def _checksums(site, table):
    with transaction(site.engine, read_only=True) as conn:
        return dict(conn.execute(select(table.c.id, table.c.data_checksum)).all())


def test_a_joined_site_receives_every_client_and_session_readable(first_site, join_site):
    laptop = join_site("laptop")
    result = laptop.sync(first_site)
    assert result["pull"]["clients"]["applied"] == 12
    assert client_ids(laptop) == client_ids(first_site)
    for table in (Client.__table__, TherapySession.__table__):
        assert _checksums(laptop, table) == _checksums(first_site, table)
    with transaction(laptop.engine) as conn:
        cid = client_ids(laptop)[0]
        assert get_client(conn, laptop.keyring, WRITER, cid)["first_name"]


def test_a_second_pass_moves_nothing_and_nothing_echoes(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    again = laptop.sync(first_site)
    for direction in ("push", "pull"):
        for table in ("practices", "clients", "therapy_sessions"):
            assert again[direction][table]["applied"] == 0, (direction, table)


def test_edits_on_different_fields_merge_on_both_sites(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"email": "new@example.org"})
    laptop.sync(first_site)
    laptop.sync(first_site)
    for site in (first_site, laptop):
        with transaction(site.engine) as conn:
            row = get_client(conn, site.keyring, WRITER, cid)
            assert (row["phone"], row["email"]) == ("555-0001", "new@example.org"), site.name
    assert _checksums(laptop, Client.__table__) == _checksums(first_site, Client.__table__)


def test_the_same_field_changed_on_both_sites_waits_for_a_person(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, cid, {"phone": "555-0002"})
    laptop.sync(first_site)
    for site, phone in ((first_site, "555-0001"), (laptop, "555-0002")):
        with transaction(site.engine) as conn:
            assert get_client(conn, site.keyring, WRITER, cid)["phone"] == phone
            assert conn.execute(select(func.count()).select_from(SyncConflict.__table__)
                                .where(SyncConflict.__table__.c.status == "open")).scalar_one() == 1
