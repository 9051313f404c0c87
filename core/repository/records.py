"""Whole-table reads for exports: clinical rows streamed in batches, PHI decrypted with
each row's data key and masked unless the reader may and wants to see it in full.

The single-record reads (clients.get_client, sessions.list_sessions) serve people
looking at one client; this serves a job walking a whole table. It never holds more
than one batch, and it names fields, never values, in anything it raises.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
import enum
import uuid

from sqlalchemy import ColumnElement, Connection

from strongroom.core.crypto.fields import key_id_of
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import Client, ClientFile, TherapySession
from strongroom.core.db.paging import batches
from strongroom.core.errors import KeyUnavailableError, PermissionDenied
from strongroom.core.masking import mask_field
from strongroom.core.principal import Principal

ERASED = "[erased]"
MODELS = {"clients": Client, "therapy_sessions": TherapySession, "client_files": ClientFile}


def plain_value(value: object) -> object:
    """A column value as JSON-ready data: enums by value, ids and dates as ISO text."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def require_read(principal: Principal, table: str) -> None:
    if not principal.can(f"table:{table}:read"):
        raise PermissionDenied(f"{principal.actor} lacks permission table:{table}:read")


def stream_records(conn: Connection, keyring: Keyring, principal: Principal, table: str,
                   fields: tuple[str, ...], *, where: ColumnElement[bool] | None = None,
                   reveal: bool = False, batch_size: int = 500) -> Iterator[list[dict]]:
    """Batches of `table`'s rows (id order) as {field: value} for `fields`.

    Encrypted fields are decrypted and then masked (core.masking) unless `reveal`,
    which needs `phi:read`. The caller audits the read (an export audits it once, as
    EXPORT, with the row count)."""
    require_read(principal, table)
    if reveal and not principal.can("phi:read"):
        raise PermissionDenied(f"{principal.actor} lacks permission phi:read")
    phi = set(CLIENT_KEYED.get(table, ())) & set(fields)
    model_table = MODELS[table].__table__
    for rows in batches(conn, model_table, size=batch_size, where=where):
        out = []
        for row in rows:
            record = {}
            for field in fields:
                if field in phi:
                    text = _open(conn, keyring, table, field, row)
                    record[field] = text if reveal or text == ERASED else mask_field(field, text)
                else:
                    record[field] = plain_value(row[field])
            out.append(record)
        yield out


def _open(conn: Connection, keyring: Keyring, table: str, field: str, row) -> str | None:
    """One field's plaintext; ERASED when its client's key has been crypto-shredded (the
    row itself stays, as a tombstone would, so counts still add up)."""
    blob = row[f"{field}_enc"]
    if blob is None:
        return None
    try:
        cipher = keyring.cipher(conn, key_id_of(blob))   # the key inside the ciphertext: rotation-safe
    except KeyUnavailableError:
        return ERASED
    return cipher.decrypt_text(blob, table, field, row["id"])
