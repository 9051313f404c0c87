"""A staging schema for PostgreSQL restores: build beside `public`, then swap it in.

A restore in one transaction on one connection leaves a two-core machine half idle:
loading and proving run on a single server backend. Building the restored database in
its own schema lets several connections load and prove tables at once, each in its own
transaction, while `public` stays exactly as it was; one short transaction then renames
`public` away and the staging schema to `public`. Until that commit nothing in `public`
has changed, so a failure or a crash at any point leaves the target as it was (a crash
leaves only a staging schema that no search path names; the next restore drops it).

Used only where it is safe: the role may create schemas and owns `public`, and `public`
holds nothing but Strongroom's own tables (no views, no other tables, no extension
objects), since the old `public` is dropped whole after the swap. Otherwise the restore
runs in place, in one transaction (core.restore).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy import Connection, Engine, event, text

from strongroom.core.db.engine import make_engine
from strongroom.core.db.models import Base
from strongroom.core.errors import ConflictError

log = logging.getLogger(__name__)

RESTORE_LOCK_KEY = 0x5352_5253_5452  # "SRRSTR": one restore at a time per database
STAGING_PREFIX = "sr_restore_"
REPLACED_PREFIX = "sr_replaced_"
_OWN_TABLES = frozenset(Base.metadata.tables) | {"alembic_version"}


def usable(engine: Engine) -> bool:
    """Whether this role may stage and swap here without touching anything not ours."""
    with engine.connect() as conn:
        allowed = conn.execute(text(
            "SELECT has_database_privilege(current_database(), 'CREATE') AND "
            "coalesce((SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace "
            "          WHERE nspname = 'public'), true)")).scalar()
        foreign = conn.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'm', 'f', 'p')")).scalars().all()
        extensions = conn.execute(text(
            "SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE n.nspname = 'public'")).scalar()
    others = sorted(set(foreign) - _OWN_TABLES)
    if not allowed or others or extensions:
        log.info("restore: loading in place (schema swap %s)",
                 "not permitted for this role" if not allowed else
                 "would drop objects that are not Strongroom's in schema public")
        return False
    return True


def public_is_empty(conn: Connection, is_empty: Callable[[Connection], bool]) -> bool:
    if conn.execute(text("SELECT to_regclass('public.audit_logs')")).scalar() is None:
        return True
    return is_empty(conn)


class Stage:
    """`with Stage(engine) as stage:` build through `stage.engine`, then `stage.swap_in()`.

    Leaving the block without a swap (an exception) drops the staging schema.
    """

    def __init__(self, engine: Engine) -> None:
        self.target = engine
        self.name = f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        self._lock_conn: Connection | None = None
        self.engine: Engine | None = None
        self._swapped = False

    def __enter__(self) -> Stage:
        # A session lock held on a connection of its own for the whole restore: a second
        # restore into this database waits, and leftovers of crashed ones can be dropped.
        self._lock_conn = self.target.connect().execution_options(isolation_level="AUTOCOMMIT")
        if not self._lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": RESTORE_LOCK_KEY}).scalar():
            self._lock_conn.close()
            raise ConflictError("another restore into this database is running")
        try:
            leftovers = self._lock_conn.execute(text(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE :a OR nspname LIKE :b"),
                {"a": f"{STAGING_PREFIX}%", "b": f"{REPLACED_PREFIX}%"}).scalars().all()
            for leftover in leftovers:
                log.warning("restore: dropping schema %s left by an interrupted restore", leftover)
                self._lock_conn.execute(text(f'DROP SCHEMA "{leftover}" CASCADE'))
            self._lock_conn.execute(text(f'CREATE SCHEMA "{self.name}"'))
        except BaseException:
            self._release()
            raise
        self.engine = make_engine(self.target.url.render_as_string(hide_password=False))
        name = self.name

        @event.listens_for(self.engine, "connect")
        def _search_path(dbapi_conn, _record) -> None:
            # Only the staging schema: an unqualified name can never reach `public`.
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            dbapi_conn.execute(f'SET search_path TO "{name}"')
            dbapi_conn.autocommit = autocommit
        return self

    def check_target(self, *, force: bool, is_empty: Callable[[Connection], bool]) -> None:
        with self.target.connect() as conn:
            if not force and not public_is_empty(conn, is_empty):
                raise ConflictError("the target database is not empty; restoring over live data "
                                    "needs --force (which replaces it)")

    def swap_in(self, *, force: bool, is_empty: Callable[[Connection], bool]) -> None:
        """Make the staging schema `public` in one transaction; drop the old one after."""
        self.engine.dispose()
        replaced = f"{REPLACED_PREFIX}{self.name[len(STAGING_PREFIX):]}"
        with self.target.begin() as conn:
            if not force and not public_is_empty(conn, is_empty):
                raise ConflictError("the target database was written to during the restore; "
                                    "nothing was changed (use --force to replace it)")
            had_public = conn.execute(text(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'public'")).scalar()
            if had_public:
                conn.execute(text(f'ALTER SCHEMA public RENAME TO "{replaced}"'))
            conn.execute(text(f'ALTER SCHEMA "{self.name}" RENAME TO public'))
            # PostgreSQL 15's defaults for `public`, where this role may set them.
            try:
                with conn.begin_nested():
                    conn.execute(text("ALTER SCHEMA public OWNER TO pg_database_owner"))
            except Exception:                     # noqa: BLE001 - keep this role as owner
                log.info("restore: schema public stays owned by the restoring role")
            conn.execute(text("GRANT USAGE ON SCHEMA public TO PUBLIC"))
        self._swapped = True
        if had_public:
            try:
                self._lock_conn.execute(text(f'DROP SCHEMA "{replaced}" CASCADE'))
            except Exception:                     # noqa: BLE001 - the restore itself succeeded
                log.error("restore: could not drop the replaced schema %s; drop it by hand "
                          "(it holds the database as it was before the restore)", replaced)

    def __exit__(self, *exc) -> None:
        try:
            if self.engine is not None:
                self.engine.dispose()
            if not self._swapped and self._lock_conn is not None:
                self._lock_conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE'))
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock_conn is not None:
            self._lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": RESTORE_LOCK_KEY})
            self._lock_conn.close()
            self._lock_conn = None
