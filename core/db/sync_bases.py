"""Base versions for sync conflicts: the schema side (tables and triggers).

A manual sync conflict shows a person three versions of a row: base (the last version
both sites agreed on), local and remote. Neither site keeps old versions of its rows,
so each synced clinical table has a shadow, `sync_base_<table>`, holding for a row the
version it had just before the first local edit since that version was stamped (sent to
a peer or received from one), with the version vector it was stamped with. Only rows
edited locally since they last travelled have one, so the shadows grow with the edits
waiting to sync, not with the database; a pass drops a row's base once the peer holds the
row (core.sync.bases).

Triggers keep the shadows, so every writer is covered, including writes made outside
the application on PostgreSQL (which sync carries too):
- after an UPDATE of a live row whose previous version was stamped (its `sync_rows`
  record is at that `sync_version`), the previous version replaces the row's base;
  a further local edit, on an unstamped version, keeps the base it has;
- an UPDATE that tombstones the row (erasure, retention) or a DELETE drops its base:
  an erased client's ciphertext and blind indexes must not live on in a shadow;
- while a sync pass applies a peer's rows (a `sync_applying` row exists in its
  transaction, invisible to every other), nothing is kept: those versions are agreed
  ones, and the pass drops the bases of the rows it applied. On PostgreSQL the pass
  also sets the transaction-local `strongroom.sync_applying`, which the UPDATE
  trigger's WHEN clause reads: the trigger is then not fired at all for the rows a
  pass writes (migration 0021; firing it cost a function call and a query per row).

Practices are left out: a practice's details are edited by one person, rarely at two
sites at once, and their ids are not UUIDs like `sync_rows.row_id`.

The shadows copy their table's columns as they are when `install` runs; a migration that
changes a synced table's columns must call `install` again (tests/core/db check that the
shadows match their tables).
"""
from __future__ import annotations

import sqlalchemy as sa

TABLES = ("clients", "therapy_sessions")
FLAG_TABLE = "sync_applying"


def shadow_name(table: str) -> str:
    return f"sync_base_{table}"


# TG_TABLE_NAME is of type `name`, whose collation is "C": compared as it is (or only
# cast to text) the primary key's first column (table_name, default collation) was not
# usable and each UPDATE read all of sync_rows (migration 0020).
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION strongroom_sync_base() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_vv jsonb;
  v_shadow text := 'sync_base_' || TG_TABLE_NAME;
BEGIN
  IF TG_OP = 'DELETE' THEN
    EXECUTE format('DELETE FROM %I WHERE id = $1', v_shadow) USING OLD.id;
    RETURN NULL;
  END IF;
  IF NEW.deleted_at IS NOT NULL THEN
    EXECUTE format('DELETE FROM %I WHERE id = $1', v_shadow) USING OLD.id;
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT 1 FROM sync_applying) THEN
    RETURN NULL;
  END IF;
  SELECT vv INTO v_vv FROM sync_rows
   WHERE table_name = TG_TABLE_NAME::text COLLATE "default" AND row_id = OLD.id AND version = OLD.sync_version;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  EXECUTE format('DELETE FROM %I WHERE id = $1', v_shadow) USING OLD.id;
  EXECUTE format('INSERT INTO %I SELECT * FROM jsonb_populate_record(NULL::%I, $1)', v_shadow, v_shadow)
    USING to_jsonb(OLD) || jsonb_build_object('base_vv', v_vv);
  RETURN NULL;
END $$;
"""


def _shadow_columns(bind: sa.Connection, table: str) -> list[sa.Column]:
    """The table's columns as the database has them now, all nullable but the key."""
    columns = []
    for column in sa.inspect(bind).get_columns(table):
        columns.append(sa.Column(column["name"], column["type"], primary_key=column["name"] == "id",
                                 nullable=column["name"] != "id"))
    return columns


def _json_type(bind: sa.Connection):
    from sqlalchemy.dialects import postgresql
    return postgresql.JSONB() if bind.dialect.name == "postgresql" else sa.JSON()


def install(bind: sa.Connection) -> None:
    """Create (or bring up to date) the flag table, the shadows and their triggers."""
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    metadata = sa.MetaData()
    if FLAG_TABLE not in existing:
        sa.Table(FLAG_TABLE, metadata, sa.Column("holder", sa.String(64), primary_key=True)).create(bind)
    for table in TABLES:
        name = shadow_name(table)
        if name in existing:            # a migration changed the table: rebuild (bases are transient)
            _drop_triggers(bind, table)
            bind.execute(sa.text(f'DROP TABLE "{name}"'))
        sa.Table(name, metadata, *_shadow_columns(bind, table),
                 sa.Column("base_vv", _json_type(bind))).create(bind)
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text(_PG_FUNCTION))
        for table in TABLES:
            for statement in pg_triggers(table):
                bind.execute(sa.text(statement))
        return
    for table in TABLES:
        for statement in _sqlite_triggers(bind, table):
            bind.execute(sa.text(statement))


# Set by core.sync.bases.applying for the transaction of a pass applying a peer's rows.
APPLYING_SETTING = "strongroom.sync_applying"


def pg_triggers(table: str) -> list[str]:
    """The shadow's triggers on PostgreSQL: every DELETE, and each UPDATE unless a pass
    applies it (a tombstone drops the base even then)."""
    return [
        f"CREATE TRIGGER {table}_sync_base_delete AFTER DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION strongroom_sync_base()",
        f"CREATE TRIGGER {table}_sync_base AFTER UPDATE ON {table} FOR EACH ROW "
        f"WHEN (NEW.deleted_at IS NOT NULL OR current_setting('{APPLYING_SETTING}', true) IS DISTINCT FROM 'on') "
        "EXECUTE FUNCTION strongroom_sync_base()",
    ]


def drop_pg_triggers(bind: sa.Connection, table: str) -> None:
    for name in (f"{table}_sync_base", f"{table}_sync_base_delete"):
        bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))


def _sqlite_triggers(bind: sa.Connection, table: str) -> list[str]:
    names = [c["name"] for c in sa.inspect(bind).get_columns(table)]
    shadow = shadow_name(table)
    columns = ", ".join(f'"{n}"' for n in names)
    values = ", ".join(f'OLD."{n}"' for n in names)
    return [
        f"""CREATE TRIGGER {table}_sync_base_keep AFTER UPDATE ON {table}
            WHEN NEW.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM {FLAG_TABLE})
            BEGIN
              INSERT OR REPLACE INTO {shadow} ({columns}, base_vv)
              SELECT {values}, m.vv FROM sync_rows m
               WHERE m.table_name = '{table}' AND m.row_id = OLD.id AND m.version = OLD.sync_version;
            END""",
        f"""CREATE TRIGGER {table}_sync_base_tombstone AFTER UPDATE ON {table}
            WHEN NEW.deleted_at IS NOT NULL
            BEGIN DELETE FROM {shadow} WHERE id = OLD.id; END""",
        f"""CREATE TRIGGER {table}_sync_base_delete AFTER DELETE ON {table}
            BEGIN DELETE FROM {shadow} WHERE id = OLD.id; END""",
    ]


def _drop_triggers(bind: sa.Connection, table: str) -> None:
    if bind.dialect.name == "postgresql":
        drop_pg_triggers(bind, table)
        return
    for suffix in ("keep", "tombstone", "delete"):
        bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_sync_base_{suffix}"))


def uninstall(bind: sa.Connection) -> None:
    for table in TABLES:
        _drop_triggers(bind, table)
        bind.execute(sa.text(f'DROP TABLE IF EXISTS "{shadow_name(table)}"'))
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("DROP FUNCTION IF EXISTS strongroom_sync_base()"))
    bind.execute(sa.text(f'DROP TABLE IF EXISTS "{FLAG_TABLE}"'))
