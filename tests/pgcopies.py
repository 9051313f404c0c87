"""Fresh PostgreSQL databases for the tests, made ahead and put back behind.

Each PostgreSQL test gets a database of its own, equal to the migrated template with a
site id of its own. Making one (CREATE DATABASE ... TEMPLATE) and dropping it cost the
server 80-300 ms of CPU per test on a two-core machine (measured: about 100 ms to copy
the 9.4 MB template, about 50 ms to drop it, each DROP forcing a checkpoint), some
1,400 times a run, on the cores the tests run on. So a database a test has finished
with is put back as the template was instead of dropped, when that can be done and
proven complete (`Copies._reset`):

  * every other connection to it ended first (a test's daemon or pool), and none made
    again by the end;
  * every table that has any page (pg_relation_size > 0: a row written, even one
    rolled back or deleted) emptied and vacuumed down to no pages at all, as in a
    copy: a table merely emptied would keep pages with free space, and rows a later
    test writes could land in them out of the order they were written in (a table
    that keeps a page gets its database dropped). Not TRUNCATE: a table referenced
    by a foreign key can only be truncated with every table referencing it, and
    truncating them all cost the server about as much as a new copy;
  * the template's own rows written back (COPY) and its sequences set where they were;
  * the schema then compared with the template's (`FINGERPRINT`: tables, columns,
    defaults, constraints, indexes, triggers and whether enabled, functions, policies,
    views, rules, sequences, grants, owners, the database's own settings): a test that
    changed any of it (a migration test, a trigger dropped) gets its database dropped,
    not reused.

One thread per test process does all of it, between tests: neither making, resetting
nor dropping is part of any test's own time. Measured on a two-core machine, the whole
suite (-n 3): 1,166 s -> 1,059 s, the PostgreSQL tests' setup 642 s -> 256 s in all
(the SQLite tests': 259 and 273 s); about one copy in fifty was dropped, not reused.
A database is reused at most `REUSES` times, then dropped: index pages emptied by the
deletes are kept for reuse, not given back, and a bound keeps a long run's databases
from growing with it."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import psycopg
from psycopg import sql

REUSES = 50

_USER_SCHEMAS = "NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"

# Everything about a database's schema and settings a test could change, as one digest.
FINGERPRINT = f"""
SELECT md5(string_agg(x, E'\\n' ORDER BY x)) FROM (
  SELECT format('n:%s:%s:%s', nspname, nspowner::regrole, nspacl) AS x FROM pg_namespace
    WHERE nspname !~ '^pg_(toast_)?temp_'
  UNION ALL SELECT format('c:%s.%s:%s:%s:%s:%s:%s:%s:%s', n.nspname, c.relname, c.relkind, c.relowner::regrole,
                          c.relrowsecurity, c.relforcerowsecurity, c.reloptions, c.relpersistence, c.relacl)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname {_USER_SCHEMAS} AND n.nspname !~ '^pg_(toast_)?temp_'
  UNION ALL SELECT format('a:%s:%s:%s:%s:%s:%s:%s', a.attrelid::regclass, a.attname,
                          format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped, a.attidentity,
                          pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND n.nspname {_USER_SCHEMAS} AND n.nspname !~ '^pg_(toast_)?temp_'
  UNION ALL SELECT format('k:%s:%s:%s', conrelid::regclass, conname, pg_get_constraintdef(oid)) FROM pg_constraint
    WHERE connamespace <> 'pg_catalog'::regnamespace
  UNION ALL SELECT format('i:%s', pg_get_indexdef(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'pg_toast'::regnamespace)
  UNION ALL SELECT format('t:%s:%s', tgenabled, pg_get_triggerdef(oid)) FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT format('f:%s:%s:%s:%s:%s:%s', pronamespace::regnamespace, proname, proowner::regrole, md5(prosrc),
                          proconfig, proacl) FROM pg_proc
    WHERE pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL SELECT format('p:%s:%s:%s:%s:%s:%s', polrelid::regclass, polname, polcmd, polroles,
                          pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid)) FROM pg_policy
  UNION ALL SELECT format('v:%s:%s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM pg_class c
    WHERE c.relkind IN ('v', 'm')
      AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
  UNION ALL SELECT format('r:%s:%s:%s', ev_class::regclass, rulename, ev_enabled) FROM pg_rewrite
    WHERE ev_class >= 16384 AND rulename <> '_RETURN'
  UNION ALL SELECT format('q:%s:%s:%s:%s:%s:%s:%s', seqrelid::regclass, seqtypid::regtype, seqstart, seqincrement,
                          seqmax, seqmin, seqcycle) FROM pg_sequence
  UNION ALL SELECT format('e:%s:%s', evtname, evtenabled) FROM pg_event_trigger
  UNION ALL SELECT format('x:%s:%s', extname, extversion) FROM pg_extension
  UNION ALL SELECT format('y:%s:%s', typnamespace::regnamespace, typname) FROM pg_type
    WHERE typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)
  UNION ALL SELECT format('s:%s', setconfig) FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL SELECT format('d:%s:%s:%s:%s', datdba::regrole, datallowconn, datconnlimit, datacl) FROM pg_database
    WHERE datname = current_database()
  UNION ALL SELECT 'l:' || count(*) FROM pg_largeobject_metadata
  UNION ALL SELECT 'u:' || count(*) FROM pg_publication
  UNION ALL SELECT 'w:' || count(*) FROM pg_subscription
    WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  UNION ALL SELECT 'g:' || count(*) FROM pg_prepared_xacts WHERE database = current_database()
) fingerprint
"""

_WRITTEN_TABLES = """
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND pg_relation_size(c.oid) > 0
"""

_SEQUENCES = "SELECT schemaname, sequencename, start_value, last_value FROM pg_sequences WHERE schemaname = 'public'"


def admin(dsn: str, statement: str) -> None:
    """One statement outside a transaction (CREATE and DROP DATABASE need that)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(statement)


class Template:
    """What a reset writes back: the template's rows (COPY text, by table), its
    sequences' positions and its schema's fingerprint, read once from the template."""

    def __init__(self, dsn_of: Callable[[str], str], name: str) -> None:
        with psycopg.connect(dsn_of(name)) as conn:
            self.fingerprint = conn.execute(FINGERPRINT).fetchone()[0]
            self.rows: dict[str, bytes] = {}
            for (table,) in conn.execute(_WRITTEN_TABLES).fetchall():
                with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))) as copy:
                    self.rows[table] = b"".join(bytes(block) for block in copy)
            self.sequences = conn.execute(_SEQUENCES).fetchall()


class Copies:
    """Copies of one template for one test process: `take` hands out a fresh one (made
    or reset while the test before ran) and `give_back` resets or drops it behind."""

    def __init__(self, admin_dsn: str, dsn_of: Callable[[str], str], template: str, prefix: str,
                 source: Template | None = None) -> None:
        """`source`: the template as read already (reading it connects to it, and no
        copy of it can be made while a connection is open: CREATE DATABASE refuses)."""
        self.admin_dsn, self.dsn_of, self.template, self.prefix = admin_dsn, dsn_of, template, prefix
        self.source = source or Template(dsn_of, template)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-copies")
        self.finishing: list[Future] = []
        self.spare: list[str] = []           # reset, waiting to be handed out
        self.uses: dict[str, int] = {}
        self.next: Future = self.thread.submit(self._ready)

    def _ready(self) -> str:
        """A database equal to the template, with a site id of its own: a reset spare if
        there is one, else a new copy."""
        if self.spare:
            return self.spare.pop()
        name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        admin(self.admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        with psycopg.connect(self.dsn_of(name), autocommit=True) as conn:
            conn.execute("UPDATE sync_site SET id = %s", (str(uuid.uuid4()),))
        self.uses[name] = 0
        return name

    def take(self) -> str:
        """A fresh database, the next one begun. A failure to make one is raised here,
        to the test that asked, and the next test asks again."""
        try:
            name = self.next.result()
        finally:
            self.next = self.thread.submit(self._ready)
        self.uses[name] += 1
        return name

    def give_back(self, name: str) -> None:
        """The test is done with `name`: reset it for a later test, or drop it."""
        self.finishing.append(self.thread.submit(self._finish, name))

    def _finish(self, name: str) -> None:
        if self.uses[name] < REUSES and self._reset(name):
            self.spare.append(name)
            return
        del self.uses[name]
        self._drop(name)

    def _drop(self, name: str) -> None:
        admin(self.admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _reset(self, name: str) -> bool:
        """Put `name` back as the template was; False when that could not be proven (it
        is then dropped). A failure here is never the test's: it only costs a copy."""
        try:
            if not self._alone(name):
                return False
            with psycopg.connect(self.dsn_of(name), autocommit=True) as conn:
                conn.execute("SET session_replication_role = replica")    # no triggers, no FK checks
                written = [sql.Identifier(table) for (table,) in conn.execute(_WRITTEN_TABLES).fetchall()]
                if written:
                    with conn.transaction():
                        for table in written:
                            conn.execute(sql.SQL("DELETE FROM {}").format(table))
                    # Dead rows removed and the emptied pages cut off (with them the
                    # index entries, which a vacuum may otherwise leave for later).
                    conn.execute(sql.SQL("VACUUM (INDEX_CLEANUP ON) {}").format(sql.SQL(", ").join(written)))
                    if conn.execute(_WRITTEN_TABLES).fetchall():
                        return False
                with conn.transaction():
                    for table, data in self.source.rows.items():
                        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(table))) as copy:
                            copy.write(data)
                    for schema, sequence, start, last in self.source.sequences:
                        conn.execute("SELECT setval(%s::regclass, %s, %s)",
                                     (f'"{schema}"."{sequence}"', start if last is None else last, last is not None))
                    conn.execute("UPDATE sync_site SET id = %s", (str(uuid.uuid4()),))
                    if conn.execute(FINGERPRINT).fetchone()[0] != self.source.fingerprint:
                        return False
                    # Something that connected again meanwhile (a test's process still
                    # running) could write into it after: not reused.
                    if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND pid <> pg_backend_pid()").fetchone()[0]:
                        return False
            return True
        except psycopg.Error:
            return False

    def _alone(self, name: str, wait: float = 5.0) -> bool:
        """End every other connection to `name` and wait until they are gone."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            deadline = time.monotonic() + wait
            while True:
                others = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
                if not others:
                    return True
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)

    def close(self) -> None:
        """Drop every copy, after the work in flight: a drop that failed fails the run."""
        self.thread.shutdown(wait=True)
        for name in list(self.uses):
            self._drop(name)
        for done in (*self.finishing, self.next):
            done.result()
