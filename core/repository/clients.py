"""Clients: PHI encrypted field by field with the client's own data key.

Writes validate first (a bad field names the field, never its value), then encrypt,
then write and audit in the caller's transaction. Reads need `table:clients:read`;
plaintext PHI needs `phi:read` too, and is audited as a READ. Everyone else gets masked
values (strongroom.core.masking).
"""
from __future__ import annotations

import contextlib
import dataclasses

import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, Engine, func, insert, select, update

from strongroom.core import audit
from strongroom.core.bulk import collector_paused, heap_frozen
from strongroom.core.crypto.fields import FieldCipher
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.engine import transactions
from strongroom.core.db.models import Client, ClientStatus, DataKey, KeyPurpose, Sensitivity
from strongroom.core.db.paging import stream
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.masking import mask_record
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.repository.records import Columns, Layout, enum_value, layout, open_columns, open_rows
from strongroom.core.ids import new_id

TABLE = "clients"
PHI_FIELDS = CLIENT_KEYED[TABLE]
_clients = Client.__table__
_keys = DataKey.__table__

_SSN = re.compile(r"^\d{3}-?\d{2}-?\d{4}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[0-9+()\-. x]{7,25}$")

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(max_length=100_000)]


class ClientInput(BaseModel):
    """A client as written by a person or an import; validated before anything is stored."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    first_name: Text200
    last_name: Text200
    date_of_birth: date | None = None
    ssn: str | None = None
    email: str | None = None
    phone: str | None = None
    address: Annotated[str, StringConstraints(max_length=500)] | None = None
    emergency_contact: Annotated[str, StringConstraints(max_length=500)] | None = None
    medical_history: LongText | None = None
    notes: LongText | None = None
    status: ClientStatus = ClientStatus.ACTIVE
    data_sensitivity: Sensitivity = Sensitivity.HIGH
    intake_date: date | None = None
    retention_expiry_date: date | None = None
    practitioner_id: uuid.UUID | None = None

    @field_validator("ssn")
    @classmethod
    def _ssn(cls, v: str | None) -> str | None:
        if v is not None and not _SSN.match(v):
            raise ValueError("must be 9 digits, as 123-45-6789 or 123456789")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 320 or not _EMAIL.match(v)):
            raise ValueError("must be an email address")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        if v is not None and not _PHONE.match(v):
            raise ValueError("must be a phone number (digits, spaces, + ( ) - .)")
        return v

    @field_validator("date_of_birth")
    @classmethod
    def _dob(cls, v: date | None) -> date | None:
        if v is not None and not (date(1880, 1, 1) <= v <= date.today()):
            raise ValueError("must be a date between 1880 and today")
        return v


def validate(data: dict | ClientInput, *, partial: bool = False) -> ClientInput | dict:
    """Validate input; errors name the fields and rules, never the offending values."""
    if isinstance(data, ClientInput):
        return data
    try:
        if partial:
            unknown = set(data) - set(ClientInput.model_fields)
            if unknown:
                raise ValidationError(f"clients: unknown field(s) {', '.join(sorted(unknown))}")
            base = ClientInput.model_construct(first_name="x", last_name="x")
            merged = {**base.model_dump(), **data}
            checked = ClientInput.model_validate(merged)
            return {k: getattr(checked, k) for k in data}
        return ClientInput.model_validate(data)
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"clients: {problems}") from None


def _plain(field: str, value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)


def _seal(cipher: FieldCipher, row_id: uuid.UUID, values: dict, encrypt: bool) -> dict:
    plain = {}
    out = {}
    for field in PHI_FIELDS:
        if field not in values:
            continue
        text = _plain(field, values[field])
        if text is None:
            out[f"{field}_enc"] = None
        else:
            plain[field] = text.encode()
    if encrypt:
        sealed = cipher.encrypt_fields(TABLE, row_id, plain)
    else:  # benchmark baseline only: the same write path without the cipher
        sealed = plain
    for field, blob in sealed.items():
        out[f"{field}_enc"] = blob
    return out


def _blind(keyring: Keyring, conn: Connection, values: dict) -> dict:
    indexer = keyring.blind_indexer(conn)
    out = {}
    if "email" in values:
        out["email_bidx"] = indexer.index("email", values["email"])
    if "ssn" in values:
        out["ssn_last4_bidx"] = indexer.index("ssn_last4", values["ssn"])
    if "last_name" in values:
        out["last_name_bidx"] = indexer.index("last_name", values["last_name"])
    return out


def _new_row(keyring: Keyring, conn: Connection, practice_id: uuid.UUID, item: ClientInput,
             version: int, now: datetime, encrypt: bool,
             shared_key: FieldCipher | None = None) -> tuple[dict, dict | None]:
    row_id = new_id()
    new_key = None if shared_key else keyring.new_key(KeyPurpose.CLIENT, row_id)
    cipher = shared_key or new_key.cipher
    values = item.model_dump()
    row = {
        "id": row_id, "practice_id": practice_id, "key_id": cipher.key_id,
        "created_at": now, "updated_at": now, "sync_version": version, "deleted_at": None,
        "status": item.status, "data_sensitivity": item.data_sensitivity,
        "intake_date": item.intake_date, "retention_expiry_date": item.retention_expiry_date,
        "practitioner_id": item.practitioner_id, "conflict_resolution_strategy": None,
        **_seal(cipher, row_id, values, encrypt),
        **(_blind(keyring, conn, values) if encrypt else
           {"email_bidx": None, "ssn_last4_bidx": None, "last_name_bidx": None}),
    }
    row["data_checksum"] = row_checksum(row)
    return row, new_key.row if new_key else None


def create_client(conn: Connection, keyring: Keyring, principal: Principal,
                  practice_id: uuid.UUID, data: dict | ClientInput) -> uuid.UUID:
    """Create one client with its own data key; audited CREATE."""
    _require(principal, "table:clients:write")
    item = validate(data)
    row, key_row = _new_row(keyring, conn, practice_id, item, next_change_version(conn), utcnow(), True)
    conn.execute(insert(_keys), [key_row])
    conn.execute(insert(_clients), [row])
    _audit(conn, principal, "CREATE", row["id"], {"fields": sorted(k for k, v in item.model_dump().items() if v is not None)})
    return row["id"]


def insert_clients(conn: Connection, keyring: Keyring, principal: Principal,
                   practice_id: uuid.UUID, items: Iterable[dict | ClientInput], *,
                   batch_size: int = 1000, encrypt: bool = True,
                   created: list[uuid.UUID] | None = None) -> int:
    """Bulk import: validated, encrypted, written in batches; one audit entry per batch.

    `created`, when given, receives the new ids in order (callers that import in slices
    pass a fresh list per slice, so memory stays bounded). `encrypt=False` exists only
    so the benchmark can time the identical path without the cipher; nothing else may
    call it that way (plaintext PHI would be stored).
    """
    _require(principal, "table:clients:write")
    version = next_change_version(conn)
    # Without encryption there are no per-client keys either: every row points at one
    # placeholder key so the schema's NOT NULL key_id holds.
    shared = None if encrypt else keyring.create_key(conn, KeyPurpose.SYSTEM)
    total = 0
    for batch in _batches(items, batch_size):
        now = utcnow()
        rows, key_rows = [], []
        for data in batch:
            row, key_row = _new_row(keyring, conn, practice_id, validate(data), version, now,
                                    encrypt, shared)
            rows.append(row)
            if key_row:
                key_rows.append(key_row)
        if key_rows:
            conn.execute(insert(_keys), key_rows)
        conn.execute(insert(_clients), rows)
        total += len(rows)
        if created is not None:
            created.extend(row["id"] for row in rows)
        _audit(conn, principal, "CREATE", None, {"count": len(rows), "first_id": str(rows[0]["id"]),
                                                 "last_id": str(rows[-1]["id"]), "bulk": True})
    return total


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def _audit(conn: Connection, principal: Principal, action: str, row_id: uuid.UUID | None,
           details: dict) -> None:
    audit.append(conn, actor=principal.actor, action=action, table_name=TABLE, record_id=row_id,
                 details=details, session_id=principal.session_id,
                 ip_address=principal.ip_address, user_agent=principal.user_agent)


# What a client record holds (besides PHI) and how: enums by value, the rest as stored.
_RECORD = ("id", "practice_id", "status", "data_sensitivity", "intake_date", "retention_expiry_date",
           "practitioner_id", "created_at", "updated_at", "deleted_at")
_CONVERT = {**{field: None for field in _RECORD}, "status": enum_value, "data_sensitivity": enum_value}
_SHAPE = layout(TABLE, _RECORD + PHI_FIELDS, own_key=True, convert=_CONVERT)
# The same records, read the faster way PostgreSQL allows (records.layout, text_in_sql):
# what whole-table streams use there.
_PG_SHAPE = layout(TABLE, _RECORD + PHI_FIELDS, own_key=True, convert=_CONVERT, text_in_sql=True)
# The same records with ids, dates and times as str() prints them: what a JSON writer
# that prints them with default=str (the CLI) takes without a call back per value (on
# PostgreSQL ids come as text, without a uuid.UUID made per value and printed again).
_PRINTED = {**_CONVERT, **{field: str for field in ("id", "practice_id", "practitioner_id", "intake_date",
                                                     "retention_expiry_date", "created_at", "updated_at",
                                                     "deleted_at")}}
_PRINTED_SHAPES = {False: layout(TABLE, _RECORD + PHI_FIELDS, own_key=True, convert=_PRINTED),
                   True: layout(TABLE, _RECORD + PHI_FIELDS, own_key=True, convert=_PRINTED, text_in_sql=True)}


def _select(shape: Layout = _SHAPE):
    return shape.select()


def _present(conn: Connection, keyring: Keyring, principal: Principal, rows: list, reason: str,
             shape: Layout = _SHAPE, audit_in: Callable[[], contextlib.AbstractContextManager[Connection]]
             | None = None, *, as_columns: bool = False) -> list[dict] | Columns:
    """Rows of `_select(shape)` as records: decrypted (the keys of all of them in one
    query) and audited as one READ for `phi:read`, masked for everyone else. The READ
    goes in `conn`'s transaction, or in the transaction `audit_in()` begins, committed
    before the records are returned (stream_clients). With `as_columns`, records
    revealed come as Columns (masked ones still as records)."""
    _require(principal, "table:clients:read")
    revealed = principal.can("phi:read")
    if revealed and as_columns:
        batch = Columns(shape.names, open_columns(conn, keyring, shape, rows))
        ids = batch.columns[0]          # the layout's first field is the id
    else:
        batch = open_rows(conn, keyring, shape, rows)
        ids = [r["id"] for r in batch]
    if revealed:
        if ids:
            details = {"count": len(ids), "phi": True, "via": reason,
                       **({"ids": [str(i) for i in ids]} if 1 < len(ids) <= 100 else
                          {"first_id": str(ids[0]), "last_id": str(ids[-1])}
                          if len(ids) > 100 else {})}
            record_id = _as_uuid(ids[0]) if len(ids) == 1 else None
            if audit_in is None:
                _audit(conn, principal, "READ", record_id, details)
            else:
                with audit_in() as own:
                    _audit(own, principal, "READ", record_id, details)
        return batch
    return [mask_record(r, PHI_FIELDS) for r in batch]


def get_client(conn: Connection, keyring: Keyring, principal: Principal, client_id: uuid.UUID,
               *, include_deleted: bool = False) -> dict:
    """One client, decrypted (and audited) or masked according to `phi:read`."""
    query = _select().where(_clients.c.id == client_id)
    if not include_deleted:
        query = query.where(_clients.c.deleted_at.is_(None))
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(f"client {client_id} not found")
    return _present(conn, keyring, principal, [row], "get")[0]


def list_clients(conn: Connection, keyring: Keyring, principal: Principal, *,
                 practice_id: uuid.UUID | None = None, limit: int = 50,
                 after_id: uuid.UUID | None = None) -> list[dict]:
    """A page of live clients in id order (keyset paging: `after_id` = last id seen)."""
    query = _live(practice_id, after_id).order_by(_clients.c.id).limit(limit)
    return _present(conn, keyring, principal, conn.execute(query).all(), "list")


# Rows per batch of `stream_clients`: each batch of a reveal commits its own READ (4-5 ms
# on PostgreSQL, most of it the commit's flush), so batches of 2000 rather than 1000
# took 13% off revealing 100k clients (median of 8 pairs) for 14 MB more memory (89 ->
# 103 MB peak), the same at any table size.
STREAM_BATCH = 2000


def stream_clients(conn: Connection, keyring: Keyring, principal: Principal, *,
                   practice_id: uuid.UUID | None = None, after_id: uuid.UUID | None = None,
                   batch_size: int | None = None, printed: bool = False,
                   audit_engine: Engine | None = None, as_columns: bool = False) -> Iterator[list[dict] | Columns]:
    """Every live client in id order, a batch at a time (memory stays at one batch
    whatever the table's size): decrypted for `phi:read`, each batch audited as one
    READ with its row count before it is handed out; masked for everyone else. With
    `printed`, dates and times come as the text str() makes of them. With `as_columns`,
    a revealed batch comes as Columns (records.Columns: one list per field), for a
    writer that prints from columns without a dict made per record; masked batches
    come as records either way.

    A caller that shows each batch as it comes (the CLI prints it) passes its engine as
    `audit_engine`: each READ then commits on its own before its batch is handed out.
    In the stream's own transaction it would be undone with it when a later batch
    failed (a tampered row, a closed pipe) though the batches before were shown; and
    the audit chain's lock (PostgreSQL) would be held for the whole stream, stopping
    every other audited write meanwhile. Its own connection also never waits for the
    FETCH that reads the next batch ahead on the stream's, and is held for the stream
    (core.db.engine.transactions)."""
    _require(principal, "table:clients:read")
    postgres = conn.dialect.name == "postgresql"
    shape = _PRINTED_SHAPES[postgres] if printed else _PG_SHAPE if postgres else _SHAPE
    query = _live(practice_id, after_id, shape).order_by(_clients.c.id)
    held = contextlib.ExitStack()
    audit_in = (held.enter_context(transactions(audit_engine))
                if audit_engine is not None and principal.can("phi:read") else None)
    batches = stream(conn, query, size=batch_size or STREAM_BATCH)
    try:
        with heap_frozen():     # the process's own objects out of the collector's passes (core.bulk)
            while True:
                # The collector paused for one batch (core.bulk); nothing here keeps the batch
                # once handed out, so a caller pausing it around taking and printing a batch
                # can drop the batch before the collector is back (records.stream_columns).
                with collector_paused():
                    rows = next(batches, None)
                    if rows is None:
                        return
                    batch = [_present(conn, keyring, principal, rows, "list", shape, audit_in,
                                      as_columns=as_columns)]
                    del rows
                yield batch.pop()
    finally:
        batches.close()
        held.close()


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    """A record's id, which a printed record holds as text."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def _live(practice_id: uuid.UUID | None, after_id: uuid.UUID | None, shape: Layout = _SHAPE):
    query = _select(shape).where(_clients.c.deleted_at.is_(None))
    if practice_id:
        query = query.where(_clients.c.practice_id == practice_id)
    if after_id:
        query = query.where(_clients.c.id > after_id)
    return query


def find_clients(conn: Connection, keyring: Keyring, principal: Principal, *,
                 email: str | None = None, ssn_last4: str | None = None,
                 last_name: str | None = None, practice_id: uuid.UUID | None = None) -> list[dict]:
    """Look clients up by blind index; nothing is decrypted to search."""
    indexer = keyring.blind_indexer(conn)
    query = _select().where(_clients.c.deleted_at.is_(None))
    terms = 0
    for field, column, value in (("email", _clients.c.email_bidx, email),
                                 ("ssn_last4", _clients.c.ssn_last4_bidx, ssn_last4),
                                 ("last_name", _clients.c.last_name_bidx, last_name)):
        if value:
            digest = indexer.index(field, value)
            if digest is None:
                raise ValidationError(f"clients: search term for {field} is empty after normalising")
            query = query.where(column == digest)
            terms += 1
    if not terms:
        raise ValidationError("clients: give at least one of email, ssn_last4, last_name")
    if practice_id:
        query = query.where(_clients.c.practice_id == practice_id)
    return _present(conn, keyring, principal, conn.execute(query.limit(500)).all(), "search")


PICKER_LIMIT = 20


def pick_clients(conn: Connection, keyring: Keyring, principal: Principal, *,
                 email: str | None = None, ssn_last4: str | None = None,
                 last_name: str | None = None, practice_id: uuid.UUID | None = None) -> dict:
    """Clients matching exact search terms (blind indexes, as `find_clients`), for a
    person choosing one in a form: at most PICKER_LIMIT, each as its id, status, when
    it was recorded and its name masked for everyone, `phi:read` or not (an initial
    is enough to tell a handful apart; the task needs no more). Audited as one READ
    with the count and the terms' names, never their values: whether someone is a
    client is itself confidential."""
    _require(principal, "table:clients:read")
    terms = {"email": email, "ssn_last4": ssn_last4, "last_name": last_name}
    # Read as someone who may list clients and nothing more: masked, whatever the caller holds.
    masked = dataclasses.replace(principal, permissions=frozenset({"table:clients:read"}))
    found = find_clients(conn, keyring, masked, practice_id=practice_id, **terms)
    found.sort(key=lambda r: (str(r["created_at"]), str(r["id"])))
    shown = [{"id": str(r["id"]), "name": f"{r['first_name'] or '***'} {r['last_name'] or '***'}",
              "status": r["status"], "created_at": r["created_at"]} for r in found[:PICKER_LIMIT]]
    _audit(conn, principal, "READ", None, {"via": "picker", "phi": False, "count": len(found),
                                           "terms": sorted(k for k, v in terms.items() if v)})
    return {"clients": shown, "more": len(found) > PICKER_LIMIT}


def update_client(conn: Connection, keyring: Keyring, principal: Principal,
                  client_id: uuid.UUID, changes: dict) -> None:
    """Re-encrypt the changed fields with the client's current key; audited UPDATE
    with the names of the fields changed (never their values)."""
    _require(principal, "table:clients:write")
    checked = validate(changes, partial=True)
    row = conn.execute(select(_clients).where(_clients.c.id == client_id,
                                               _clients.c.deleted_at.is_(None))).mappings().first()
    if row is None:
        raise NotFoundError(f"client {client_id} not found")
    cipher = keyring.cipher(conn, row["key_id"])
    values = {k: v for k, v in checked.items() if k not in PHI_FIELDS}
    values.update(_seal(cipher, client_id, checked, True))
    values.update(_blind(keyring, conn, checked))
    values["updated_at"] = utcnow()
    values["sync_version"] = next_change_version(conn)
    new_row = {**row, **values}
    values["data_checksum"] = row_checksum(new_row)
    conn.execute(update(_clients).where(_clients.c.id == client_id).values(**values))
    _audit(conn, principal, "UPDATE", client_id, {"fields": sorted(checked)})


def delete_client(conn: Connection, principal: Principal, client_id: uuid.UUID) -> None:
    """Tombstone a client: the row stays (so the delete reaches peers and backups) with
    `deleted_at` set. Erasure of the PHI itself is crypto-shredding, a separate act."""
    _require(principal, "table:clients:delete")
    row = conn.execute(select(_clients).where(_clients.c.id == client_id,
                                               _clients.c.deleted_at.is_(None))).mappings().first()
    if row is None:
        raise NotFoundError(f"client {client_id} not found")
    now = utcnow()
    values = {"deleted_at": now, "updated_at": now, "sync_version": next_change_version(conn)}
    values["data_checksum"] = row_checksum({**row, **values})
    conn.execute(update(_clients).where(_clients.c.id == client_id).values(**values))
    _audit(conn, principal, "DELETE", client_id, {"tombstone": True})


def count_clients(conn: Connection, practice_id: uuid.UUID | None = None) -> int:
    query = select(func.count()).select_from(_clients).where(_clients.c.deleted_at.is_(None))
    if practice_id:
        query = query.where(_clients.c.practice_id == practice_id)
    return conn.execute(query).scalar_one()
