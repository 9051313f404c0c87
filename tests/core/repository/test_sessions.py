"""Therapy sessions written in bulk: each batch looks its clients and their keys up
together, and a session for an unknown or erased client is refused as a single insert
refuses it."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import event, select

from strongroom.core.crypto.fields import key_id_of
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import TherapySession
from strongroom.core.demo import client_records, session_records
from strongroom.core.errors import KeyUnavailableError, NotFoundError
from strongroom.core.ids import new_id
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import sessions as repo
from strongroom.core.repository.practices import create_practice


@pytest.fixture
def client_ids(ctx):
    created: list = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Sessions Practice")
        clients_repo.insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(120), created=created)
    return created


def test_bulk_insert_asks_per_batch_not_per_client(ctx, client_ids):
    """240 sessions of 120 clients in batches of 100: a handful of statements per batch."""
    ctx.keyring._ciphers.clear()
    seen = []
    event.listen(ctx.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with transaction(ctx.engine) as conn:
        n = repo.insert_sessions(conn, ctx.keyring, SYSTEM, session_records(client_ids, 2), batch_size=100)
    assert n == 240
    assert len(seen) <= 30, len(seen)


def test_bulk_inserted_notes_are_sealed_with_each_clients_key_and_read_back(ctx, client_ids):
    with transaction(ctx.engine) as conn:
        repo.insert_sessions(conn, ctx.keyring, SYSTEM, session_records(client_ids[:3], 2, note_bytes=50))
        keys = {c: ctx.keyring.client_cipher(conn, c).key_id for c in client_ids[:3]}
        rows = conn.execute(select(TherapySession.__table__)).mappings().all()
        assert len(rows) == 6 and all(key_id_of(r["notes_enc"]) == keys[r["client_id"]] for r in rows)
        notes = repo.list_sessions(conn, ctx.keyring, SYSTEM, client_ids[0])
    assert len(notes) == 2 and all(n["notes"].startswith(("Client", "We", "Practised", "Agreed", "Discussed",
                                                           "Explored", "Plan")) for n in notes)


def test_a_session_of_an_unknown_or_erased_client_is_refused(ctx, client_ids):
    when = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    with pytest.raises(NotFoundError, match="not found"):
        with transaction(ctx.engine) as conn:
            repo.insert_sessions(conn, ctx.keyring, SYSTEM, [{"client_id": new_id(), "starts_at": when}])
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, client_ids[0])
    with pytest.raises(KeyUnavailableError, match="no active data key"):
        with transaction(ctx.engine) as conn:
            repo.insert_sessions(conn, ctx.keyring, SYSTEM, [{"client_id": client_ids[1], "starts_at": when},
                                                            {"client_id": client_ids[0], "starts_at": when}])


def test_an_amended_note_is_resealed_with_the_rows_key_and_the_update_audited_by_field_name(ctx, client_ids):
    from strongroom.core import audit
    from strongroom.core.repository.changes import row_checksum

    with transaction(ctx.engine) as conn:
        session_id = repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client_ids[0], "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc),
            "notes": "Practised paced breathing."})
        before = dict(conn.execute(select(TherapySession.__table__)).mappings().one())
        repo.update_session(conn, ctx.keyring, SYSTEM, session_id,
                            {"notes": "Practised paced breathing. Addendum: homework agreed.", "duration_minutes": 80})
        after = dict(conn.execute(select(TherapySession.__table__)).mappings().one())
        (shown,) = repo.list_sessions(conn, ctx.keyring, SYSTEM, client_ids[0])
        entry = audit.tail(conn, limit=2)[1]        # newest first: the READ, then the UPDATE
    assert shown["notes"] == "Practised paced breathing. Addendum: homework agreed." and shown["duration_minutes"] == 80
    assert key_id_of(after["notes_enc"]) == before["key_id"] and after["sync_version"] > before["sync_version"]
    assert after["data_checksum"] == row_checksum(after) != before["data_checksum"]
    assert entry.action == "UPDATE" and entry.details == {"fields": ["duration_minutes", "notes"]}


def test_an_update_of_an_unknown_field_or_session_is_refused_without_echoing_it(ctx, client_ids):
    from strongroom.core.errors import ValidationError

    with transaction(ctx.engine) as conn:
        session_id = repo.create_session(conn, ctx.keyring, SYSTEM, {
            "client_id": client_ids[0], "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
    with pytest.raises(ValidationError) as err:
        with transaction(ctx.engine) as conn:
            repo.update_session(conn, ctx.keyring, SYSTEM, session_id, {"client_id": "912-34-5678"})
    assert "912-34-5678" not in str(err.value)
    with pytest.raises(NotFoundError):
        with transaction(ctx.engine) as conn:
            repo.update_session(conn, ctx.keyring, SYSTEM, new_id(), {"notes": "x"})
