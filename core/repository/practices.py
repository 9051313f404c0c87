"""Practices: the tenant every clinical row belongs to, and its details (issue 20).

Address, phone and email are the practice's public contact details and stored as they
are. The tax id and licence number are the practice's secrets, not a client's PHI: they
are sealed with the system key (like TOTP seeds, core.db.encrypted.SYSTEM_KEYED), so key
rotation reseals them and they never sit in a row as plaintext. They are shown only to
whoever may edit the practice (`table:practices:write`); everyone else sees them masked.
"""
from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import Connection, insert, select

from strongroom.core import audit
from strongroom.core.db.models import Practice
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.masking import REDACTED
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.repository.rows import check_changes, checked, live_row, require, update_row
from strongroom.core.ids import new_id

_practices = Practice.__table__


def create_practice(conn: Connection, principal: Principal, name: str,
                    timezone: str = "UTC") -> uuid.UUID:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationError("practice name must be 1 to 200 characters")
    now = utcnow()
    row = {"id": new_id(), "name": name, "timezone": timezone, "settings": {}, "address": None, "phone": None,
           "email": None, "tax_id_enc": None, "license_number_enc": None,
           "created_at": now, "updated_at": now, "sync_version": next_change_version(conn),
           "deleted_at": None}
    row["data_checksum"] = row_checksum(row)
    conn.execute(insert(_practices), [row])
    audit.append(conn, actor=principal.actor, action="CREATE", table_name="practices",
                 record_id=row["id"], details={})
    return row["id"]


def list_practices(conn: Connection) -> list[dict]:
    rows = conn.execute(select(_practices.c.id, _practices.c.name)
                        .where(_practices.c.deleted_at.is_(None)).order_by(_practices.c.created_at))
    return [dict(r._mapping) for r in rows]


def only_practice(conn: Connection) -> uuid.UUID:
    """The practice id when exactly one exists (the usual single-practice install)."""
    practices = list_practices(conn)
    if not practices:
        raise NotFoundError("no practice exists yet: run `strongroom init`")
    if len(practices) > 1:
        raise ValidationError("several practices exist: name one with --practice-id")
    return practices[0]["id"]


# Shared by the staff records (core.repository.staff).
PHONE = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ().-]{2,39}$")]
EMAIL = Annotated[str, StringConstraints(strip_whitespace=True, max_length=320,
                                         pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
_SECRET = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
SECRETS = ("tax_id", "license_number")
EDITABLE = ("name", "address", "phone", "email", *SECRETS)


class PracticeDetails(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = None
    phone: PHONE | None = None
    email: EMAIL | None = None
    tax_id: _SECRET | None = None
    license_number: _SECRET | None = None


def get_practice(conn: Connection, keyring: Keyring, principal: Principal, practice_id: uuid.UUID) -> dict:
    """The practice's details; its tax id and licence number opened only for an editor."""
    require(principal, "table:practices:read")
    row = live_row(conn, _practices, practice_id)
    reveal = principal.can("table:practices:write")
    out = {"id": row["id"], "name": row["name"], "timezone": row["timezone"], "address": row["address"],
           "phone": row["phone"], "email": row["email"]}
    opened = []
    for name in SECRETS:
        blob = row[f"{name}_enc"]
        if blob is None or not reveal:
            out[name] = None if blob is None else REDACTED
            continue
        out[name] = keyring.system_cipher(conn).decrypt_text(blob, "practices", name, row["id"])
        opened.append(name)
    if opened:
        audit.append(conn, actor=principal.actor, action="READ", table_name="practices", record_id=row["id"],
                     details={"fields": opened}, session_id=principal.session_id,
                     ip_address=principal.ip_address)
    return out


def update_practice(conn: Connection, keyring: Keyring, principal: Principal, practice_id: uuid.UUID,
                    changes: dict) -> None:
    """Change the practice's details (None clears one, the name excepted); the secrets
    are sealed with the system key under their row and field. Nothing is written unless
    every field is valid."""
    require(principal, "table:practices:write")
    check_changes("practices", changes, EDITABLE)
    row = live_row(conn, _practices, practice_id)
    item = checked(PracticeDetails, {"name": row["name"], **changes}, "practices")
    values: dict = {}
    for name in changes:
        value = getattr(item, name)
        if name in SECRETS:
            values[f"{name}_enc"] = None if value is None else keyring.system_cipher(conn).encrypt_text(
                value, "practices", name, practice_id)
        else:
            values[name] = value
    update_row(conn, principal, _practices, row, values)
