"""Retention policies: one per clinical table, kept in `retention_policies`.

A policy archives a table's rows `archive_after_days` after their reference date and
deletes them `delete_after_days` after it (strongroom.core.jobs.retention says which
date each table uses). Deletion only ever takes archived rows, as in the source
specification, where old data is first moved to an archive and only deleted from there;
so a policy that deletes must also archive, no later than it deletes.
"""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from strongroom.core import audit
from strongroom.core.db.models import RetentionPolicy
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ValidationError
from strongroom.core.ids import new_id
from strongroom.core.retention import TABLES, lock

_policies = RetentionPolicy.__table__
MAX_DAYS = 36_500  # a century: anything longer is a typo


@dataclass(frozen=True)
class Policy:
    id: uuid.UUID
    table_name: str
    archive_after_days: int | None
    delete_after_days: int | None
    active: bool
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict:
        return asdict(self)


def _policy(row) -> Policy:
    return Policy(row["id"], row["table_name"], row["archive_after_days"], row["delete_after_days"],
                  row["active"], row["created_at"], row["updated_at"])


def validate(table_name: str, archive_after_days: int | None, delete_after_days: int | None) -> None:
    """A clear ValidationError naming the first thing wrong with a policy."""
    if table_name not in TABLES:
        raise ValidationError("retention policy: that table cannot have a retention policy "
                              f"(retention-capable tables: {', '.join(TABLES)})")
    for name, value in (("archive_after_days", archive_after_days), ("delete_after_days", delete_after_days)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"retention policy {table_name}: {name} must be a whole number of days")
        if not 1 <= value <= MAX_DAYS:
            raise ValidationError(f"retention policy {table_name}: {name} must be between 1 and {MAX_DAYS} days")
    if archive_after_days is None:
        raise ValidationError(f"retention policy {table_name}: archive_after_days is required "
                              "(rows are archived before they can be deleted)")
    if delete_after_days is not None and delete_after_days < archive_after_days:
        raise ValidationError(f"retention policy {table_name}: delete_after_days ({delete_after_days}) "
                              f"must not be less than archive_after_days ({archive_after_days})")


def list_policies(conn: Connection) -> list[Policy]:
    """Every policy, active or not, in table order."""
    rows = conn.execute(select(_policies).order_by(_policies.c.table_name)).mappings()
    return [_policy(r) for r in rows]


def active_policies(conn: Connection) -> list[Policy]:
    return [p for p in list_policies(conn) if p.active]


def set_policy(conn: Connection, *, table_name: str, archive_after_days: int | None,
               delete_after_days: int | None, active: bool = True, actor: str,
               session_id: str | None = None) -> Policy:
    """Create or replace the policy of `table_name` (validated first); audited."""
    validate(table_name, archive_after_days, delete_after_days)
    lock(conn)
    now = utcnow()
    values = {"archive_after_days": archive_after_days, "delete_after_days": delete_after_days,
              "active": bool(active), "updated_at": now}
    existing = conn.execute(select(_policies).where(_policies.c.table_name == table_name)).mappings().first()
    if existing is None:
        policy_id = new_id()
        conn.execute(insert(_policies), [{"id": policy_id, "table_name": table_name, "created_at": now, **values}])
        before = None
    else:
        policy_id = existing["id"]
        conn.execute(update(_policies).where(_policies.c.id == policy_id).values(**values))
        before = {k: existing[k] for k in ("archive_after_days", "delete_after_days", "active")}
    audit.append(conn, actor=actor, action="RETENTION_POLICY", table_name="retention_policies",
                 record_id=policy_id, session_id=session_id,
                 details={"table": table_name, "archive_after_days": archive_after_days,
                          "delete_after_days": delete_after_days, "active": bool(active), "before": before})
    return _policy(conn.execute(select(_policies).where(_policies.c.id == policy_id)).mappings().one())
