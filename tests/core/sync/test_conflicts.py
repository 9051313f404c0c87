"""Sync conflicts: listed and filtered, shown side by side with PHI masked unless the
reader holds phi:read, resolved field by field in one audited transaction, and every
kind of bad input refused with a clear error and nothing changed."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update
from strongroom.core import audit, demo
from strongroom.core.crypto.fields import key_id_of
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Client, KeyPurpose, SyncConflict, TherapySession
from strongroom.core.errors import ConflictError, NotFoundError, PermissionDenied, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.principal import Principal
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository.changes import current_change_version, row_checksum
from strongroom.core.repository.practices import create_practice
from strongroom.core.sync import conflicts
from strongroom.core.sync.peers import (
    PUSH,
    add_peer,
    list_peers,
    redact_url,
    set_watermark,
    synced_tables,
)

SYSTEM = Principal("system", frozenset({"*"}))
CLINICIAN = Principal("user:clinician", frozenset({"table:clients:*", "table:therapy_sessions:*", "phi:read"}))
OPERATOR = Principal("user:operator", frozenset({"sync:resolve"}))          # never reads PHI
LEAD = Principal("user:lead", frozenset({"sync:resolve", "phi:read"}))
AUDITOR = Principal("user:auditor", frozenset({"audit:read"}))

AVERY = {"first_name": "Avery", "last_name": "Ashford", "ssn": "912-34-5678",
         "email": "avery.ashford@example.org", "phone": "555-0100", "address": "12 Maple Street, Springfield"}
OLD_EMAIL, LOCAL_PHONE, BASE_PHONE, REMOTE_PHONE = "avery.old@example.org", "555-0100", "555-0142", "555-0177"
_clients, _conflicts, _log = Client.__table__, SyncConflict.__table__, AuditLog.__table__


def seal(ctx, conn, table, row, field, value, key=None):
    cipher = key or ctx.keyring.cipher(conn, row["key_id"])
    return base64.b64encode(cipher.encrypt_text(value, table, field, row["id"])).decode()


def row_of(conn, table, row_id):
    return conn.execute(select(table).where(table.c.id == row_id)).mappings().one()


@pytest.fixture
def world(ctx):
    """A practice, one client, one session, a peer, and one open conflict on the client:
    phone changed on both sides (base, local, remote all differ), email corrected locally
    (remote still has the base's old one), status changed remotely."""
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Sync Practice")
        client_id = clients_repo.create_client(conn, ctx.keyring, CLINICIAN, practice, AVERY)
        session_id = sessions_repo.create_session(conn, ctx.keyring, CLINICIAN, {
            "client_id": client_id, "starts_at": datetime(2025, 3, 3, 10, tzinfo=timezone.utc),
            "notes": "Practised paced breathing."})
        peer_id = add_peer(conn, "central", "postgresql://sync:s3cret@central.example.org/db?sslmode=verify-full",
                           last_sync_at=datetime.now(timezone.utc) - timedelta(minutes=30))
        row = row_of(conn, _clients, client_id)
        local = conflicts.row_image("clients", row)
        base = {**local, "phone_enc": seal(ctx, conn, "clients", row, "phone", BASE_PHONE),
                "email_enc": seal(ctx, conn, "clients", row, "email", OLD_EMAIL)}
        remote = {**base, "phone_enc": seal(ctx, conn, "clients", row, "phone", REMOTE_PHONE),
                  "status": "INACTIVE", "sync_version": 4242}
        conflict_id = conflicts.queue_conflict(conn, peer_id=peer_id, table_name="clients", row_id=client_id,
                                               base=base, local=local, remote=remote)
    return {"practice": practice, "client_id": client_id, "session_id": session_id, "peer_id": peer_id,
            "conflict_id": conflict_id}


def snapshot(ctx, world) -> tuple:
    """Everything a failed resolution must leave exactly as it was."""
    with ctx.engine.connect() as conn:
        client = dict(row_of(conn, _clients, world["client_id"]))
        conflict = dict(row_of(conn, _conflicts, world["conflict_id"]))
        entries = conn.execute(select(func.count()).select_from(_log)).scalar_one()
        version = current_change_version(conn)
    return client, conflict, entries, version


def resolve(ctx, principal, conflict_id, choices):
    with transaction(ctx.engine) as conn:
        return conflicts.resolve_conflict(conn, ctx.keyring, principal, conflict_id, choices)


def view(ctx, principal, conflict_id):
    with transaction(ctx.engine) as conn:
        return conflicts.get_conflict(conn, ctx.keyring, principal, conflict_id)


def by_name(result: dict) -> dict:
    return {f["name"]: f for f in result["field_values"]}


# --- listing and viewing ----------------------------------------------------------------

def test_list_names_the_differing_fields_and_filters_by_status(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, TherapySession.__table__, world["session_id"])
        local = conflicts.row_image("therapy_sessions", row)
        second = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="therapy_sessions",
                                          row_id=world["session_id"], local=local,
                                          remote={**local, "duration_minutes": 80})
    with ctx.engine.connect() as conn:
        page = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR)
        first_only = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, limit=1)
        after = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, after_id=first_only[0]["id"])
    assert [c["id"] for c in page] == [world["conflict_id"], second]       # oldest first
    assert page[0]["fields"] == ["email", "phone", "status"] and page[0]["phi"] is True
    assert page[0]["peer"] == "central" and page[0]["has_base"] is True
    assert page[1]["fields"] == ["duration_minutes"] and page[1]["phi"] is False
    assert [c["id"] for c in after] == [second]
    # equal plaintext under different ciphertexts is not a difference: first_name,
    # ssn and the rest are carried in every image and must not be listed
    assert "first_name" not in page[0]["fields"]

    resolve(ctx, OPERATOR, second, {"duration_minutes": "remote"})
    with ctx.engine.connect() as conn:
        open_ = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, status="open")
        done = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, status="resolved")
        both = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, status=None)
    assert [c["id"] for c in open_] == [world["conflict_id"]]
    assert [c["id"] for c in done] == [second] and done[0]["resolved_by"] == "user:operator"
    assert len(both) == 2


def test_view_masks_phi_for_a_resolver_without_phi_read_and_audits_nothing(ctx, world):
    before = snapshot(ctx, world)[2]
    result = view(ctx, OPERATOR, world["conflict_id"])
    fields = by_name(result)
    assert result["masked"] is True
    assert fields["phone"] == {**fields["phone"], "base": "***-***-0142", "local": "***-***-0100",
                               "remote": "***-***-0177", "differs": True, "changed": "both", "phi": True}
    assert fields["email"]["local"] == "av***@example.org" and fields["email"]["changed"] == "local"
    assert fields["status"]["local"] == "ACTIVE" and fields["status"]["remote"] == "INACTIVE"
    assert fields["status"]["changed"] == "remote" and fields["status"]["phi"] is False
    assert "first_name" not in fields                               # the same on both sides: named only
    assert {"name": "first_name", "phi": True} in result["other_fields"]
    dumped = json.dumps(result, default=str)
    for secret in ("Avery", "Ashford", "912-34-5678", "Maple", OLD_EMAIL, AVERY["email"], LOCAL_PHONE,
                   BASE_PHONE, REMOTE_PHONE):
        assert secret not in dumped
    assert snapshot(ctx, world)[2] == before      # a masked view discloses nothing to audit


def test_view_with_phi_read_shows_plaintext_and_audits_the_read(ctx, world):
    result = view(ctx, LEAD, world["conflict_id"])
    fields = by_name(result)
    assert result["masked"] is False
    assert (fields["phone"]["base"], fields["phone"]["local"], fields["phone"]["remote"]) == (
        BASE_PHONE, LOCAL_PHONE, REMOTE_PHONE)
    assert fields["email"]["remote"] == OLD_EMAIL
    with ctx.engine.connect() as conn:
        entry = audit.tail(conn, limit=1)[0]
    assert (entry.action, entry.actor, entry.table_name, entry.record_id) == (
        "READ", "user:lead", "clients", str(world["client_id"]))
    assert entry.details["phi"] is True and entry.details["via"] == "sync.conflict"
    assert entry.details["fields"] == ["email", "phone"] and LOCAL_PHONE not in json.dumps(entry.details)


# --- minimum necessary: the differing fields, others one at a time on request ------------

UNCHANGED_PHI = ("first_name", "last_name", "ssn", "address")


def audit_entries(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(_log)).scalar_one()


def reveal(ctx, principal, conflict_id, name):
    with transaction(ctx.engine) as conn:
        return conflicts.reveal_field(conn, ctx.keyring, principal, conflict_id, name)


@pytest.mark.parametrize("principal", [LEAD, OPERATOR], ids=["phi-read", "no-phi-read"])
def test_the_view_shows_only_the_differing_fields_and_names_the_rest(ctx, world, principal):
    result = view(ctx, principal, world["conflict_id"])
    assert [f["name"] for f in result["field_values"]] == ["email", "phone", "status"] == result["fields"]
    assert all(f["differs"] for f in result["field_values"])
    others = {f["name"]: f["phi"] for f in result["other_fields"]}
    assert set(UNCHANGED_PHI) <= set(others) and all(others[n] for n in UNCHANGED_PHI)
    assert not set(others) & {"email", "phone", "status"}
    dumped = json.dumps(result, default=str)
    for secret in ("Avery", "Ashford", "912-34-5678", "***-**-", "Maple", "Springfield"):
        assert secret not in dumped, secret           # unchanged PHI: not even masked


def test_the_read_entry_of_a_view_names_only_the_differing_phi_fields(ctx, world):
    before = audit_entries(ctx)
    view(ctx, LEAD, world["conflict_id"])
    with ctx.engine.connect() as conn:
        entries = audit.tail(conn, limit=audit_entries(ctx) - before)
    assert [(e.action, e.table_name, e.record_id) for e in entries] == [
        ("READ", "clients", str(world["client_id"]))]
    assert entries[0].details == {"phi": True, "via": "sync.conflict",
                                  "conflict_id": str(world["conflict_id"]), "fields": ["email", "phone"]}


def test_revealing_a_field_shows_that_field_alone_and_audits_exactly_it(ctx, world):
    before = audit_entries(ctx)
    result = reveal(ctx, LEAD, world["conflict_id"], "ssn")
    assert result["masked"] is False and result["id"] == world["conflict_id"]
    assert (result["table"], result["row_id"]) == ("clients", world["client_id"])
    ssn = result["field"]
    assert (ssn["name"], ssn["phi"], ssn["differs"], ssn["changed"]) == ("ssn", True, False, None)
    assert ssn["base"] == ssn["local"] == ssn["remote"] == AVERY["ssn"]
    dumped = json.dumps(result, default=str)
    for secret in ("Avery", "Ashford", "Maple", LOCAL_PHONE, REMOTE_PHONE, AVERY["email"]):
        assert secret not in dumped, secret            # one field, and nothing else
    with ctx.engine.connect() as conn:
        entries = audit.tail(conn, limit=audit_entries(ctx) - before)
    assert len(entries) == 1
    assert (entries[0].action, entries[0].actor, entries[0].table_name, entries[0].record_id) == (
        "READ", "user:lead", "clients", str(world["client_id"]))
    assert entries[0].details == {"phi": True, "via": "sync.conflict.field",
                                  "conflict_id": str(world["conflict_id"]), "fields": ["ssn"]}

    reveal(ctx, LEAD, world["conflict_id"], "address")   # each reveal its own entry
    with ctx.engine.connect() as conn:
        latest = audit.tail(conn, limit=1)[0]
    assert latest.details["fields"] == ["address"] and audit_entries(ctx) == before + 2


def test_revealing_a_field_without_phi_read_shows_it_masked_and_audits_nothing(ctx, world):
    before = audit_entries(ctx)
    result = reveal(ctx, OPERATOR, world["conflict_id"], "ssn")
    assert result["masked"] is True and result["field"]["local"] == "***-**-5678"
    assert AVERY["ssn"] not in json.dumps(result, default=str)
    status = reveal(ctx, OPERATOR, world["conflict_id"], "intake_date")["field"]
    assert status["phi"] is False and status["differs"] is False
    assert audit_entries(ctx) == before
    resolve(ctx, OPERATOR, world["conflict_id"], ALL)      # and resolves with no plaintext at all


def test_a_non_phi_field_revealed_with_phi_read_is_not_a_phi_read(ctx, world):
    before = audit_entries(ctx)
    assert reveal(ctx, LEAD, world["conflict_id"], "data_sensitivity")["field"]["phi"] is False
    assert audit_entries(ctx) == before


@pytest.mark.parametrize("name, message", [
    ("shoe_size", "has no field 'shoe_size'; its fields are: practitioner_id, first_name"),
    ("DROP TABLE x; --", r"has no field \(not a field name\)"),
    ("email_enc", "has no field 'email_enc'"),
    ("sync_version", "has no field 'sync_version'"),
], ids=["unknown", "not-a-name", "column-not-field", "bookkeeping"])
def test_revealing_a_field_the_conflict_lacks_is_refused_and_audits_nothing(ctx, world, name, message):
    before = audit_entries(ctx)
    with pytest.raises(ValidationError, match=message):
        reveal(ctx, LEAD, world["conflict_id"], name)
    with pytest.raises(PermissionDenied, match="sync:resolve"):
        reveal(ctx, CLINICIAN, world["conflict_id"], "ssn")
    with pytest.raises(NotFoundError):
        reveal(ctx, LEAD, new_id(), "ssn")
    assert audit_entries(ctx) == before


def test_reading_or_resolving_needs_sync_resolve(ctx, world):
    with transaction(ctx.engine) as conn:
        with pytest.raises(PermissionDenied, match="sync:resolve"):
            conflicts.list_conflicts(conn, ctx.keyring, AUDITOR)
        with pytest.raises(PermissionDenied, match="sync:resolve"):
            conflicts.get_conflict(conn, ctx.keyring, CLINICIAN, world["conflict_id"])
    before = snapshot(ctx, world)
    with pytest.raises(PermissionDenied):
        resolve(ctx, AUDITOR, world["conflict_id"], {"phone": "remote", "email": "local", "status": "remote"})
    assert snapshot(ctx, world) == before


# --- resolving ------------------------------------------------------------------------

def test_resolve_applies_each_choice_bumps_the_row_and_audits(ctx, world):
    client_before, _, _, version_before = snapshot(ctx, world)
    result = resolve(ctx, OPERATOR, world["conflict_id"], {"phone": "remote", "email": "local", "status": "remote"})
    assert result["status"] == "resolved" and result["resolved_by"] == "user:operator"
    assert REMOTE_PHONE not in json.dumps(result, default=str)      # no plaintext back to a non-phi reader
    with transaction(ctx.engine) as conn:
        entries = audit.tail(conn, limit=2)
        client = clients_repo.get_client(conn, ctx.keyring, CLINICIAN, world["client_id"])
        row = row_of(conn, _clients, world["client_id"])
        conflict = row_of(conn, _conflicts, world["conflict_id"])
        found = clients_repo.find_clients(conn, ctx.keyring, CLINICIAN, email=AVERY["email"])
    assert client["phone"] == REMOTE_PHONE and client["email"] == AVERY["email"]
    assert client["status"] == "INACTIVE" and client["first_name"] == "Avery"
    assert row["sync_version"] > version_before >= client_before["sync_version"]
    assert row["sync_version"] == conflict["resolution"]["sync_version"]
    assert row["data_checksum"] == row_checksum(dict(row))
    assert row["updated_at"] > client_before["updated_at"]
    assert key_id_of(row["phone_enc"]) == row["key_id"]
    assert [f["id"] for f in found] == [world["client_id"]]        # blind index still finds the chosen email
    assert conflict["status"] == "resolved" and conflict["resolved_by"] == "user:operator"
    assert conflict["resolved_at"] is not None
    assert conflict["resolution"]["choices"] == {"phone": "remote", "email": "local", "status": "remote"}
    sync_entry, update_entry = entries[0], entries[1]
    assert (update_entry.action, update_entry.table_name, update_entry.record_id) == (
        "UPDATE", "clients", str(world["client_id"]))
    assert update_entry.details == {"via": "sync.resolve", "conflict_id": str(world["conflict_id"]),
                                    "fields": ["email", "phone", "status"]}
    assert (sync_entry.action, sync_entry.table_name, sync_entry.record_id, sync_entry.actor) == (
        "SYNC", "sync_conflicts", str(world["conflict_id"]), "user:operator")
    for entry in (sync_entry, update_entry):
        assert REMOTE_PHONE not in json.dumps(entry.details)


def test_choosing_base_restores_the_common_ancestor_and_updates_the_blind_index(ctx, world):
    resolve(ctx, LEAD, world["conflict_id"], {"phone": "base", "email": "base", "status": "local"})
    with transaction(ctx.engine) as conn:
        client = clients_repo.get_client(conn, ctx.keyring, CLINICIAN, world["client_id"])
        by_old = clients_repo.find_clients(conn, ctx.keyring, CLINICIAN, email=OLD_EMAIL)
        by_new = clients_repo.find_clients(conn, ctx.keyring, CLINICIAN, email=AVERY["email"])
    assert (client["phone"], client["email"], client["status"]) == (BASE_PHONE, OLD_EMAIL, "ACTIVE")
    assert [c["id"] for c in by_old] == [world["client_id"]] and by_new == []


def test_a_remote_value_sealed_with_another_key_is_sealed_again_with_the_rows_key(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, _clients, world["client_id"])
        other = ctx.keyring.create_key(conn, KeyPurpose.CLIENT, world["client_id"], version=2)
        local = conflicts.row_image("clients", row)
        cid = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients",
                                       row_id=world["client_id"], local=local,
                                       remote={**local, "address_enc": seal(ctx, conn, "clients", row, "address",
                                                                            "9 Juniper Street", key=other)})
    resolve(ctx, OPERATOR, cid, {"address": "remote"})
    with transaction(ctx.engine) as conn:
        row = row_of(conn, _clients, world["client_id"])
        client = clients_repo.get_client(conn, ctx.keyring, CLINICIAN, world["client_id"])
    assert key_id_of(row["address_enc"]) == row["key_id"] != other.key_id
    assert client["address"] == "9 Juniper Street"


def test_a_session_conflict_resolves_its_encrypted_notes(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, TherapySession.__table__, world["session_id"])
        local = conflicts.row_image("therapy_sessions", row)
        cid = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="therapy_sessions",
                                       row_id=world["session_id"], local=local,
                                       remote={**local, "notes_enc": seal(ctx, conn, "therapy_sessions", row,
                                                                          "notes", "Amended on the peer."),
                                               "payment_status": "PAID"})
    masked = by_name(view(ctx, OPERATOR, cid))
    assert masked["notes"]["remote"] == "[redacted]" and masked["notes"]["differs"] is True
    resolve(ctx, OPERATOR, cid, {"notes": "remote", "payment_status": "remote"})
    with transaction(ctx.engine) as conn:
        sessions = sessions_repo.list_sessions(conn, ctx.keyring, CLINICIAN, world["client_id"])
    assert sessions[0]["notes"] == "Amended on the peer." and sessions[0]["payment_status"] == "PAID"


def test_a_tampered_version_is_shown_unreadable_and_cannot_be_chosen(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, _clients, world["client_id"])
        local = conflicts.row_image("clients", row)
        blob = bytearray(base64.b64decode(seal(ctx, conn, "clients", row, "phone", "555-0199")))
        blob[-1] ^= 1
        cid = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients",
                                       row_id=world["client_id"], local=local,
                                       remote={**local, "phone_enc": base64.b64encode(bytes(blob)).decode()})
    phone = by_name(view(ctx, LEAD, cid))["phone"]
    assert phone["remote"] == conflicts.UNREADABLE and phone["unreadable"] == ["remote"] and phone["differs"]
    with pytest.raises(ValidationError, match="remote value of field phone cannot be used"):
        resolve(ctx, LEAD, cid, {"phone": "remote"})
    resolve(ctx, LEAD, cid, {"phone": "local"})


# --- bad input: a clear error and nothing changed --------------------------------------

ALL = {"phone": "remote", "email": "local", "status": "remote"}


@pytest.mark.parametrize("choices, error, message", [
    ({**ALL, "shoe_size": "local"}, ValidationError, "has no field 'shoe_size'"),
    ({**ALL, "DROP TABLE x; --": "local"}, ValidationError, r"has no field \(not a field name\)"),
    ({**ALL, "phone": "mine"}, ValidationError, "choice for field phone must be one of local, remote, base"),
    ({"phone": "remote"}, ValidationError, "choose a version for every differing field; missing: email, status"),
    ({**ALL, "first_name": "remote"}, ValidationError, "field first_name is the same locally and remotely"),
    ({}, ValidationError, "give a choice"),
], ids=["unknown-field", "not-a-name", "invalid-choice", "missing-field", "same-field", "empty"])
def test_bad_choices_are_refused_and_change_nothing(ctx, world, choices, error, message):
    before = snapshot(ctx, world)
    with pytest.raises(error, match=message):
        resolve(ctx, OPERATOR, world["conflict_id"], choices)
    assert snapshot(ctx, world) == before


def test_an_unknown_conflict_is_not_found(ctx, world):
    before = snapshot(ctx, world)
    missing = new_id()
    with pytest.raises(NotFoundError, match=f"sync conflict {missing} does not exist"):
        resolve(ctx, OPERATOR, missing, ALL)
    with pytest.raises(NotFoundError):
        view(ctx, OPERATOR, missing)
    assert snapshot(ctx, world) == before


def test_an_already_resolved_conflict_is_refused(ctx, world):
    resolve(ctx, OPERATOR, world["conflict_id"], ALL)
    before = snapshot(ctx, world)
    with pytest.raises(ConflictError, match="is already resolved .by user:operator at"):
        resolve(ctx, LEAD, world["conflict_id"], {**ALL, "phone": "local"})
    assert snapshot(ctx, world) == before


def test_base_cannot_be_chosen_when_there_is_no_base(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, _clients, world["client_id"])
        local = conflicts.row_image("clients", row)
        cid = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients",
                                       row_id=world["client_id"], local=local, remote={**local, "status": "VIP"})
    assert by_name(view(ctx, OPERATOR, cid))["status"]["changed"] is None
    before = snapshot(ctx, world)
    with pytest.raises(ValidationError, match="has no base version"):
        resolve(ctx, OPERATOR, cid, {"status": "base"})
    assert snapshot(ctx, world) == before


def test_a_row_edited_after_the_conflict_was_queued_is_not_overwritten(ctx, world):
    with transaction(ctx.engine) as conn:
        clients_repo.update_client(conn, ctx.keyring, CLINICIAN, world["client_id"], {"phone": "555-0111"})
    before = snapshot(ctx, world)
    with pytest.raises(ConflictError, match="changed after conflict .* was queued"):
        resolve(ctx, OPERATOR, world["conflict_id"], ALL)
    assert snapshot(ctx, world) == before


def test_a_required_field_cannot_be_resolved_to_empty(ctx, world):
    with transaction(ctx.engine) as conn:
        row = row_of(conn, _clients, world["client_id"])
        local = conflicts.row_image("clients", row)
        cid = conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients",
                                       row_id=world["client_id"], local=local, remote={**local, "status": None})
    before = snapshot(ctx, world)
    with pytest.raises(ValidationError, match="field status cannot be empty"):
        resolve(ctx, OPERATOR, cid, {"status": "remote"})
    assert snapshot(ctx, world) == before


def test_queueing_checks_the_images_against_the_table(ctx, world):
    with transaction(ctx.engine) as conn:
        local = conflicts.row_image("clients", row_of(conn, _clients, world["client_id"]))
        with pytest.raises(ValidationError, match="names column.*'shoe_size', which clients does not have"):
            conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients",
                                     row_id=world["client_id"], local=local, remote={**local, "shoe_size": 9})
        with pytest.raises(ValidationError, match="table 'users' is not resolvable"):
            conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="users",
                                     row_id=world["client_id"], local={}, remote={})
        with pytest.raises(NotFoundError, match="sync peer"):
            conflicts.queue_conflict(conn, peer_id=new_id(), table_name="clients",
                                     row_id=world["client_id"], local=local, remote=local)


def test_a_broken_stored_image_is_named_in_the_list_not_fatal(ctx, world):
    with transaction(ctx.engine) as conn:
        conn.execute(update(_conflicts).where(_conflicts.c.id == world["conflict_id"])
                     .values(remote={"status": "INACTIVE", "bogus": 1}))
        page = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR)
    assert page[0]["fields"] is None and "names column(s) 'bogus'" in page[0]["problem"]


# --- peers and lag --------------------------------------------------------------------

def test_peers_show_lag_and_open_conflicts_and_hide_passwords(ctx, world):
    with transaction(ctx.engine) as conn:
        version = current_change_version(conn)
        for table in synced_tables():
            set_watermark(conn, world["peer_id"], table.name, PUSH, version)
        add_peer(conn, "north", "sqlite:////srv/north/strongroom.db", direction="pull")
    with ctx.engine.connect() as conn:
        central, north = list_peers(conn)
    assert central["name"] == "central" and central["url"] == "postgresql://sync:***@central.example.org/db?sslmode=verify-full"
    assert central["pending_changes"] == 0 and central["open_conflicts"] == 1
    assert 1790 <= central["seconds_since_sync"] <= 1900
    assert north["pending_changes"] is None and north["seconds_since_sync"] is None
    resolve(ctx, OPERATOR, world["conflict_id"], ALL)
    with ctx.engine.connect() as conn:
        central = list_peers(conn)[0]
    assert central["pending_changes"] == 1 and central["open_conflicts"] == 0    # the resolution waits to go out
    assert redact_url("https://host/x") == "https://host/x"


def test_a_page_of_conflicts_on_many_clients_costs_one_key_lookup(ctx, world):
    """Forty conflicts on forty clients: listing them asks for their keys once, not once
    per client (the statements do not grow with the page)."""
    from sqlalchemy import event

    with transaction(ctx.engine) as conn:
        ids = []
        clients_repo.insert_clients(conn, ctx.keyring, SYSTEM, world["practice"], demo.client_records(40),
                                    created=ids)
        for client_id in ids:
            row = row_of(conn, _clients, client_id)
            local = conflicts.row_image("clients", row)
            remote = {**local, "phone_enc": seal(ctx, conn, "clients", row, "phone", REMOTE_PHONE)}
            conflicts.queue_conflict(conn, peer_id=world["peer_id"], table_name="clients", row_id=client_id,
                                     local=local, remote=remote)
    ctx.keyring._ciphers.clear()
    seen = []
    event.listen(ctx.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with ctx.engine.connect() as conn:
        page = conflicts.list_conflicts(conn, ctx.keyring, OPERATOR, limit=100)
    assert len(page) == 41 and all(c["fields"] for c in page)
    assert sum("data_keys" in s for s in seen) == 1, seen
