"""What the job tests share: a world of two practices, their clients, sessions and a
file, the export job run as a given user, and the newest audit entry."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select

from strongroom.core.auth.users import create_user
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, ClientFile
from strongroom.core.jobs import export
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import clients as repo
from strongroom.core.repository import sessions as session_repo
from strongroom.core.repository.practices import create_practice


ALICE = {"first_name": "Alice", "last_name": "Arden", "ssn": "900-12-3456", "email": "alice@example.org",
         "phone": "555-0101", "address": "12 Elm Street, Springfield", "date_of_birth": "1980-02-03",
         "medical_history": "Anxiety; no known allergies.", "notes": "=HYPERLINK(\"x\")"}


BOB = {"first_name": "Bob", "last_name": "Brook"}   # most PHI missing: exported as null


def last_audit(ctx):
    """The newest audit entry, as a mapping."""
    t = AuditLog.__table__
    with ctx.engine.connect() as conn:
        return conn.execute(select(t).order_by(t.c.id.desc()).limit(1)).mappings().one()


def nothing_noop(done, total, message):
    pass


@pytest.fixture
def world(ctx):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Export Practice")
        other = create_practice(conn, SYSTEM, "Other Practice")
        for name, role in (("mgr", "MANAGER"), ("staff", "STAFF"), ("ops", "operator")):
            create_user(conn, ctx.keyring, ctx.settings, practice, name, "Export-Test-Pass-1", role)
        alice = repo.create_client(conn, ctx.keyring, SYSTEM, practice, ALICE)
        bob = repo.create_client(conn, ctx.keyring, SYSTEM, practice, BOB)
        carol = repo.create_client(conn, ctx.keyring, SYSTEM, other, {"first_name": "Carol", "last_name": "Cole"})
        sessions = {}
        for client, day, notes in ((alice, 5, "Talked about work."), (alice, 20, None), (bob, 12, "Sleep (better)."),
                                   (carol, 6, "First visit.")):
            sessions[session_repo.create_session(conn, ctx.keyring, SYSTEM, {
                "client_id": client, "starts_at": datetime(2025, 3, day, 10, tzinfo=timezone.utc),
                "notes": notes, "price_cents": 15000})] = client
        cipher = ctx.keyring.client_cipher(conn, alice)
        file_id = uuid.uuid4()
        conn.execute(insert(ClientFile.__table__), [{
            "id": file_id, "practice_id": practice, "client_id": alice, "key_id": cipher.key_id,
            "size_bytes": 42, "storage_key": f"f/{file_id}", "sha256": "ab" * 32, "content_type": "application/pdf",
            "file_name_enc": cipher.encrypt_text("intake form.pdf", "client_files", "file_name", file_id)}])
    return {"practice": practice, "other": other, "alice": alice, "bob": bob, "carol": carol,
            "sessions": sessions, "file": file_id}


def run_export(ctx, actor="user:mgr", progress=nothing_noop, **params) -> dict:
    return export.run(ctx, {"actor": actor, **params}, progress)
