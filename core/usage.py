"""Storage usage: how much each table and each backup target holds, and how backups fared.

What an operator reads off the daemon's health: per table its row count and, where the
engine can tell, the bytes it takes (PostgreSQL: `pg_total_relation_size`, indexes and
TOAST included; SQLite: the `dbstat` table's pages, indexes folded into their table,
else nothing per table and the file's size as a whole); per backup configuration the
bytes its snapshots added to the target (from the `backups` table: reading a remote
target's listing every minute would cost more than it tells), its quota when one is set
and the share used; and backup runs that succeeded and failed in a window. Names and
numbers only. Counting rows reads every table: callers cache the answer (the daemon
refreshes it at most once a minute).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, select, text

from strongroom.core.backup import configurations
from strongroom.core.config import Settings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, BackupConfiguration, Base, JobRun, JobStatus
from strongroom.core.db.types import utcnow

BACKUP_WINDOW = timedelta(days=7)
_FAILED = (JobStatus.FAILED, JobStatus.INTERRUPTED)


def _sqlite_bytes(conn: Connection) -> dict[str, int] | None:
    """Bytes per table (its indexes included) from SQLite's dbstat, or None without it."""
    try:
        rows = conn.execute(text(
            "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m ON s.name = m.name "
            "GROUP BY m.tbl_name")).all()
    except Exception as exc:        # a build without SQLITE_ENABLE_DBSTAT_VTAB
        if "dbstat" not in str(exc):
            raise
        return None
    return {name: int(size) for name, size in rows}


def _pg_bytes(conn: Connection, names: list[str]) -> dict[str, int]:
    rows = conn.execute(text("SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                             "JOIN pg_namespace n ON n.oid = c.relnamespace "
                             "WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema() "
                             "AND c.relname = ANY(:names)"), {"names": names}).all()
    return {name: int(size) for name, size in rows}


def _database_bytes(conn: Connection) -> int | None:
    if conn.dialect.name == "postgresql":
        return conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    if conn.dialect.name == "sqlite":
        pages = conn.execute(text("PRAGMA page_count")).scalar_one()
        return pages * conn.execute(text("PRAGMA page_size")).scalar_one()
    return None


def table_usage(conn: Connection) -> dict:
    """Per table of the schema, largest first: rows and bytes (None where the engine
    cannot tell); and the database's size as a whole."""
    tables = Base.metadata.sorted_tables
    names = [t.name for t in tables]
    sizes = (_pg_bytes(conn, names) if conn.dialect.name == "postgresql"
             else _sqlite_bytes(conn) if conn.dialect.name == "sqlite" else None)
    usage = [{"table": t.name, "rows": conn.execute(select(func.count()).select_from(t)).scalar_one(),
              "bytes": None if sizes is None else sizes.get(t.name, 0)} for t in tables]
    usage.sort(key=lambda u: (-(u["bytes"] or 0), -u["rows"], u["table"]))
    return {"tables": usage, "database_bytes": _database_bytes(conn),
            "bytes_per_table": sizes is not None}


def target_usage(conn: Connection, settings: Settings) -> list[dict]:
    """Per configured backup configuration: the bytes its snapshots added (every one not
    forgotten), its quota when set and the share of it used."""
    backups, configs = Backup.__table__, BackupConfiguration.__table__
    used = dict(conn.execute(
        select(configs.c.name, func.coalesce(func.sum(backups.c.stored_bytes), 0))
        .select_from(backups.join(configs, backups.c.configuration_id == configs.c.id))
        .where(backups.c.status != "forgotten").group_by(configs.c.name)).all())
    out = []
    for name in configurations.names(settings):
        section = settings.backup if name == configurations.DEFAULT else settings.backup.configurations[name]
        quota = section.quota_bytes
        used_bytes = int(used.get(name, 0))
        out.append({"configuration": name, "used_bytes": used_bytes, "quota_bytes": quota,
                    "percent": round(100 * used_bytes / quota, 1) if quota else None})
    return out


def backup_outcomes(conn: Connection, *, window: timedelta = BACKUP_WINDOW, now: datetime | None = None) -> dict:
    """Backup runs that finished in the window: succeeded, and failed or interrupted."""
    runs = JobRun.__table__
    since = (now or utcnow()) - window
    counts = dict(conn.execute(select(runs.c.status, func.count()).where(
        runs.c.job_kind == "backup", runs.c.finished_at >= since).group_by(runs.c.status)).all())
    return {"window_days": window.days, "succeeded": counts.get(JobStatus.SUCCEEDED, 0),
            "failed": sum(counts.get(s, 0) for s in _FAILED)}


def usage(engine: Engine, settings: Settings) -> dict:
    """Tables, targets and backup outcomes in one read (in system scope: on PostgreSQL
    row-level security would hide the practice tables' rows from a plain connection)."""
    with transaction(engine, read_only=True) as conn:
        return {"storage": {**table_usage(conn), "targets": target_usage(conn, settings)},
                "backups": backup_outcomes(conn)}
