"""Change tracking for `data_keys`, kept by the database itself.

An incremental backup carries only rows whose `sync_version` moved since its parent.
`data_keys` had none, so every incremental re-read and re-stored the whole table (one
key per client: most of a small incremental's time). Its rows change through several
paths (key creation, KEK rewrap, DEK retirement, crypto-shredding), so the version is
assigned by a trigger rather than by each writer: no path can forget it.

Key records are evidence (a destroyed key's row proves the erasure) and are never
deleted; a trigger refuses deletes, which is also what lets an incremental carry only
changed rows without tombstones. Restore loads rows exactly as they were saved: on
PostgreSQL it sets `strongroom.restoring`, on SQLite it holds a `restoring` row in
`change_counter` for the length of its transaction, and the triggers stand aside.

On PostgreSQL the trigger takes CHANGE_LOCK_KEY shared before it draws a version, as
every application writer does (core.repository.changes), so a backup never opens its
snapshot with a lower version still uncommitted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

from strongroom.core.db.pg import CHANGE_LOCK_KEY

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_RESTORING_SQLITE = "NOT EXISTS (SELECT 1 FROM change_counter WHERE name = 'restoring')"
_BUMP_SQLITE = (
    "UPDATE change_counter SET value = value + 1 WHERE name = 'sync_version'; "
    "UPDATE data_keys SET sync_version = (SELECT value FROM change_counter WHERE name = 'sync_version') "
    "WHERE id = NEW.id; "
)

_SQLITE = [
    f"CREATE TRIGGER data_keys_version_insert AFTER INSERT ON data_keys WHEN {_RESTORING_SQLITE} "
    f"BEGIN {_BUMP_SQLITE}END",
    # Whatever an UPDATE wrote into sync_version is replaced. The trigger's own UPDATE
    # fires no trigger: SQLite's recursive_triggers is off (core.db.engine keeps it so).
    f"CREATE TRIGGER data_keys_version_update AFTER UPDATE ON data_keys WHEN {_RESTORING_SQLITE} "
    f"BEGIN {_BUMP_SQLITE}END",
    f"CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys WHEN {_RESTORING_SQLITE} "
    "BEGIN SELECT RAISE(ABORT, 'data_keys rows are evidence and are never deleted; "
    "destroy a key instead'); END",
]

_PG = f"""
CREATE FUNCTION strongroom_data_keys_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('strongroom.restoring', true) = 'on' THEN
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock_shared({CHANGE_LOCK_KEY});
  NEW.sync_version := nextval('strongroom_change_seq');
  RETURN NEW;
END
$$;

CREATE FUNCTION strongroom_data_keys_no_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('strongroom.restoring', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'data_keys rows are evidence and are never deleted; destroy a key instead'
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER data_keys_version BEFORE INSERT OR UPDATE ON data_keys
  FOR EACH ROW EXECUTE FUNCTION strongroom_data_keys_version();
CREATE TRIGGER data_keys_no_delete BEFORE DELETE ON data_keys
  FOR EACH ROW EXECUTE FUNCTION strongroom_data_keys_no_delete();
"""


def upgrade() -> None:
    op.add_column("data_keys", sa.Column("sync_version", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index(op.f("ix_data_keys_sync_version"), "data_keys", ["sync_version"])
    # Existing rows keep version 0: every earlier snapshot copied the table whole, and
    # the first snapshot after this revision is full (a chain never spans revisions).
    if op.get_bind().dialect.name == "sqlite":
        for statement in _SQLITE:
            op.execute(statement)
    else:
        op.execute(_PG)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("data_keys_version_insert", "data_keys_version_update", "data_keys_no_delete"):
            op.execute(f"DROP TRIGGER {name}")
    else:
        op.execute("DROP TRIGGER data_keys_version ON data_keys")
        op.execute("DROP TRIGGER data_keys_no_delete ON data_keys")
        op.execute("DROP FUNCTION strongroom_data_keys_version()")
        op.execute("DROP FUNCTION strongroom_data_keys_no_delete()")
    op.drop_index(op.f("ix_data_keys_sync_version"), table_name="data_keys")
    with op.batch_alter_table("data_keys") as batch_op:
        batch_op.drop_column("sync_version")
