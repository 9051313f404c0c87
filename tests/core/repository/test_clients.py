"""Client records: encrypted on write, decrypted on read for phi:read, masked otherwise,
found by blind index, and every byte of tampering refused."""
import uuid
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select, text, update

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, DataKey
from strongroom.core.errors import CryptoError, KeyUnavailableError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.principal import Principal
from strongroom.core.repository import clients as repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.practices import create_practice

CLINICIAN = Principal("user:clinician", frozenset({"table:clients:*", "table:therapy_sessions:*", "phi:read"}))
RECEPTION = Principal("user:reception", frozenset({"table:clients:read"}))
OUTSIDER = Principal("user:outsider", frozenset())
ALICE = {
    "first_name": "Avery", "last_name": "Ashford", "date_of_birth": date(1984, 2, 29),
    "ssn": "912-34-5678", "email": "Avery.Ashford@example.org", "phone": "555-0100",
    "address": "12 Maple Street, Springfield", "emergency_contact": "Blake Ashford, 555-0101",
    "medical_history": "generalised anxiety", "notes": "prefers mornings",
}
_clients = Client.__table__


@pytest.fixture
def practice(ctx):
    with transaction(ctx.engine) as conn:
        return create_practice(conn, Principal("system", frozenset({"*"})), "Test Practice")


@pytest.fixture
def client_id(ctx, practice):
    with transaction(ctx.engine) as conn:
        return repo.create_client(conn, ctx.keyring, CLINICIAN, practice, ALICE)


def _raw(ctx, client_id):
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(_clients).where(_clients.c.id == client_id)).mappings().one())


def test_phi_is_stored_only_as_ciphertext(ctx, client_id):
    raw = _raw(ctx, client_id)
    stored = b"".join(v for v in raw.values() if isinstance(v, bytes))
    for value in ("Avery", "Ashford", "912-34-5678", "5678", "555-0100", "Maple", "anxiety", "1984-02-29"):
        assert value.encode() not in stored
    assert raw["ssn_enc"][0] == 1 and len(raw["ssn_enc"]) > 45


def test_reader_with_phi_read_gets_plaintext_and_the_read_is_audited(ctx, client_id):
    with transaction(ctx.engine) as conn:
        record = repo.get_client(conn, ctx.keyring, CLINICIAN, client_id)
        entry = audit.tail(conn, limit=1)[0]
    assert record["ssn"] == "912-34-5678" and record["date_of_birth"] == "1984-02-29"
    assert record["medical_history"] == "generalised anxiety"
    assert (entry.action, entry.actor, entry.record_id) == ("READ", "user:clinician", str(client_id))
    assert "912-34" not in str(entry.details)          # the value (a bare "912" may be in an id)


def test_reader_without_phi_read_gets_masked_values(ctx, client_id):
    with transaction(ctx.engine) as conn:
        record = repo.get_client(conn, ctx.keyring, RECEPTION, client_id)
    assert record["ssn"] == "***-**-5678"
    assert record["email"] == "Av***@example.org"
    assert record["phone"] == "***-***-0100"
    assert record["address"] == "12 ***"
    assert record["medical_history"] == "[redacted]"
    assert record["last_name"] == "A***"


def test_reader_without_table_permission_is_refused(ctx, client_id):
    with pytest.raises(PermissionDenied, match="table:clients:read"):
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, ctx.keyring, OUTSIDER, client_id)


def test_find_by_blind_index_is_case_and_format_insensitive(ctx, practice, client_id):
    with transaction(ctx.engine) as conn:
        repo.create_client(conn, ctx.keyring, CLINICIAN, practice,
                           {**ALICE, "email": "other@example.org", "ssn": "912-00-0000", "last_name": "Zeller"})
        by_email = repo.find_clients(conn, ctx.keyring, CLINICIAN, email="  avery.ashford@EXAMPLE.org ")
        by_ssn = repo.find_clients(conn, ctx.keyring, CLINICIAN, ssn_last4="5678")
        by_name = repo.find_clients(conn, ctx.keyring, CLINICIAN, last_name="ASHFORD")
        nobody = repo.find_clients(conn, ctx.keyring, CLINICIAN, email="nobody@example.org")
    assert [r["id"] for r in by_email] == [client_id]
    assert [r["id"] for r in by_ssn] == [client_id]
    assert [r["id"] for r in by_name] == [client_id]
    assert nobody == []


def test_blind_index_differs_between_fields_for_equal_values(ctx, client_id):
    with ctx.engine.connect() as conn:
        indexer = ctx.keyring.blind_indexer(conn)
    assert indexer.index("email", "x") != indexer.index("last_name", "x")


def test_update_reencrypts_bumps_version_and_checksum(ctx, client_id):
    before = _raw(ctx, client_id)
    with transaction(ctx.engine) as conn:
        repo.update_client(conn, ctx.keyring, CLINICIAN, client_id, {"phone": "555-0199", "status": "VIP"})
        record = repo.get_client(conn, ctx.keyring, CLINICIAN, client_id)
        entry = audit.tail(conn, limit=2)[1]
    after = _raw(ctx, client_id)
    assert record["phone"] == "555-0199" and record["status"] == "VIP"
    assert after["sync_version"] > before["sync_version"]
    assert after["data_checksum"] == row_checksum(after) != before["data_checksum"]
    assert after["ssn_enc"] == before["ssn_enc"]
    assert entry.action == "UPDATE" and entry.details == {"fields": ["phone", "status"]}


def test_checksum_matches_the_stored_row(ctx, client_id):
    raw = _raw(ctx, client_id)
    assert raw["data_checksum"] == row_checksum(raw)


def test_delete_leaves_a_tombstone(ctx, client_id):
    with transaction(ctx.engine) as conn:
        repo.delete_client(conn, CLINICIAN, client_id)
    raw = _raw(ctx, client_id)
    assert raw["deleted_at"] is not None
    with pytest.raises(NotFoundError):
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, ctx.keyring, CLINICIAN, client_id)


@pytest.mark.parametrize("position", [0, 5, 20, 35, -1])
def test_flipped_byte_in_ciphertext_is_refused_and_names_the_field(ctx, client_id, position):
    raw = _raw(ctx, client_id)
    blob = bytearray(raw["ssn_enc"])
    blob[position] ^= 0x01
    with transaction(ctx.engine) as conn:
        conn.execute(update(_clients).where(_clients.c.id == client_id).values(ssn_enc=bytes(blob)))
    with pytest.raises(CryptoError) as err:
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, ctx.keyring, CLINICIAN, client_id)
    assert "34-5678" not in str(err.value)             # the value (a bare "5678" may be in a key id)
    if position not in (0,) and not 1 <= position < 17:
        assert f"clients.ssn of row {client_id}" in str(err.value)


def test_ciphertext_copied_to_another_row_does_not_decrypt(ctx, practice, client_id):
    with transaction(ctx.engine) as conn:
        other = repo.create_client(conn, ctx.keyring, CLINICIAN, practice, {**ALICE, "ssn": "912-11-1111"})
    # Copy every sealed field and the key id, as an attacker with write access could.
    src = _raw(ctx, client_id)
    stolen = {k: v for k, v in src.items() if k.endswith("_enc") or k == "key_id"}
    with transaction(ctx.engine) as conn:
        conn.execute(update(_clients).where(_clients.c.id == other).values(**stolen))
    with pytest.raises(CryptoError, match="failed authentication"):
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, ctx.keyring, CLINICIAN, other)


def test_ciphertext_moved_to_another_column_does_not_decrypt(ctx, client_id):
    src = _raw(ctx, client_id)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_clients).where(_clients.c.id == client_id).values(phone_enc=src["ssn_enc"]))
    with pytest.raises(CryptoError, match="clients.phone"):
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, ctx.keyring, CLINICIAN, client_id)


@pytest.mark.parametrize("field, value, rule", [
    ("ssn", "12-345", "9 digits"),
    ("email", "not-an-email", "email address"),
    ("phone", "call me maybe", "phone number"),
    ("date_of_birth", "2999-01-01", "between 1880 and today"),
    ("first_name", "", "at least 1"),
])
def test_invalid_field_is_refused_naming_the_field_not_the_value(ctx, practice, field, value, rule):
    with pytest.raises(ValidationError) as err:
        with transaction(ctx.engine) as conn:
            repo.create_client(conn, ctx.keyring, CLINICIAN, practice, {**ALICE, field: value})
    assert field in str(err.value) and rule in str(err.value)
    if value:
        assert value not in str(err.value)
    with ctx.engine.connect() as conn:
        assert repo.count_clients(conn) == 0


def test_unknown_field_in_update_is_refused(ctx, client_id):
    with pytest.raises(ValidationError, match="unknown field"):
        with transaction(ctx.engine) as conn:
            repo.update_client(conn, ctx.keyring, CLINICIAN, client_id, {"favourite_colour": "blue"})


def test_shredded_client_key_makes_every_field_unreadable(ctx, client_id):
    with transaction(ctx.engine) as conn:
        sessions_repo.create_session(conn, ctx.keyring, CLINICIAN, {
            "client_id": client_id, "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
            "notes": "discussed sleep"})
        assert ctx.keyring.destroy_client_keys(conn, client_id) == 1
    fresh = type(ctx.keyring)([ctx.keyring.primary])  # no cached keys: as after a restart
    with pytest.raises(KeyUnavailableError, match="destroyed"):
        with transaction(ctx.engine) as conn:
            repo.get_client(conn, fresh, CLINICIAN, client_id)
    with ctx.engine.connect() as conn:
        key = conn.execute(select(DataKey.__table__).where(DataKey.__table__.c.client_id == client_id)).mappings().one()
    assert key["wrapped_key"] is None and key["destroyed_at"] is not None


def test_bulk_insert_writes_all_rows_with_own_keys_and_one_audit_entry_per_batch(ctx, practice):
    from strongroom.core.demo import client_records

    with transaction(ctx.engine) as conn:
        n = repo.insert_clients(conn, ctx.keyring, CLINICIAN, practice, client_records(25), batch_size=10)
        keys = conn.execute(text("SELECT count(*) FROM data_keys WHERE purpose = 'client'")).scalar()
        entries = audit.tail(conn, action="CREATE", table_name="clients")
        page1 = repo.list_clients(conn, ctx.keyring, RECEPTION, limit=10)
        page2 = repo.list_clients(conn, ctx.keyring, RECEPTION, limit=10, after_id=page1[-1]["id"])
    assert n == 25 and keys == 25
    assert [e.details["count"] for e in entries] == [5, 10, 10]
    assert len({r["id"] for r in page1 + page2}) == 20


def test_session_notes_are_sealed_with_the_clients_key(ctx, client_id):
    with transaction(ctx.engine) as conn:
        sid = sessions_repo.create_session(conn, ctx.keyring, CLINICIAN, {
            "client_id": client_id, "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
            "notes": "explored triggers at work"})
        mine = sessions_repo.list_sessions(conn, ctx.keyring, CLINICIAN, client_id)
        masked = sessions_repo.list_sessions(conn, ctx.keyring,
                                             Principal("user:r", frozenset({"table:therapy_sessions:read"})), client_id)
        row = conn.execute(text("SELECT key_id, notes_enc FROM therapy_sessions")).one()
    assert mine[0]["id"] == sid and mine[0]["notes"] == "explored triggers at work"
    assert masked[0]["notes"] == "[redacted]"
    assert b"triggers" not in bytes(row.notes_enc)
    assert uuid.UUID(str(row.key_id)) == _raw(ctx, client_id)["key_id"]


def test_session_for_unknown_client_is_refused(ctx, practice):
    with pytest.raises(Exception, match="not found"):
        with transaction(ctx.engine) as conn:
            sessions_repo.create_session(conn, ctx.keyring, CLINICIAN, {
                "client_id": uuid.uuid4(), "starts_at": datetime(2026, 1, 5, tzinfo=timezone.utc)})
