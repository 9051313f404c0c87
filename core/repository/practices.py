"""Practices: the tenant every clinical row belongs to."""
from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert, select

from strongroom.core import audit
from strongroom.core.db.models import Practice
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, ValidationError
from strongroom.core.principal import Principal
from strongroom.core.repository.changes import next_change_version, row_checksum
from strongroom.core.ids import new_id

_practices = Practice.__table__


def create_practice(conn: Connection, principal: Principal, name: str,
                    timezone: str = "UTC") -> uuid.UUID:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationError("practice name must be 1 to 200 characters")
    now = utcnow()
    row = {"id": new_id(), "name": name, "timezone": timezone, "settings": {},
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
