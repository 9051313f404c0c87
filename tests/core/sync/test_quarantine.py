"""Each reason a received row is quarantined (issue 16, item 5), one test per reason.

A joined SQLite site (the laptop) sends the bad row to the first site (SQLite or
PostgreSQL: the receiver is the engine under test). For every reason: the row is held,
not applied; `list_quarantine` names it with its reason; one audit entry names table,
row and reason, never a value; the held image is the row's ciphertext as sent, with no
plaintext of what was written; the rest of the same batch applies; and the row is held
once however often it arrives. (checksum_mismatch and ciphertext_invalid: test_passes.)

Bad rows are made the way someone with database access at the sending site would make
them: the stored row changed, its checksum recomputed so only the intended check trips,
and a new change version so the next pass sends it.
"""
from __future__ import annotations

import base64
import contextlib
import json
import uuid
from datetime import datetime, timezone

from sqlalchemy import select, update

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Client, DataKey, KeyState, Role, SyncQuarantine, TherapySession
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.repository.clients import delete_client, get_client, update_client
from strongroom.core.repository.sessions import create_session, list_sessions, update_session
from strongroom.core.retention.erasure import erase_client
from strongroom.core.sync import status as sync_status
from strongroom.core.sync.settings import SyncSettings
from tests.core.conftest import WRITER, client_ids

_clients, _sessions = Client.__table__, TherapySession.__table__
_logs, _quarantine, _keys = AuditLog.__table__, SyncQuarantine.__table__, DataKey.__table__
STARTS = datetime(2026, 4, 7, 10, tzinfo=timezone.utc)


# --- making bad rows at the sending site -------------------------------------------------

@contextlib.contextmanager
def _admin_session(site):
    """A transaction at a SQLite site with foreign keys off, as a database administrator's
    sqlite3 shell can have it: a row may then name ids no table holds."""
    with site.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        raw.execute("PRAGMA foreign_keys=OFF")     # outside a transaction, or SQLite ignores it
        try:
            with conn.begin():
                yield conn
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def _tamper(site, table, row_id: uuid.UUID, **values) -> None:
    """Change a stored row, give it a checksum that matches its new content and a new
    change version (so the next pass sends it, and only the intended check trips)."""
    with _admin_session(site) as conn:
        row = dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())
        row.update(values, sync_version=next_change_version(conn))
        row["data_checksum"] = row_checksum(row)
        conn.execute(update(table).where(table.c.id == row_id).values(
            **values, sync_version=row["sync_version"], data_checksum=row["data_checksum"]))


def _resend(site, table, row_id: uuid.UUID) -> None:
    """The same bad row sent again: only its change version moves."""
    with transaction(site.engine) as conn:
        conn.execute(update(table).where(table.c.id == row_id).values(sync_version=next_change_version(conn)))


def _stored(site, table, row_id: uuid.UUID) -> dict | None:
    with transaction(site.engine, read_only=True) as conn:
        row = conn.execute(select(table).where(table.c.id == row_id)).mappings().first()
    return dict(row) if row is not None else None


def _session_of(site, client_id: uuid.UUID) -> uuid.UUID:
    with transaction(site.engine, read_only=True) as conn:
        return conn.execute(select(_sessions.c.id).where(_sessions.c.client_id == client_id)).scalars().first()


def _phone(site, client_id: uuid.UUID) -> str | None:
    with transaction(site.engine) as conn:
        return get_client(conn, site.keyring, WRITER, client_id, include_deleted=True)["phone"]


def _notes(site, client_id: uuid.UUID) -> list[str]:
    with transaction(site.engine) as conn:
        return [s["notes"] for s in list_sessions(conn, site.keyring, WRITER, client_id)]


# --- what the receiving site must show ---------------------------------------------------

def _quarantine_entries(site) -> list[dict]:
    with transaction(site.engine, read_only=True) as conn:
        return [json.loads(d) | {"table": t, "record_id": r} for t, r, d in conn.execute(
            select(_logs.c.table_name, _logs.c.record_id, _logs.c.details)
            .where(_logs.c.action == "SYNC", _logs.c.details.like("%row_quarantined%")))]


def assert_held(receiver, sender, table, row_id: uuid.UUID, reason: str, *, before: dict | None,
                plaintexts: list[str]) -> None:
    """The row is held once with `reason`, listed, audited by name only, kept as the
    ciphertext that was sent, and not applied (the receiver's row is as it was)."""
    rid = str(row_id)
    with transaction(receiver.engine, read_only=True) as conn:
        listed = sync_status.list_quarantine(conn)
        report = sync_status.status(conn, SyncSettings())
        (image,) = conn.execute(select(_quarantine.c.image).where(_quarantine.c.row_id == rid)).scalars().all()
    assert [(q["table"], q["row_id"], q["reason"], q["status"]) for q in listed] == [(table.name, rid, reason, "open")]
    assert report["quarantined"] == 1
    (entry,) = [e for e in _quarantine_entries(receiver) if e["record_id"] == rid]
    assert (entry["table"], entry["event"], entry["reason"]) == (table.name, "row_quarantined", reason)

    sent = _stored(sender, table, row_id)
    sealed = {c: base64.b64encode(bytes(v)).decode() for c, v in sent.items()
              if c.endswith("_enc") and v is not None}
    assert sealed and {c: image[c] for c in sealed} == sealed        # the ciphertext as sent
    assert image["data_checksum"] == sent["data_checksum"]
    said = json.dumps([image, listed, entry], default=str)
    assert plaintexts and not [p for p in plaintexts if p in said], "plaintext in the quarantine or its audit"
    assert not [c for c in sealed.values() if c in json.dumps([listed, entry], default=str)]
    assert _stored(receiver, table, row_id) == before                # not applied


def assert_held_once_more(receiver, sender, table, row_id: uuid.UUID, reason: str) -> None:
    """Sent again (a later pass, the row touched again): still one open quarantine row."""
    sender.sync(receiver)
    _resend(sender, table, row_id)
    again = sender.sync(receiver)
    assert again["push"][table.name]["quarantined"] == 1
    with transaction(receiver.engine, read_only=True) as conn:
        rows = conn.execute(select(_quarantine.c.reason, _quarantine.c.status)
                            .where(_quarantine.c.row_id == str(row_id))).all()
    assert [tuple(r) for r in rows] == [(reason, "open")]
    assert len([e for e in _quarantine_entries(receiver) if e["record_id"] == str(row_id)]) == 1


# --- one test per reason -----------------------------------------------------------------

def test_a_client_naming_an_unknown_practice_is_quarantined(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    bad, good = client_ids(laptop)[:2]
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, bad, {"first_name": "Quillon", "phone": "555-0191"})
        update_client(conn, laptop.keyring, WRITER, good, {"phone": "555-0150"})
    before = _stored(first_site, _clients, bad)
    _tamper(laptop, _clients, bad, practice_id=uuid.uuid4())
    result = laptop.sync(first_site)
    assert (result["push"]["clients"]["applied"], result["push"]["clients"]["quarantined"]) == (1, 1)
    assert _phone(first_site, good) == "555-0150"                    # the rest of the batch applied
    assert_held(first_site, laptop, _clients, bad, "unknown_practice", before=before,
                plaintexts=["Quillon", "555-0191"])
    assert_held_once_more(first_site, laptop, _clients, bad, "unknown_practice")


def test_a_session_naming_an_unknown_client_is_quarantined(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    first, second = client_ids(laptop)[:2]
    bad, good = _session_of(laptop, first), _session_of(laptop, second)
    with transaction(laptop.engine) as conn:
        update_session(conn, laptop.keyring, WRITER, bad, {"notes": "synthetic note Heliotrope"})
        update_session(conn, laptop.keyring, WRITER, good, {"notes": "synthetic note Marigold"})
    before = _stored(first_site, _sessions, bad)
    _tamper(laptop, _sessions, bad, client_id=uuid.uuid4())
    result = laptop.sync(first_site)
    assert (result["push"]["therapy_sessions"]["applied"], result["push"]["therapy_sessions"]["quarantined"]) == (1, 1)
    assert _notes(first_site, second) == ["synthetic note Marigold"]
    assert_held(first_site, laptop, _sessions, bad, "unknown_client", before=before,
                plaintexts=["Heliotrope"])
    assert_held_once_more(first_site, laptop, _sessions, bad, "unknown_client")


def test_a_session_by_a_practitioner_without_an_account_here_is_quarantined(ctx, first_site, join_site):
    """Accounts do not sync after the join: one made at the laptop is unknown centrally."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    first, second = client_ids(laptop)[:2]
    with transaction(laptop.engine) as conn:
        practice = conn.execute(select(_clients.c.practice_id).where(_clients.c.id == first)).scalar_one()
        user, _ = create_user(conn, laptop.keyring, ctx.settings, practice, "locum1", "synthetic-pass-0000",
                              Role.PRACTITIONER, actor="test")
        bad = create_session(conn, laptop.keyring, WRITER, {"client_id": first, "starts_at": STARTS,
                                                            "practitioner_id": user.id,
                                                            "notes": "synthetic note Tamarind"})
        create_session(conn, laptop.keyring, WRITER, {"client_id": second, "starts_at": STARTS,
                                                      "notes": "synthetic note Juniper"})
    result = laptop.sync(first_site)
    assert (result["push"]["therapy_sessions"]["applied"], result["push"]["therapy_sessions"]["quarantined"]) == (1, 1)
    assert "synthetic note Juniper" in _notes(first_site, second)
    assert_held(first_site, laptop, _sessions, bad, "unknown_practitioner", before=None,
                plaintexts=["Tamarind"])
    assert_held_once_more(first_site, laptop, _sessions, bad, "unknown_practitioner")


def test_a_client_sealed_with_a_key_this_site_does_not_hold_is_quarantined(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    bad, good = client_ids(laptop)[:2]
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, bad, {"last_name": "Vantongeren", "phone": "555-0192"})
        update_client(conn, laptop.keyring, WRITER, good, {"phone": "555-0151"})
    before = _stored(first_site, _clients, bad)
    _tamper(laptop, _clients, bad, key_id=uuid.uuid4())             # a key record no site holds
    result = laptop.sync(first_site)
    assert (result["push"]["clients"]["applied"], result["push"]["clients"]["quarantined"]) == (1, 1)
    assert _phone(first_site, good) == "555-0151"
    assert_held(first_site, laptop, _clients, bad, "unknown_key", before=before,
                plaintexts=["Vantongeren", "555-0192"])
    assert_held_once_more(first_site, laptop, _clients, bad, "unknown_key")


def test_a_live_session_for_a_client_erased_here_is_quarantined(first_site, join_site):
    """The laptop, offline, writes a session for a client the central site erased
    meanwhile: it is sealed with a key destroyed there, and must not come back to life."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    erased, other = client_ids(laptop)[:2]
    with transaction(first_site.engine) as conn:
        erase_client(conn, first_site.keyring, erased, now=datetime.now(timezone.utc))
    with transaction(laptop.engine) as conn:
        bad = create_session(conn, laptop.keyring, WRITER, {"client_id": erased, "starts_at": STARTS,
                                                            "notes": "synthetic note Bergamot"})
        create_session(conn, laptop.keyring, WRITER, {"client_id": other, "starts_at": STARTS,
                                                      "notes": "synthetic note Saffron"})
    result = laptop.sync(first_site)
    assert (result["push"]["therapy_sessions"]["applied"], result["push"]["therapy_sessions"]["quarantined"]) == (1, 1)
    assert "synthetic note Saffron" in _notes(first_site, other)
    assert_held(first_site, laptop, _sessions, bad, "key_destroyed", before=None, plaintexts=["Bergamot"])
    assert_held_once_more(first_site, laptop, _sessions, bad, "key_destroyed")
    with transaction(first_site.engine, read_only=True) as conn:       # the erasure stands
        assert set(conn.execute(select(_keys.c.state).where(_keys.c.client_id == erased)).scalars()) == {
            KeyState.DESTROYED}


def test_a_tombstone_on_a_key_destroyed_here_is_applied_not_quarantined(first_site, join_site):
    """The opposite case: a delete of an erased client, or of a session of theirs the
    central site never had, carries no value and agrees with the erasure."""
    laptop = join_site("laptop")
    laptop.sync(first_site)
    erased = client_ids(laptop)[0]
    with transaction(first_site.engine) as conn:
        erase_client(conn, first_site.keyring, erased, now=datetime.now(timezone.utc))
    with transaction(laptop.engine) as conn:
        session = create_session(conn, laptop.keyring, WRITER, {"client_id": erased, "starts_at": STARTS,
                                                                "notes": "synthetic note Cardamom"})
    _tamper(laptop, _sessions, session, deleted_at=datetime.now(timezone.utc))   # deleted before any pass
    with transaction(laptop.engine) as conn:
        delete_client(conn, WRITER, erased)
    result = laptop.sync(first_site)
    for table in ("clients", "therapy_sessions"):          # both sent, both applied, neither held
        counts = result["push"][table]
        assert (counts["sent"], counts["applied"], counts["quarantined"]) == (1, 1, 0), table
    with transaction(first_site.engine, read_only=True) as conn:
        assert sync_status.list_quarantine(conn) == []
        assert conn.execute(select(_clients.c.deleted_at).where(_clients.c.id == erased)).scalar() is not None
        assert conn.execute(select(_sessions.c.deleted_at).where(_sessions.c.id == session)).scalar() is not None
        assert set(conn.execute(select(_keys.c.state).where(_keys.c.client_id == erased)).scalars()) == {
            KeyState.DESTROYED}
    assert not [e for e in _quarantine_entries(first_site)]


def test_a_field_sealed_under_another_clients_key_is_quarantined(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    bad, donor, good = client_ids(laptop)[:3]
    with transaction(laptop.engine) as conn:
        update_client(conn, laptop.keyring, WRITER, bad, {"email": "wren.ashdown@example.org"})
        update_client(conn, laptop.keyring, WRITER, donor, {"phone": "555-0193"})
        update_client(conn, laptop.keyring, WRITER, good, {"phone": "555-0152"})
    # Someone moves the donor's sealed phone into this client's row: another client's key.
    donor_phone = _stored(laptop, _clients, donor)["phone_enc"]
    before = _stored(first_site, _clients, bad)
    _tamper(laptop, _clients, bad, phone_enc=donor_phone)
    result = laptop.sync(first_site)
    assert (result["push"]["clients"]["applied"], result["push"]["clients"]["quarantined"]) == (2, 1)
    assert (_phone(first_site, donor), _phone(first_site, good)) == ("555-0193", "555-0152")
    assert_held(first_site, laptop, _clients, bad, "foreign_ciphertext", before=before,
                plaintexts=["wren.ashdown", "555-0193"])
    assert_held_once_more(first_site, laptop, _clients, bad, "foreign_ciphertext")
