"""Therapy sessions, which are also the practice's appointments (issue 20): the service
and staff member booked, price, payment status and whether a reminder went out.

Notes and the first source's clinical fields (SOAP summary, billing codes, insurance
info) are PHI sealed with the client's data key, so shredding a client's key erases them
too; session number and consent verified are plain. Without `phi:read` they are masked.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, insert, select, update

from strongroom.core import audit
from strongroom.core.crypto.fields import FieldCipher, associated_data
from strongroom.core.crypto.keyring import KEY_RECORD, Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import (Client, DataKey, KeyState, PaymentStatus, Service, SessionStatus, Staff,
                                       TherapySession)
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.masking import REDACTED
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.ids import new_id

TABLE = "therapy_sessions"
PHI = CLIENT_KEYED[TABLE]       # notes, soap_summary, billing_codes, insurance_info
_sessions = TherapySession.__table__
_services = Service.__table__
_staff = Staff.__table__
_clients = Client.__table__
_keys = DataKey.__table__


class SessionInput(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    client_id: uuid.UUID
    starts_at: datetime
    duration_minutes: Annotated[int, Field(ge=5, le=600)] = 50
    session_type: Annotated[str, StringConstraints(min_length=1, max_length=40)] = "individual"
    notes: Annotated[str, StringConstraints(max_length=200_000)] | None = None
    status: SessionStatus = SessionStatus.SCHEDULED
    payment_status: PaymentStatus = PaymentStatus.PENDING
    price_cents: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    practitioner_id: uuid.UUID | None = None
    service_id: uuid.UUID | None = None
    staff_id: uuid.UUID | None = None
    reminder_sent: bool = False
    session_number: Annotated[int, Field(ge=1, le=100_000)] | None = None
    soap_summary: Annotated[str, StringConstraints(max_length=200_000)] | None = None
    billing_codes: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    insurance_info: Annotated[str, StringConstraints(max_length=5_000)] | None = None
    consent_verified: bool = False


def _validate(data: dict | SessionInput) -> SessionInput:
    if isinstance(data, SessionInput):
        return data
    try:
        item = SessionInput.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"therapy_sessions: {problems}") from None
    if item.starts_at.tzinfo is None:
        raise ValidationError("therapy_sessions: starts_at must carry a timezone")
    return item


def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def _row(conn: Connection, keyring: Keyring, item: SessionInput, version: int,
         owners: dict[uuid.UUID, uuid.UUID], ciphers: dict[uuid.UUID, FieldCipher]) -> dict:
    practice_id = owners.get(item.client_id)
    if practice_id is None:
        practice_id = conn.execute(select(_clients.c.practice_id).where(
            _clients.c.id == item.client_id, _clients.c.deleted_at.is_(None))).scalar()
        if practice_id is None:
            raise NotFoundError(f"therapy_sessions: client {item.client_id} not found")
        owners[item.client_id] = practice_id
    cipher = ciphers.get(item.client_id)
    if cipher is None:   # one key look-up per client per call, not per row (bulk inserts)
        cipher = ciphers[item.client_id] = keyring.client_cipher(conn, item.client_id)
    row_id = new_id()
    now = utcnow()
    price = _check_links(conn, practice_id, item.service_id, item.staff_id)
    row = {
        "id": row_id, "practice_id": practice_id, "client_id": item.client_id,
        "practitioner_id": item.practitioner_id, "key_id": cipher.key_id,
        "starts_at": item.starts_at, "duration_minutes": item.duration_minutes,
        "session_type": item.session_type, "status": item.status,
        "payment_status": item.payment_status,
        # An appointment for a service costs the service's price unless one is given.
        "price_cents": price if item.price_cents is None else item.price_cents,
        **{f: getattr(item, f) for f in _PLAIN_NEW},
        **{f"{f}_enc": _seal(cipher, getattr(item, f), f, row_id) for f in PHI},
        "created_at": now, "updated_at": now, "sync_version": version, "deleted_at": None,
    }
    row["data_checksum"] = row_checksum(row)
    return row


# Issue 20's plain columns, stored as given.
_PLAIN_NEW = ("service_id", "staff_id", "reminder_sent", "session_number", "consent_verified")


def _seal(cipher: FieldCipher, value: str | None, field: str, row_id: uuid.UUID) -> bytes | None:
    return None if value is None else cipher.encrypt(value.encode(), associated_data(TABLE, field, row_id))


def _check_links(conn: Connection, practice_id: uuid.UUID, service_id: uuid.UUID | None,
                 staff_id: uuid.UUID | None) -> int | None:
    """The service and staff member named belong to the session's practice (and are not
    deleted); returns the service's price, if one is named."""
    price = None
    if service_id is not None:
        found = conn.execute(select(_services.c.price_cents).where(
            _services.c.id == service_id, _services.c.practice_id == practice_id,
            _services.c.deleted_at.is_(None))).first()
        if found is None:
            raise ValidationError(f"{TABLE}: service_id: no such service in this practice")
        price = found[0]
    if staff_id is not None and conn.execute(select(_staff.c.id).where(
            _staff.c.id == staff_id, _staff.c.practice_id == practice_id,
            _staff.c.deleted_at.is_(None))).first() is None:
        raise ValidationError(f"{TABLE}: staff_id: no such staff member in this practice")
    return price


def _write(conn: Connection, principal: Principal, rows: list[dict]) -> None:
    conn.execute(insert(_sessions), rows)
    audit.append(conn, actor=principal.actor, action="CREATE", table_name=TABLE,
                 record_id=rows[0]["id"] if len(rows) == 1 else None,
                 # A bulk entry names its rows by range, as clients' does: the unaudited-
                 # changes check (core/integrity/unaudited.py) accounts for them by it.
                 details={"count": len(rows), "bulk": len(rows) > 1, "first_id": str(rows[0]["id"]),
                          "last_id": str(rows[-1]["id"])},
                 session_id=principal.session_id, ip_address=principal.ip_address)


def insert_sessions(conn: Connection, keyring: Keyring, principal: Principal,
                    items: Iterable[dict | SessionInput], *, batch_size: int = 1000) -> int:
    """Write sessions in batches (one audit entry each); notes use each client's newest key.

    Each batch looks up its clients and their newest keys together (two queries, the
    keys unwrapped once and dropped with the batch), not one client at a time: with
    sessions spread over 100k clients the per-client look-ups were most of the time."""
    _require(principal, "table:therapy_sessions:write")
    version = next_change_version(conn)
    total = 0
    batch: list[SessionInput] = []
    for data in items:
        batch.append(_validate(data))
        if len(batch) >= batch_size:
            total += _write_batch(conn, keyring, principal, batch, version)
            batch = []
    if batch:
        total += _write_batch(conn, keyring, principal, batch, version)
    return total


def _write_batch(conn: Connection, keyring: Keyring, principal: Principal, items: list[SessionInput],
                 version: int) -> int:
    owners, ciphers = _owners_and_keys(conn, keyring, {item.client_id for item in items})
    _write(conn, principal, [_row(conn, keyring, item, version, owners, ciphers) for item in items])
    return len(items)


def _owners_and_keys(conn: Connection, keyring: Keyring, client_ids: set[uuid.UUID],
                     ) -> tuple[dict[uuid.UUID, uuid.UUID], dict[uuid.UUID, FieldCipher]]:
    """Each live client's practice and newest active data key. A client missing here (not
    found, erased, key unopenable) is left to `_row`, which raises what a single insert
    would."""
    ids = list(client_ids)
    owners = dict(conn.execute(select(_clients.c.id, _clients.c.practice_id).where(
        _clients.c.id.in_(ids), _clients.c.deleted_at.is_(None))).all())
    newest: dict[uuid.UUID, tuple] = {}
    for client_id, version, *record in conn.execute(
            select(_keys.c.client_id, _keys.c.version, _keys.c.id, *KEY_RECORD)
            .where(_keys.c.client_id.in_(ids), _keys.c.state == KeyState.ACTIVE)):
        if client_id not in newest or version > newest[client_id][0]:
            newest[client_id] = (version, tuple(record))
    keys = keyring.batch_keys(conn, {record[0].bytes for _, record in newest.values()},
                              fetched=[record for _, record in newest.values()])
    ciphers = {client_id: cipher for client_id, (_, record) in newest.items()
               if (cipher := keys.get(record[0].bytes)) is not None}
    return owners, ciphers


def create_session(conn: Connection, keyring: Keyring, principal: Principal,
                   data: dict | SessionInput) -> uuid.UUID:
    _require(principal, "table:therapy_sessions:write")
    row = _row(conn, keyring, _validate(data), next_change_version(conn), {}, {})
    _write(conn, principal, [row])
    return row["id"]


# What an edit may change: the client and practice a session belongs to stay fixed.
EDITABLE = ("starts_at", "duration_minutes", "session_type", "status", "payment_status", "price_cents",
            *_PLAIN_NEW, *PHI)


def update_session(conn: Connection, keyring: Keyring, principal: Principal,
                   session_id: uuid.UUID, changes: dict) -> None:
    """Change a session's fields (notes resealed with the row's own key, so the same key
    still opens every field of the row); audited UPDATE naming the fields, never values."""
    _require(principal, "table:therapy_sessions:write")
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown or not changes:
        raise ValidationError("therapy_sessions: an update may change only " + ", ".join(EDITABLE))
    row = conn.execute(select(_sessions).where(_sessions.c.id == session_id,
                                                _sessions.c.deleted_at.is_(None))).mappings().first()
    if row is None:
        raise NotFoundError("therapy_sessions: no such session (not found)")
    current = {name: row[name] for name in EDITABLE if name not in PHI}
    checked = _validate({**current, **changes, "client_id": row["client_id"]})
    if {"service_id", "staff_id"} & set(changes):
        _check_links(conn, row["practice_id"], checked.service_id if "service_id" in changes else None,
                     checked.staff_id if "staff_id" in changes else None)
    values = {name: getattr(checked, name) for name in changes if name not in PHI}
    sealed = [name for name in changes if name in PHI]
    if sealed:
        cipher = keyring.cipher(conn, row["key_id"])
        for name in sealed:
            values[f"{name}_enc"] = _seal(cipher, getattr(checked, name), name, session_id)
    values["updated_at"] = utcnow()
    values["sync_version"] = next_change_version(conn)
    values["data_checksum"] = row_checksum({**row, **values})
    conn.execute(update(_sessions).where(_sessions.c.id == session_id).values(**values))
    audit.append(conn, actor=principal.actor, action="UPDATE", table_name=TABLE, record_id=session_id,
                 details={"fields": sorted(changes)}, session_id=principal.session_id,
                 ip_address=principal.ip_address)


def list_sessions(conn: Connection, keyring: Keyring, principal: Principal,
                  client_id: uuid.UUID, *, limit: int = 100, reveal: bool = True) -> list[dict]:
    """A client's sessions, newest first; notes decrypted only for `phi:read` and when
    `reveal` (a view with no use for them, such as booking, asks for none: nothing is
    opened and no READ is audited)."""
    _require(principal, "table:therapy_sessions:read")
    rows = conn.execute(select(_sessions).where(_sessions.c.client_id == client_id,
                                                _sessions.c.deleted_at.is_(None))
                        .order_by(_sessions.c.starts_at.desc()).limit(limit)).mappings().all()
    reveal = reveal and principal.can("phi:read")
    out = [_shown(conn, keyring, row, reveal) for row in rows]
    if reveal and rows:
        audit.append(conn, actor=principal.actor, action="READ", table_name=TABLE,
                     record_id=client_id, details={"count": len(rows), "phi": True, "by_client": True},
                     session_id=principal.session_id, ip_address=principal.ip_address)
    return out


def get_session(conn: Connection, keyring: Keyring, principal: Principal, session_id: uuid.UUID,
                *, reveal: bool = True) -> dict:
    """One session as list_sessions shows it. Its PHI is opened (and the READ audited)
    only for `phi:read` and when `reveal`: a caller that has just written the row gets it
    back masked, so writing is not also a read of the clinical fields."""
    _require(principal, "table:therapy_sessions:read")
    row = conn.execute(select(_sessions).where(_sessions.c.id == session_id,
                                               _sessions.c.deleted_at.is_(None))).mappings().first()
    if row is None:
        raise NotFoundError("therapy_sessions: no such session (not found)")
    reveal = reveal and principal.can("phi:read")
    out = _shown(conn, keyring, row, reveal)
    if reveal:
        audit.append(conn, actor=principal.actor, action="READ", table_name=TABLE, record_id=session_id,
                     details={"count": 1, "phi": True}, session_id=principal.session_id,
                     ip_address=principal.ip_address)
    return out


def _shown(conn: Connection, keyring: Keyring, row, reveal: bool) -> dict:
    """A session row as callers see it: PHI opened when `reveal`, else a redaction mark
    (None stays None: that a field is empty is not PHI)."""
    item = {"id": row["id"], "client_id": row["client_id"], "starts_at": row["starts_at"],
            "duration_minutes": row["duration_minutes"], "session_type": row["session_type"],
            "status": row["status"].value, "payment_status": row["payment_status"].value,
            "price_cents": row["price_cents"], **{f: row[f] for f in _PLAIN_NEW}}
    for name in PHI:
        blob = row[f"{name}_enc"]
        if blob is not None:
            blob = (keyring.cipher(conn, row["key_id"]).decrypt(
                blob, associated_data(TABLE, name, row["id"]),
                where=f"{TABLE}.{name} of row {row['id']}").decode() if reveal else REDACTED)
        item[name] = blob
    return item

