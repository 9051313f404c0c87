"""Re-sealing a stored field under another data key, as key rotations do.

DEK rotation (client keys) and system-key rotation both open a field with the key its
ciphertext names and seal it again under the new key, with the same associated data,
then give the row a new change counter and checksum like any other write.
"""
from __future__ import annotations

import uuid

from sqlalchemy import Connection

from strongroom.core.crypto.fields import FieldCipher, associated_data, key_id_of
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.encrypted import column
from strongroom.core.repository.changes import next_change_version, row_checksum


def mark_changed(conn: Connection, row, values: dict) -> None:
    """New change counter and checksum, as every write does (repository.changes).

    Rotation changes stored bytes, so incremental backups and sync must copy the row
    again and integrity checks must see a checksum that matches it. `updated_at` is
    left alone: nothing a person wrote has changed.
    """
    values["sync_version"] = next_change_version(conn)
    values["data_checksum"] = row_checksum({**row, **values})


def reseal(conn: Connection, keyring: Keyring, target: FieldCipher, blob: bytes, table: str,
           field_name: str, row_id: uuid.UUID) -> bytes:
    """`blob` (a field of `table`'s row `row_id`) opened with the key it names and
    sealed again by `target`, under the same associated data."""
    aad = associated_data(table, field_name, row_id)
    where = f"{table}.{column(field_name)} of row {row_id}"
    plain = keyring.cipher(conn, key_id_of(blob)).decrypt(blob, aad, where=where)
    return target.encrypt(plain, aad)
