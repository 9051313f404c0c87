"""Backup configurations: the named ways snapshots are taken and kept.

The configuration file is the source of truth (`[backup]` is the configuration named
"default", `[backup.configurations.NAME]` declares more); `backup_configurations` is its
record in the database, so every snapshot row can name the configuration that took it
(`backups.configuration_id`), and four-eyes requests can point at one. `sync` brings the
table in line with the file (daemon start and reload, `strongroom init`, and each job
for its own configuration before it records anything), in the caller's transaction,
with one CONFIG audit entry per row it creates, changes or deactivates. A configuration
removed from the file is deactivated, never deleted: snapshots still reference it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from strongroom.core import audit
from strongroom.core.config import BackupConfigurationSettings, KeepPolicy, Settings, backup_target
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import BackupConfiguration
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError
from strongroom.core.ids import new_id

DEFAULT = "default"
_table = BackupConfiguration.__table__


@dataclass(frozen=True)
class Configuration:
    """One backup configuration as the jobs use it (target resolved)."""

    name: str
    target: str
    compression_level: int
    backup_type: str
    verify_after: bool
    require_approval: bool
    approval_hours: int
    retention: KeepPolicy

    def row(self, schedule: str | None) -> dict[str, Any]:
        """The `backup_configurations` columns this configuration determines."""
        return {"name": self.name, "backup_type": self.backup_type, "schedule": schedule,
                "target": self.target, "compression_level": self.compression_level,
                # Snapshots are always encrypted; the column records it for the reports.
                "encryption_enabled": True,
                "retention": {**self.retention.model_dump(), "require_approval": self.require_approval,
                              "approval_hours": self.approval_hours},
                "tables": [], "verify_after": self.verify_after, "is_active": True}


def names(settings: Settings) -> list[str]:
    """Every configured name, "default" first."""
    return [DEFAULT, *sorted(settings.backup.configurations)]


def resolve(settings: Settings, name: str | None = None) -> Configuration:
    """The configuration called `name` (default: "default"); NotFoundError lists the
    configured names when there is none by that name."""
    name = name or DEFAULT
    if name == DEFAULT:
        section: BackupConfigurationSettings = settings.backup
    elif name in settings.backup.configurations:
        section = settings.backup.configurations[name]
    else:
        raise NotFoundError(f"no backup configuration by that name (configured: {', '.join(names(settings))})")
    return Configuration(name=name, target=backup_target(settings, name),
                         compression_level=section.compression_level, backup_type=section.backup_type,
                         verify_after=section.verify_after, require_approval=section.require_approval,
                         approval_hours=section.approval_hours, retention=section.retention)


def _schedule(settings: Settings, name: str) -> str | None:
    """"default" backs up on [schedules] backup; a named one on its own `schedule`."""
    if name == DEFAULT:
        return settings.schedules.get("backup")
    return settings.backup.configurations[name].schedule


def _changed(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in wanted.items() if existing.get(k) != v)


def sync_one(conn: Connection, settings: Settings, name: str, *, actor: str) -> uuid.UUID:
    """Bring one configuration's row in line with the file; returns its id."""
    wanted = resolve(settings, name).row(_schedule(settings, name))
    existing = conn.execute(select(_table).where(_table.c.name == name)).mappings().first()
    now = utcnow()
    if existing is None:
        row_id = new_id()
        conn.execute(insert(_table), [{**wanted, "id": row_id, "created_at": now, "updated_at": now}])
        audit.append(conn, actor=actor, action="CONFIG", table_name="backup_configurations", record_id=row_id,
                     details={"event": "backup_configuration_created", "name": name})
        return row_id
    changed = _changed(dict(existing), wanted)
    if changed:
        conn.execute(update(_table).where(_table.c.id == existing["id"]).values(**wanted, updated_at=now))
        audit.append(conn, actor=actor, action="CONFIG", table_name="backup_configurations",
                     record_id=existing["id"], details={"event": "backup_configuration_updated", "name": name,
                                                        "fields": changed})
    return existing["id"]


def sync(conn: Connection, settings: Settings, *, actor: str = "system") -> dict[str, uuid.UUID]:
    """Every configuration of the file into the table; rows for names no longer in the
    file are deactivated. Returns name -> id of the active ones."""
    ids = {name: sync_one(conn, settings, name, actor=actor) for name in names(settings)}
    gone = conn.execute(select(_table.c.id, _table.c.name).where(
        _table.c.is_active.is_(True), _table.c.name.not_in(list(ids)))).all()
    for row in gone:
        conn.execute(update(_table).where(_table.c.id == row.id).values(is_active=False, updated_at=utcnow()))
        audit.append(conn, actor=actor, action="CONFIG", table_name="backup_configurations", record_id=row.id,
                     details={"event": "backup_configuration_deactivated", "name": row.name})
    return ids


def sync_configurations(engine: Engine, settings: Settings, *, actor: str = "system") -> dict[str, uuid.UUID]:
    """`sync` in a transaction of its own (daemon start and reload)."""
    with transaction(engine) as conn:
        return sync(conn, settings, actor=actor)


def listing(conn: Connection) -> list[dict[str, Any]]:
    """Every configuration row, active first, then by name."""
    rows = conn.execute(select(_table).order_by(_table.c.is_active.desc(), _table.c.name)).mappings()
    return [dict(r) for r in rows]
