"""Sync conflicts: rows two sites changed differently, resolved by a person field by field.

A conflict holds up to three images of one row: `base` (the last version both sites
agreed on, when known), `local` (this database's row when the conflict was queued) and
`remote` (the peer's). An image is a JSON object, column name -> value as the row holds
it, made JSON-safe by `row_image`:

- ciphertext columns (`<field>_enc`) hold the field ciphertext itself, base64. PHI stays
  sealed with the client's data key and bound to its table, field and row, so a conflict
  waiting in the queue is no more readable than the row it came from;
- dates and times are ISO 8601, UUIDs strings, enums their values;
- `sync_version` in `local` is the row's version when the conflict was queued. Resolving
  refuses if the row has moved on since, so a later edit is never overwritten unseen.

Bookkeeping and identity columns (ids, timestamps, checksums, key ids, blind indexes,
the client a session or file belongs to) ride along but are not fields: a person chooses
among content only. Fields are named by their logical names (`email`, not `email_enc`).

Viewing decrypts PHI inside the daemon to compare the versions (two ciphertexts of one
value never match). What leaves it is the minimum a decision needs: the fields that
differ between local and remote, each with its base, local and remote value; every other
field is named, never shown, until a person asks for it, one field at a time
(`reveal_field`). A principal with `phi:read` sees plaintext, and each disclosure is
audited as a READ naming the table, the row and exactly the PHI fields shown (never their
values); anyone else sees masked values. Resolving takes a choice per field (local, remote or
base), never a value, so a person without `phi:read` resolves a conflict without any
plaintext reaching them. The chosen PHI is opened and sealed again with the row's own
key (a ciphertext from another key or row never lands in the row as it is), blind
indexes follow, and the row gets a new sync_version and checksum, so the resolution
reaches the peer on the next sync like any other change.
"""
from __future__ import annotations

import base64
import binascii
import enum
import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Enum,
    Integer,
    String,
    Table,
    Uuid,
    func,
    insert,
    select,
    update,
)

from strongroom.core import audit
from strongroom.core.crypto.fields import raw_key_id_of
from strongroom.core.crypto.keyring import BatchKeys, Keyring
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import Client, ClientFile, SyncConflict, SyncPeer, TherapySession
from strongroom.core.db.types import UTCDateTime, utcnow
from strongroom.core.errors import (
    ConflictError,
    CryptoError,
    KeyUnavailableError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)
from strongroom.core.ids import new_id
from strongroom.core.masking import mask_field
from strongroom.core.principal import Principal
from strongroom.core.repository import clients as client_repo
from strongroom.core.repository.changes import next_change_version, row_checksum

OPEN, RESOLVED = "open", "resolved"
STATUSES = (OPEN, RESOLVED)
VERSIONS = ("base", "local", "remote")
CHOICES = ("local", "remote", "base")
MAX_PAGE = 500
UNREADABLE = "[unreadable]"

TABLES: dict[str, Table] = {m.__tablename__: m.__table__ for m in (Client, TherapySession, ClientFile)}
_conflicts = SyncConflict.__table__
_peers = SyncPeer.__table__

_BOOKKEEPING = frozenset({"id", "practice_id", "created_at", "updated_at", "sync_version",
                          "data_checksum", "key_id"})
# Columns that bind a row to its client (and so to the data key its PHI is sealed with)
# or to stored content: choosing them field by field could pair a session's notes with
# another client's key, or a file's name with another file's bytes.
_FIXED = {"clients": frozenset(), "therapy_sessions": frozenset({"client_id"}),
          "client_files": frozenset({"client_id", "storage_key", "sha256", "size_bytes"})}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Field:
    """One resolvable field: its logical name, its column and whether it is PHI."""

    name: str
    column: Column
    phi: bool


@dataclass
class Opened:
    """One version of one field, opened: `value` is the plaintext (PHI) or the column's
    Python value; `present` is False when the image does not carry the field at all."""

    value: object = None
    present: bool = False
    problem: str | None = None


@dataclass
class FieldView:
    field: Field
    versions: dict[str, Opened]
    has_base: bool

    @property
    def differs(self) -> bool:
        local, remote = self.versions["local"], self.versions["remote"]
        if local.problem or remote.problem:
            return True   # cannot tell: a person must look
        return (local.present, local.value) != (remote.present, remote.value)

    def changed(self) -> str | None:
        """Which side moved away from base: local, remote, both (or None without a base)."""
        if not self.has_base:
            return None
        base = self.versions["base"]
        moved = [side for side in ("local", "remote")
                 if (self.versions[side].present, self.versions[side].value, self.versions[side].problem)
                 != (base.present, base.value, base.problem)]
        if len(moved) == 2:
            return "both"
        return moved[0] if moved else None


# --- images ---------------------------------------------------------------------------

def _table(table_name: str) -> Table:
    table = TABLES.get(table_name)
    if table is None:
        raise ValidationError(f"sync conflicts: table {table_name!r} is not resolvable field by field; "
                              f"resolvable tables: {', '.join(TABLES)}")
    return table


@functools.cache
def fields_of(table_name: str) -> dict[str, Field]:
    """The resolvable fields of a table, in column order, by logical name."""
    table = _table(table_name)
    out: dict[str, Field] = {}
    for column in table.columns:
        name = column.name
        if name in _BOOKKEEPING or name in _FIXED[table_name] or name.endswith("_bidx"):
            continue
        if name.endswith("_enc"):
            out[name[:-4]] = Field(name[:-4], column, name[:-4] in CLIENT_KEYED[table_name])
        else:
            out[name] = Field(name, column, False)
    return out


def json_value(value: object) -> object:
    """A column value JSON-safe: ciphertext base64, dates ISO 8601, UUIDs and enums as strings."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def row_image(table_name: str, row: Mapping) -> dict:
    """A stored row as a conflict image: every column the row has, JSON-safe, ciphertext
    kept sealed (base64). The sync job builds local and remote images with this."""
    table = _table(table_name)
    return {c.name: json_value(row[c.name]) for c in table.columns if c.name in row}


def _from_json(column: Column, value: object, where: str) -> object:
    """An image value back to the column's Python value; the error names where, never the value."""
    if value is None:
        return None
    kind = column.type
    try:
        if isinstance(kind, Enum) and kind.enum_class is not None:
            return kind.enum_class(value)
        if isinstance(kind, UTCDateTime):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("naive")
            return moment
        if isinstance(kind, Date):
            return date.fromisoformat(value)
        if isinstance(kind, Uuid):
            return uuid.UUID(value)
        if isinstance(kind, Boolean):
            if not isinstance(value, bool):
                raise TypeError("bool")
            return value
        if isinstance(kind, Integer):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("int")
            return value
        if isinstance(kind, String):
            if not isinstance(value, str) or (kind.length and len(value) > kind.length):
                raise TypeError("str")
            return value
    except (TypeError, ValueError, AttributeError):
        raise ValidationError(f"{where}: not a valid value for column {column.name} "
                              f"({type(kind).__name__})") from None
    return value


def _sealed(value: object, where: str) -> bytes | None:
    """An image's ciphertext (base64 text) as bytes; the error names where, never the value."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where}: ciphertext must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{where}: ciphertext is not valid base64") from None


def _page_keys(conn: Connection, keyring: Keyring, records: list[Mapping]) -> BatchKeys:
    """The data keys every PHI value of these conflicts is sealed with, in one query:
    a page of conflicts costs one key lookup, not one per client. Values that are not
    well-formed ciphertext are left for `_views` to report, field by field."""
    ids = set()
    for record in records:
        if record["table_name"] not in TABLES:
            continue
        phi = [f.column.name for f in fields_of(record["table_name"]).values() if f.phi]
        for version in VERSIONS:
            image = record[version]
            for name in phi if isinstance(image, dict) else ():
                try:
                    blob = _sealed(image.get(name), "")
                    if blob is not None:
                        ids.add(raw_key_id_of(blob))
                except (ValidationError, CryptoError):
                    continue
    return keyring.batch_keys(conn, ids)


def _open_phi(keys: BatchKeys, table_name: str, row_id: uuid.UUID, field: str, value: object,
              where: str) -> str | None:
    blob = _sealed(value, where)
    return None if blob is None else keys.open_text(blob, table_name, field, row_id)


def _check_images(record: Mapping) -> None:
    table = _table(record["table_name"])
    for version in VERSIONS:
        image = record[version]
        if image is None and version == "base":
            continue
        if not isinstance(image, dict):
            raise ValidationError(f"conflict {record['id']}: the {version} version is not a JSON object")
        unknown = sorted(k for k in image if k not in table.c)
        if unknown:
            raise ValidationError(f"conflict {record['id']}: the {version} version names column(s) "
                                  f"{', '.join(map(_shown, unknown))}, which {table.name} does not have")


def _views(conn: Connection, keyring: Keyring, record: Mapping,
           keys: BatchKeys | None = None, only: str | None = None) -> dict[str, FieldView]:
    """Every field any version carries (or just the field `only`), each version opened
    (PHI decrypted in here only) with `keys` (a page's, from `_page_keys`) or this
    record's own."""
    _check_images(record)
    keys = keys if keys is not None else _page_keys(conn, keyring, [record])
    table_name, row_id = record["table_name"], record["row_id"]
    images = {v: record[v] or {} for v in VERSIONS}
    views: dict[str, FieldView] = {}
    for name, field in fields_of(table_name).items():
        if only is not None and name != only:
            continue
        column = field.column.name
        if not any(column in image for image in images.values()):
            continue
        versions = {}
        for version, image in images.items():
            opened = Opened()
            if column in image:
                opened.present = True
                where = f"conflict {record['id']}: {version} {name}"
                try:
                    opened.value = (_open_phi(keys, table_name, row_id, name, image[column], where)
                                    if field.phi else _from_json(field.column, image[column], where))
                except (ValidationError, CryptoError, KeyUnavailableError) as exc:
                    opened.problem = str(exc)
            versions[version] = opened
        views[name] = FieldView(field, versions, record["base"] is not None)
    return views


# --- reading --------------------------------------------------------------------------

def _require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def _shown(name: object) -> str:
    """A field name as an error may repeat it: identifiers only, never arbitrary input."""
    return repr(name) if isinstance(name, str) and _NAME.match(name) else "(not a field name)"


def _display(field: Field, opened: Opened, reveal: bool) -> str | None:
    if opened.problem:
        return UNREADABLE
    if not opened.present or opened.value is None:
        return None
    if field.phi:
        return opened.value if reveal else mask_field(field.name, opened.value)
    value = opened.value
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _summary(record: Mapping, views: dict[str, FieldView] | None, problem: str | None = None) -> dict:
    differing = [name for name, view in views.items() if view.differs] if views is not None else None
    return {
        "id": record["id"], "peer_id": record["peer_id"], "peer": record["peer_name"],
        "table": record["table_name"], "row_id": record["row_id"], "status": record["status"],
        "created_at": record["created_at"], "resolved_by": record["resolved_by"],
        "resolved_at": record["resolved_at"], "has_base": record["base"] is not None,
        "fields": differing,
        "phi": None if views is None else any(views[n].field.phi for n in differing),
        "resolution": record["resolution"], "problem": problem,
    }


def _query():
    return (select(_conflicts, _peers.c.name.label("peer_name"))
            .join(_peers, _peers.c.id == _conflicts.c.peer_id, isouter=True))


def _load(conn: Connection, conflict_id: uuid.UUID, *, for_update: bool = False) -> Mapping:
    if for_update:
        # Lock the conflict itself (an outer join cannot be locked on PostgreSQL).
        conn.execute(select(_conflicts.c.id).where(_conflicts.c.id == conflict_id).with_for_update())
    record = conn.execute(_query().where(_conflicts.c.id == conflict_id)).mappings().first()
    if record is None:
        raise NotFoundError(f"sync conflict {conflict_id} does not exist")
    return record


def list_conflicts(conn: Connection, keyring: Keyring, principal: Principal, *,
                   status: str | None = OPEN, limit: int = 50,
                   after_id: uuid.UUID | None = None) -> list[dict]:
    """A page of conflicts, oldest first (the one waiting longest on top); keyset paging
    by `after_id`. `status` open, resolved or None for both. Names the differing fields,
    never their values."""
    _require(principal, "sync:resolve")
    if status is not None and status not in STATUSES:
        raise ValidationError(f"sync conflicts: status must be one of {', '.join(STATUSES)} (or omitted for all)")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"sync conflicts: limit must be between 1 and {MAX_PAGE}")
    query = _query().order_by(_conflicts.c.id).limit(limit)
    if status is not None:
        query = query.where(_conflicts.c.status == status)
    if after_id is not None:
        query = query.where(_conflicts.c.id > after_id)
    out = []
    records = conn.execute(query).mappings().all()
    keys = _page_keys(conn, keyring, records)
    for record in records:
        try:
            out.append(_summary(record, _views(conn, keyring, record, keys)))
        except ValidationError as exc:
            out.append(_summary(record, None, str(exc)))
    return out


def count_open(conn: Connection) -> dict[uuid.UUID, int]:
    """Open conflicts per peer."""
    rows = conn.execute(select(_conflicts.c.peer_id, func.count()).where(_conflicts.c.status == OPEN)
                        .group_by(_conflicts.c.peer_id))
    return {peer_id: n for peer_id, n in rows}


def _field_value(name: str, view: FieldView, reveal: bool, chosen: str | None) -> dict:
    """One field as a person sees it: base, local and remote (plaintext or masked), which
    side moved, which versions are absent or unreadable, and the choice made if resolved."""
    return {
        "name": name, "phi": view.field.phi, "differs": view.differs, "changed": view.changed(),
        **{version: _display(view.field, view.versions[version], reveal) for version in VERSIONS},
        "absent": [v for v in VERSIONS if not view.versions[v].present],
        "unreadable": [v for v in VERSIONS if view.versions[v].problem],
        "chosen": chosen,
    }


def _phi_shown(views: Mapping[str, FieldView]) -> list[str]:
    """The PHI fields among `views` whose plaintext some version carries: what a reader
    with phi:read is shown, and what the READ entry must name."""
    return sorted(name for name, view in views.items() if view.field.phi
                  and any(o.present and o.value is not None and not o.problem for o in view.versions.values()))


def _audit_read(conn: Connection, principal: Principal, record: Mapping, fields: list[str], via: str) -> None:
    audit.append(conn, actor=principal.actor, action="READ", table_name=record["table_name"],
                 record_id=record["row_id"], session_id=principal.session_id,
                 ip_address=principal.ip_address, user_agent=principal.user_agent,
                 details={"phi": True, "via": via, "conflict_id": str(record["id"]), "fields": fields})


def get_conflict(conn: Connection, keyring: Keyring, principal: Principal,
                 conflict_id: uuid.UUID) -> dict:
    """One conflict as a person settles it: base, local and remote for the fields that
    differ between local and remote (`field_values`), and only the names of the others
    (`other_fields`; `reveal_field` shows one on request). Plaintext PHI for `phi:read`,
    audited as a READ of the row naming the differing PHI fields; masked for everyone
    else, audited as nothing. Needs a writable transaction when the principal may read
    PHI (the audit entry)."""
    _require(principal, "sync:resolve")
    record = _load(conn, conflict_id)
    views = _views(conn, keyring, record)
    reveal = principal.can("phi:read")
    chosen = (record["resolution"] or {}).get("choices", {})
    differing = {name: view for name, view in views.items() if view.differs}
    fields = [_field_value(name, view, reveal, chosen.get(name)) for name, view in differing.items()]
    others = [{"name": name, "phi": view.field.phi} for name, view in views.items() if not view.differs]
    shown_phi = _phi_shown(differing)
    if reveal and shown_phi:
        _audit_read(conn, principal, record, shown_phi, "sync.conflict")
    return {**_summary(record, views), "masked": not reveal, "field_values": fields, "other_fields": others}


def reveal_field(conn: Connection, keyring: Keyring, principal: Principal,
                 conflict_id: uuid.UUID, name: str) -> dict:
    """One field of a conflict, asked for by name: its base, local and remote values as
    `get_conflict` would show them. Only that field is opened; with `phi:read` a PHI field
    is shown in plaintext and audited as a READ naming that one field. Any field the
    conflict's versions carry may be asked for, differing or not."""
    _require(principal, "sync:resolve")
    record = _load(conn, conflict_id)
    _check_images(record)
    carried = [n for n, f in fields_of(record["table_name"]).items()
               if any(f.column.name in (record[v] or {}) for v in VERSIONS)]
    if name not in carried:
        raise ValidationError(f"conflict {conflict_id} has no field {_shown(name)}; "
                              f"its fields are: {', '.join(carried) or 'none'}")
    views = _views(conn, keyring, record, only=name)
    reveal = principal.can("phi:read")
    chosen = (record["resolution"] or {}).get("choices", {})
    shown_phi = _phi_shown(views)
    if reveal and shown_phi:
        _audit_read(conn, principal, record, shown_phi, "sync.conflict.field")
    return {"id": record["id"], "table": record["table_name"], "row_id": record["row_id"],
            "masked": not reveal, "field": _field_value(name, views[name], reveal, chosen.get(name))}


# --- resolving ------------------------------------------------------------------------

def _check_choices(record: Mapping, views: dict[str, FieldView], choices: object) -> dict[str, str]:
    cid = record["id"]
    differing = [name for name, view in views.items() if view.differs]
    # Two sites may write the same value concurrently (each ciphertext differs, the
    # values do not): such a conflict is resolved with no choice at all.
    if not isinstance(choices, Mapping) or (not choices and differing):
        raise ValidationError(f"conflict {cid}: give a choice (local, remote or base) for each differing field")
    for name, choice in choices.items():
        if name not in views:
            raise ValidationError(f"conflict {cid} has no field {_shown(name)}; "
                                  f"its differing fields are: {', '.join(differing) or 'none'}")
        if choice not in CHOICES:
            raise ValidationError(f"conflict {cid}: the choice for field {name} must be one of "
                                  f"{', '.join(CHOICES)}")
        if not views[name].differs:
            raise ValidationError(f"conflict {cid}: field {name} is the same locally and remotely; "
                                  "there is nothing to choose")
        if choice == "base" and record["base"] is None:
            raise ValidationError(f"conflict {cid} has no base version (no common ancestor is known); "
                                  f"choose local or remote for field {name}")
        opened = views[name].versions[choice]
        if not opened.present:
            raise ValidationError(f"conflict {cid}: the {choice} version does not carry field {name}")
        if opened.problem:
            raise ValidationError(f"conflict {cid}: the {choice} value of field {name} cannot be used: "
                                  f"{opened.problem}")
    missing = [name for name in differing if name not in choices]
    if missing:
        raise ValidationError(f"conflict {cid}: choose a version for every differing field; "
                              f"missing: {', '.join(missing)}")
    return dict(choices)


def _resolved_values(conn: Connection, keyring: Keyring, table_name: str, row: Mapping,
                     views: dict[str, FieldView], chosen: dict[str, str]) -> dict:
    values: dict = {}
    plain_phi: dict[str, str | None] = {}
    for name, choice in chosen.items():
        field = views[name].field
        value = views[name].versions[choice].value
        if value is None and not field.column.nullable:
            raise ValidationError(f"field {name} cannot be empty, and the {choice} version is")
        if field.phi:
            plain_phi[name] = value
            # Sealed again with the row's own key: authenticity was checked on opening,
            # and the row's key_id goes on naming the one key all its fields use.
            values[field.column.name] = None if value is None else keyring.cipher(conn, row["key_id"]).encrypt_text(
                value, table_name, name, row["id"])
        else:
            values[field.column.name] = value
    if table_name == "clients" and plain_phi:
        values.update(client_repo._blind(keyring, conn, plain_phi))
    return values


def resolve_conflict(conn: Connection, keyring: Keyring, principal: Principal,
                     conflict_id: uuid.UUID, choices: Mapping[str, str]) -> dict:
    """Apply a choice of local, remote or base to every differing field, in the caller's
    transaction: the row is updated (new sync_version and checksum), the conflict is
    marked resolved with who and when, and both are audited. Any bad input raises
    before anything is written, and the caller's transaction rolls back on any error."""
    _require(principal, "sync:resolve")
    record = _load(conn, conflict_id, for_update=True)
    if record["status"] != OPEN:
        raise ConflictError(f"conflict {conflict_id} is already {record['status']} "
                            f"(by {record['resolved_by'] or 'unknown'} at "
                            f"{record['resolved_at'].isoformat(timespec='seconds') if record['resolved_at'] else '?'})")
    views = _views(conn, keyring, record)
    chosen = _check_choices(record, views, choices)
    table_name, row_id = record["table_name"], record["row_id"]
    table = _table(table_name)
    row = conn.execute(select(table).where(table.c.id == row_id).with_for_update()).mappings().first()
    if row is None:
        raise NotFoundError(f"{table_name} row {row_id} no longer exists; conflict {conflict_id} cannot be applied")
    expected = record["local"].get("sync_version")
    if expected is not None and row["sync_version"] != expected:
        raise ConflictError(f"{table_name} row {row_id} changed after conflict {conflict_id} was queued "
                            f"(version {expected}, now {row['sync_version']}); the next sync refreshes the conflict")
    values = _resolved_values(conn, keyring, table_name, row, views, chosen)
    now = utcnow()
    values.update(updated_at=now, sync_version=next_change_version(conn))
    values["data_checksum"] = row_checksum({**row, **values})
    written = conn.execute(update(table).where(table.c.id == row_id, table.c.sync_version == row["sync_version"])
                           .values(**values))
    if written.rowcount != 1:
        raise ConflictError(f"{table_name} row {row_id} changed while conflict {conflict_id} was being resolved")
    resolution = {"choices": chosen, "sync_version": values["sync_version"]}
    marked = conn.execute(update(_conflicts).where(_conflicts.c.id == conflict_id, _conflicts.c.status == OPEN)
                          .values(status=RESOLVED, resolution=resolution, resolved_by=principal.actor[:120],
                                  resolved_at=now))
    if marked.rowcount != 1:
        raise ConflictError(f"conflict {conflict_id} was resolved by someone else meanwhile")
    who = dict(actor=principal.actor, session_id=principal.session_id, ip_address=principal.ip_address,
               user_agent=principal.user_agent)
    audit.append(conn, action="UPDATE", table_name=table_name, record_id=row_id,
                 details={"via": "sync.resolve", "conflict_id": str(conflict_id), "fields": sorted(chosen)}, **who)
    audit.append(conn, action="SYNC", table_name="sync_conflicts", record_id=conflict_id,
                 details={"event": "conflict_resolved", "table": table_name, "row_id": str(row_id),
                          "choices": chosen}, **who)
    return _summary(_load(conn, conflict_id), views)


def queue_conflict(conn: Connection, *, peer_id: uuid.UUID, table_name: str, row_id: uuid.UUID,
                   local: dict, remote: dict, base: dict | None = None, actor: str = "system") -> uuid.UUID:
    """Queue a conflict for a person (the sync job's `manual` strategy); audited as SYNC.
    The images are checked against the table before anything is stored."""
    conflict_id = new_id()
    record = {"id": conflict_id, "peer_id": peer_id, "table_name": table_name, "row_id": row_id,
              "base": base, "local": local, "remote": remote}
    _check_images(record)
    if conn.execute(select(_peers.c.id).where(_peers.c.id == peer_id)).first() is None:
        raise NotFoundError(f"sync peer {peer_id} does not exist")
    conn.execute(insert(_conflicts), [{**record, "status": OPEN, "created_at": utcnow()}])
    fields = sorted(n for n, f in fields_of(table_name).items()
                    if f.column.name in local or f.column.name in remote)
    audit.append(conn, actor=actor, action="SYNC", table_name="sync_conflicts", record_id=conflict_id,
                 details={"event": "conflict_queued", "table": table_name, "row_id": str(row_id),
                          "peer_id": str(peer_id), "fields": fields})
    return conflict_id
