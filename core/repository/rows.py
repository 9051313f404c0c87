"""What the practice's plain (unencrypted) synced tables share: input checking that names
the field and never the value, and audited insert/update/list of practice-scoped rows.

Staff and services hold no PHI and no secrets, so their rows are written as validated;
each write takes a change version and a checksum like every synced row
(core.repository.changes), and is audited naming the fields changed, never the values.
"""
from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, Table, insert, select, update

from strongroom.core import audit
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.ids import new_id
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum

M = TypeVar("M", bound=BaseModel)


def checked(model: type[M], data: Mapping | M, table: str) -> M:
    """`data` as `model`, or ValidationError naming each bad field (the models hide input)."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(dict(data))
    except PydanticValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors())
        raise ValidationError(f"{table}: {problems}") from None


def require(principal: Principal, permission: str) -> None:
    if not principal.can(permission):
        raise PermissionDenied(f"{principal.actor} lacks permission {permission}")


def live_row(conn: Connection, table: Table, row_id: uuid.UUID) -> Mapping:
    row = conn.execute(select(table).where(table.c.id == row_id, table.c.deleted_at.is_(None))
                       ).mappings().first()
    if row is None:
        raise NotFoundError(f"{table.name}: no such row")
    return row


def insert_row(conn: Connection, principal: Principal, table: Table, practice_id: uuid.UUID,
               values: dict) -> uuid.UUID:
    now = utcnow()
    row = {"id": new_id(), "practice_id": practice_id, **values, "created_at": now, "updated_at": now,
           "sync_version": next_change_version(conn), "deleted_at": None}
    row["data_checksum"] = row_checksum(row)
    conn.execute(insert(table), [row])
    audit.append(conn, actor=principal.actor, action="CREATE", table_name=table.name, record_id=row["id"],
                 details={"fields": sorted(values)}, session_id=principal.session_id,
                 ip_address=principal.ip_address)
    return row["id"]


def update_row(conn: Connection, principal: Principal, table: Table, row: Mapping, values: dict) -> None:
    """Store `values` over `row` (already read, live) with a new version and checksum."""
    values = {**values, "updated_at": utcnow(), "sync_version": next_change_version(conn)}
    values["data_checksum"] = row_checksum({**row, **values})
    conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
    audit.append(conn, actor=principal.actor, action="UPDATE", table_name=table.name, record_id=row["id"],
                 details={"fields": sorted(k for k in values if k not in ("updated_at", "sync_version",
                                                                           "data_checksum"))},
                 session_id=principal.session_id, ip_address=principal.ip_address)


def check_changes(table: str, changes: Mapping, editable: tuple[str, ...]) -> None:
    unknown = set(changes) - set(editable)
    if unknown or not changes:
        raise ValidationError(f"{table}: an update may change only " + ", ".join(editable))
