"""Loading rows, per engine: segments are PostgreSQL COPY text (core.backup.copytext),
loaded with `COPY ... FROM STDIN` on PostgreSQL and decoded into typed rows on SQLite;
later links are upserted by primary key, whole-copied tables replaced. Also the session
settings a load runs under, the counters that continue after the restored data, and
the foreign-key proof when triggers are off."""
from __future__ import annotations

import logging


from sqlalchemy import Connection, Engine, delete, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from strongroom.core.backup import copytext
from strongroom.core.backup.manifest import Manifest
from strongroom.core.db.engine import set_scope, transaction
from strongroom.core.errors import IntegrityError
from strongroom.core.backup.snapshots import tables as backed_up_tables
from strongroom.core.repository import changes

log = logging.getLogger(__name__)


SQLITE_BATCH = 2000

def wipe(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_logs_append_only_delete")
    else:
        conn.execute(text("ALTER TABLE audit_logs DISABLE TRIGGER audit_logs_append_only"))
    for table in reversed(backed_up_tables()):
        conn.execute(delete(table))
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("CREATE TRIGGER audit_logs_append_only_delete BEFORE DELETE ON audit_logs "
                             "BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only'); END")
    else:
        conn.execute(text("ALTER TABLE audit_logs ENABLE TRIGGER audit_logs_append_only"))

def load_table_sqlite(conn: Connection, table, cols, chunks) -> None:
    batch: list[dict] = []
    line = 1
    for plain in chunks:
        for row in copytext.decode_lines(cols, plain, first_line=line):
            batch.append(row)
            if len(batch) >= SQLITE_BATCH:
                conn.execute(insert(table), batch)
                batch = []
        line += plain.count(b"\n")
    if batch:
        conn.execute(insert(table), batch)

def load_table_pg(conn: Connection, table, chunks) -> None:
    """COPY the segments in. Decryption runs ahead in the prefetch threads while this one
    waits on the server (psycopg waits with the GIL released). Not psycopg's queued
    writer: its queue holds up to 1024 buffers, so a server slower than decryption let
    memory grow with the table (420 MiB at scale 1)."""
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(copytext.copy_in_sql(table)) as copy:
        for plain in chunks:
            copy.write(plain)

def replica_mode(conn: Connection) -> bool:
    """Load without firing triggers: the foreign-key checks (one index probe per row)
    and the audit-bypass triggers (one plpgsql call per row) were most of a restore's
    server time. Needs a superuser (or SET privilege on the parameter); without it the
    load runs with every trigger on, only slower. `SET LOCAL` ends with the transaction.
    The foreign keys are then proven as a whole by `check_foreign_keys`, and the audit
    chain by `audit.verify`, before the restore reports success."""
    try:
        with conn.begin_nested():
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        return True
    except DBAPIError as err:
        log.info("restore: cannot set session_replication_role (%s); loading with triggers on",
                 type(err.orig).__name__)
        return False

def check_foreign_keys(conn: Connection, tables) -> None:
    """Every foreign key of every restored table points at an existing row: one scan of
    each child table, every reference left-joined to its parent's primary key."""
    for table in tables:
        fks = [fk for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name)]
        if not fks:
            continue
        joins, counts = [], []
        for n, fk in enumerate(fks):
            alias = f"p{n}"
            joins.append(f'LEFT JOIN "{fk.column.table.name}" {alias} '
                         f'ON {alias}."{fk.column.name}" = c."{fk.parent.name}"')
            counts.append(f'count(*) FILTER (WHERE c."{fk.parent.name}" IS NOT NULL '
                          f'AND {alias}."{fk.column.name}" IS NULL)')
        row = conn.execute(text(f'SELECT {", ".join(counts)} FROM "{table.name}" c {" ".join(joins)}')).one()
        broken = [f"{fk.parent.name} -> {fk.column.table.name} ({bad} rows)"
                  for fk, bad in zip(fks, row) if bad]
        if broken:
            raise IntegrityError(f"restored table {table.name}: foreign keys point at missing rows: "
                                 f"{'; '.join(broken)}")

def upsert_sqlite(conn: Connection, table, cols, chunks) -> set:
    """Insert or replace rows by primary key; returns the keys seen."""
    pk = [c.name for c in table.primary_key.columns]
    stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=pk,
                                      set_={c.name: stmt.excluded[c.name] for c in cols if c.name not in pk})
    keys: set = set()
    batch: list[dict] = []
    line = 1
    for plain in chunks:
        for row in copytext.decode_lines(cols, plain, first_line=line):
            keys.add(tuple(row[k] for k in pk))
            batch.append(row)
            if len(batch) >= SQLITE_BATCH:
                conn.execute(stmt, batch)
                batch = []
        line += plain.count(b"\n")
    if batch:
        conn.execute(stmt, batch)
    return keys

def upsert_pg(conn: Connection, table, cols, chunks) -> None:
    """COPY into a temporary twin, then INSERT ... ON CONFLICT DO UPDATE into the table."""
    names = [c.name for c in cols]
    pk = [c.name for c in table.primary_key.columns]
    quoted = ", ".join(f'"{n}"' for n in names)
    updates = ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names if n not in pk) or f'"{pk[0]}" = EXCLUDED."{pk[0]}"'
    conn.execute(text(f'CREATE TEMP TABLE _sr_load (LIKE "{table.name}" INCLUDING DEFAULTS) ON COMMIT DROP'))
    raw = conn.connection.driver_connection
    with raw.cursor().copy(f"COPY _sr_load ({quoted}) FROM STDIN") as copy:
        for plain in chunks:
            copy.write(plain)
    conn.execute(text(f'INSERT INTO "{table.name}" ({quoted}) SELECT {quoted} FROM _sr_load '
                      f'ON CONFLICT ({", ".join(pk)}) DO UPDATE SET {updates}'))
    conn.execute(text("DROP TABLE _sr_load"))

def drop_absent(conn: Connection, table, keep_from_latest) -> None:
    """A whole-copied table holds exactly the latest snapshot's rows."""
    pk = list(table.primary_key.columns)
    keys = keep_from_latest()
    if len(pk) != 1:
        return
    existing = set(conn.execute(select(pk[0])).scalars())
    gone = [k for k in existing if (k,) not in keys]
    for start in range(0, len(gone), 500):
        conn.execute(delete(table).where(pk[0].in_(gone[start:start + 500])))

def reset_counters(conn: Connection, manifest: Manifest) -> None:
    """Sequences and the change counter continue after the restored data, never reuse."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT setval('strongroom_change_seq', :v, :called)"),
                     {"v": max(manifest.change_watermark, 1), "called": manifest.change_watermark > 0})
        for name in ("audit_logs", "security_events"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                              f"coalesce((SELECT max(id) FROM {name}), 0) + 1, false)"))
    else:
        conn.execute(text("UPDATE change_counter SET value = :v WHERE name = 'sync_version'"),
                     {"v": manifest.change_watermark})

def begin_load(conn: Connection) -> bool:
    """Session settings for loading; True when triggers are off (PostgreSQL replica)."""
    if conn.dialect.name != "postgresql":
        # Self-references (backups.parent_id) may point forward within a table:
        # check foreign keys at commit, as PostgreSQL does at the end of each COPY.
        conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        return False
    set_scope(conn, practice_id=None, system=True)
    conn.execute(text(copytext.pg_session_sql()))
    # JIT compiling the proofs' scans of unanalysed tables cost more than it saved.
    conn.execute(text("SET LOCAL jit = off"))
    changes.hold_tracking(conn)
    return replica_mode(conn)

def defer_indexes(engine: Engine, names: list[str]) -> dict[str, list[str]]:
    """Drop the staged tables' plain indexes (not primary keys, not unique ones: those
    the load, the proofs and the foreign-key checks use or enforce) and return their
    definitions, to build once each table is complete: one sorted build costs far less
    than an index entry per row loaded."""
    deferred: dict[str, list[str]] = {}
    with transaction(engine) as conn:
        for name in names:
            rows = conn.execute(text(
                "SELECT ic.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class ic ON ic.oid = i.indexrelid "
                "WHERE i.indrelid = to_regclass(:t) AND NOT i.indisunique AND NOT i.indisprimary "
                "ORDER BY ic.relname"), {"t": f'"{name}"'}).all()
            for index, _ in rows:
                conn.execute(text(f'DROP INDEX "{index}"'))
            if rows:
                deferred[name] = [ddl for _, ddl in rows]
    return deferred

def probe_replica(conn: Connection) -> bool:
    with conn.begin():
        return replica_mode(conn)
