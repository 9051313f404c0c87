"""PostgreSQL's per-row triggers say in a WHEN clause when they have nothing to do.

Three triggers fire for each row the application writes to a synced table on
PostgreSQL, and for those rows each returned at once: the audit trigger and the bypass
versioning trigger when `strongroom.app` is on (the application audits and versions its
own writes), the sync-base trigger when a pass applies a peer's rows. Still each was a
PL/pgSQL call per row, the AFTER ones queued first, and the sync-base one ran a query:
a sync pass writing 100k clients spent about 0.8 s of the server's time on them
(measured with log_min_duration_statement: 2.9 s for the upserts, 2.1 s after). A
WHEN clause is evaluated before the trigger is queued or called, so those rows now cost
nothing. The functions keep their own checks: they decide exactly as before, and a
write outside the application (which sets neither setting) fires them as before.

The sync-base trigger is split in two (core.db.sync_bases.pg_triggers): a DELETE has no
NEW row for the WHEN clause to read.

SQLite is unchanged: its triggers already carry WHEN clauses where they can.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from strongroom.core.db import sync_bases

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_APP_OFF = "current_setting('strongroom.app', true) IS DISTINCT FROM 'on'"
_RESTORING_OFF = "current_setting('strongroom.restoring', true) IS DISTINCT FROM 'on'"


def _tables_with(bind: sa.Connection, suffix: str) -> list[str]:
    """The tables carrying a trigger named <table><suffix> (the audit trigger is on
    every PHI table, whichever migration added it)."""
    rows = bind.execute(sa.text(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE NOT t.tgisinternal ORDER BY c.relname")).all()
    return [table for table, name in rows if name == f"{table}{suffix}"]


def _recreate(bind: sa.Connection, with_when: bool) -> None:
    for table in _tables_with(bind, "_audit_bypass"):
        op.execute(f"DROP TRIGGER {table}_audit_bypass ON {table}")
        when = f"WHEN ({_APP_OFF}) " if with_when else ""
        op.execute(f"CREATE TRIGGER {table}_audit_bypass AFTER INSERT OR UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW {when}EXECUTE FUNCTION strongroom_audit_bypass()")
    for table in _tables_with(bind, "_sync_bypass"):
        op.execute(f"DROP TRIGGER {table}_sync_bypass ON {table}")
        when = f"WHEN ({_APP_OFF} AND {_RESTORING_OFF}) " if with_when else ""
        op.execute(f"CREATE TRIGGER {table}_sync_bypass BEFORE INSERT OR UPDATE ON {table} "
                   f"FOR EACH ROW {when}EXECUTE FUNCTION strongroom_sync_bypass_{table}()")
    for table in sync_bases.TABLES:
        sync_bases.drop_pg_triggers(bind, table)
        if with_when:
            for statement in sync_bases.pg_triggers(table):
                op.execute(statement)
        else:
            op.execute(f"CREATE TRIGGER {table}_sync_base AFTER UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION strongroom_sync_base()")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _recreate(bind, with_when=True)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        _recreate(bind, with_when=False)
