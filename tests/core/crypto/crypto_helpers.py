"""Builders for key tests: practices, clients with sessions and files, TOTP-style secrets;
and what the rotation tests share (a simulated crash, reopening, the audited details).

Rows are inserted with SQLAlchemy Core and sealed exactly as the repository does (the
client's newest DEK, AAD = table/field/row id), so rotation is tested against real rows.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from sqlalchemy import Connection, insert, select

from strongroom.core.context import open_context
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED, SYSTEM_KEYED, column
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Base, DataKey, KeyPurpose, Practice, Role

CLIENT_VALUES = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
                 "medical_history": "none recorded", "notes": "prefers mornings"}
SESSION_NOTES = "discussed sleep"
FILE_NAME = "intake.pdf"


def table(name: str):
    return Base.metadata.tables[name]


def add_practice(conn: Connection) -> uuid.UUID:
    pid = uuid.uuid4()
    conn.execute(insert(Practice.__table__), [{"id": pid, "name": "Test Practice", "settings": {}}])
    return pid


def add_client(conn: Connection, keyring: Keyring, practice_id: uuid.UUID,
               sessions: int = 1, files: int = 1) -> uuid.UUID:
    """A client with `sessions` therapy sessions and `files` files, all sealed."""
    client_id = uuid.uuid4()
    cipher = keyring.create_key(conn, KeyPurpose.CLIENT, client_id)
    row = {"id": client_id, "practice_id": practice_id, "key_id": cipher.key_id}
    for field, value in CLIENT_VALUES.items():
        row[column(field)] = cipher.encrypt_text(value, "clients", field, client_id)
    conn.execute(insert(table("clients")), [row])
    for _ in range(sessions):
        sid = uuid.uuid4()
        conn.execute(insert(table("therapy_sessions")), [{
            "id": sid, "practice_id": practice_id, "client_id": client_id,
            "key_id": cipher.key_id, "starts_at": datetime(2030, 1, 1, tzinfo=timezone.utc),
            "notes_enc": cipher.encrypt_text(SESSION_NOTES, "therapy_sessions", "notes", sid)}])
    for _ in range(files):
        fid = uuid.uuid4()
        conn.execute(insert(table("client_files")), [{
            "id": fid, "practice_id": practice_id, "client_id": client_id,
            "key_id": cipher.key_id, "size_bytes": 1, "storage_key": f"f/{fid}",
            "sha256": "0" * 64,
            "file_name_enc": cipher.encrypt_text(FILE_NAME, "client_files", "file_name", fid)}])
    return client_id


def add_user_with_secret(conn: Connection, keyring: Keyring, practice_id: uuid.UUID,
                         secret: str = "JBSWY3DPEHPK3PXP") -> uuid.UUID:
    uid = uuid.uuid4()
    conn.execute(insert(table("users")), [{
        "id": uid, "practice_id": practice_id, "username": f"u{uid.hex[:8]}",
        "role": Role.PRACTITIONER, "password_hash": "x",
        "totp_secret_enc": keyring.system_cipher(conn).encrypt_text(
            secret, "users", "totp_secret", uid)}])
    return uid


def seed(engine, keyring: Keyring, clients: int = 3, users: int = 1) -> dict:
    with transaction(engine) as conn:
        pid = add_practice(conn)
        ids = [add_client(conn, keyring, pid) for _ in range(clients)]
        uids = [add_user_with_secret(conn, keyring, pid) for _ in range(users)]
        keyring.blind_indexer(conn)
    return {"practice_id": pid, "clients": ids, "users": uids}


def decrypt_all(engine, keyring: Keyring) -> dict[str, list[str]]:
    """Every encrypted value in the database, opened with the key its ciphertext names."""
    from strongroom.core.crypto.fields import key_id_of

    out: dict[str, list[str]] = {}
    with transaction(engine, read_only=True) as conn:
        for name, fields in {**CLIENT_KEYED, **SYSTEM_KEYED}.items():
            t = table(name)
            for row in conn.execute(select(t)).mappings():
                for field in fields:
                    blob = row[column(field)]
                    if blob is None:
                        continue
                    cipher = keyring.cipher(conn, key_id_of(blob))
                    if "key_id" in row:
                        assert cipher.key_id == row["key_id"], f"{name} row key_id disagrees"
                    out.setdefault(f"{name}.{field}", []).append(
                        cipher.decrypt_text(blob, name, field, row["id"]))
    return out


def keys(engine, **where) -> list[dict]:
    t = DataKey.__table__
    query = select(t).order_by(t.c.client_id, t.c.version)
    for name, value in where.items():
        query = query.where(t.c[name] == value)
    with transaction(engine, read_only=True) as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


class Crash(Exception):
    """Stands in for the process dying at a chosen instant."""


def reopen(settings):
    return open_context(settings)


def audit_details(engine, action: str = "KEY_ROTATE") -> list[dict]:
    t = AuditLog.__table__
    with transaction(engine, read_only=True) as conn:
        rows = conn.execute(select(t.c.details).where(t.c.action == action).order_by(t.c.id))
        return [json.loads(d) for d in rows.scalars()]


def all_plaintext_expected(values: dict, clients: int) -> None:
    assert values["clients.last_name"] == [CLIENT_VALUES["last_name"]] * clients
    assert values["therapy_sessions.notes"] == [SESSION_NOTES] * clients
    assert values["client_files.file_name"] == [FILE_NAME] * clients
