"""Engine factory: the same behaviour from SQLite and PostgreSQL.

SQLite gets WAL, foreign keys and a busy timeout. Write transactions opened with
`transaction()` begin IMMEDIATE (a writer takes the lock up front instead of failing
half-way when another process wrote first); plain `engine.connect()` reads and
`transaction(read_only=True)` begin deferred, so long readers such as a backup or an
integrity scan never hold the write lock. PostgreSQL runs READ COMMITTED with the
application marker `strongroom.app` set per transaction, which the audit triggers use to
tell application writes (audited by the application) from writes that bypass it.
"""
from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator

from psycopg import pq
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from sqlalchemy.exc import DBAPIError, OperationalError

from strongroom.core.db import jsoncodec
from strongroom.core.errors import ConfigError, DatabaseUnavailableError, StrongroomError


def normalise_url(url: str) -> str:
    """Accept libpq-style postgresql:// URLs and route them through psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> Engine:
    """Create an engine for `url` with Strongroom's per-engine settings applied."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError with the URL (and password) in it
        raise ConfigError("database.url: not a valid database URL") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True,
                               connect_args={"options": _session_options(parsed.query.get("options"))},
                               json_serializer=jsoncodec.dumps, json_deserializer=jsoncodec.loads)
        event.listen(engine, "before_cursor_execute", _binary_results)
        return engine
    raise ConfigError(f"database.url: unsupported engine {parsed.get_backend_name()!r}")


# Every session starts scoped to the system: a transaction that `transaction()` does not
# scope to a practice (jobs, health, integrity and audit scans, which read with plain
# connections) is the system's. Row-level security binds the application's role (a
# superuser bypasses it), so before this such reads saw no clinical rows at all under
# an ordinary role, silently: the integrity scan checked 0 clients and passed. A
# practice-scoped transaction still sets its own scope, transaction-local, and the
# session's default comes back when it ends.
_SYSTEM_SCOPE = "-c strongroom.scope=system"


def _session_options(given: str | tuple | None) -> str:
    """libpq `options` for a session: the URL's own (if any) and the system scope."""
    if isinstance(given, tuple):
        given = " ".join(given)
    return f"{given} {_SYSTEM_SCOPE}" if given else _SYSTEM_SCOPE


# The execution option that asks PostgreSQL for a statement's results in binary.
BINARY_RESULTS = "strongroom_binary_results"


def _binary_results(conn: Connection, cursor, statement, parameters, context, executemany: bool) -> None:
    """Results in binary for a statement executed with BINARY_RESULTS: bytea, UUIDs and
    timestamps come in their fixed forms, where text results spelled every ciphertext
    byte as two hex digits for the server to write and the driver to parse (a sync batch
    of 2,000 sessions: 44 ms to fetch, 52 in text). psycopg loads the same values from
    either (tests/core/db/test_engine.py compares them per synced table)."""
    if context is not None and context.execution_options.get(BINARY_RESULTS):
        cursor.format = pq.Format.BINARY


def _sqlite_engine(url: str, echo: bool) -> Engine:
    # A few pooled connections keep their page caches warm; SQLite has one writer anyway.
    engine = create_engine(url, echo=echo, pool_size=4, max_overflow=4,
                           json_serializer=jsoncodec.dumps, json_deserializer=jsoncodec.loads)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # Off is SQLite's default; said here because data_keys' version trigger (0005)
        # updates its own table and must not fire itself again.
        cur.execute("PRAGMA recursive_triggers=OFF")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA synchronous=NORMAL")
        # 32 MiB page cache per connection (the default is 2 MiB): index inserts at
        # hundreds of thousands of rows otherwise go to disk for every page they touch.
        cur.execute("PRAGMA cache_size=-32768")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def is_postgres(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


@contextlib.contextmanager
def transaction(engine: Engine, *, practice_id: uuid.UUID | None = None,
                system: bool = True, read_only: bool = False) -> Iterator[Connection]:
    """One database transaction, committed on success and rolled back on any error.

    On PostgreSQL the transaction is scoped for row-level security: `system=True` (jobs,
    offline admin commands) sees every practice; otherwise only `practice_id`'s rows.
    """
    bind = engine if read_only else engine.execution_options(sqlite_immediate=True)
    with bind.begin() as conn:
        if is_postgres(conn):
            set_scope(conn, practice_id=practice_id, system=system)
        yield conn


@contextlib.contextmanager
def transactions(engine: Engine, *, practice_id: uuid.UUID | None = None,
                 system: bool = True) -> Iterator[Callable[[], contextlib.AbstractContextManager[Connection]]]:
    """Short transactions one after another on one connection, held meanwhile: `begin()`
    is one transaction as `transaction(engine, ...)` makes it, without a pool checkout,
    its ping and its reset each time (as much as the transaction itself, for a row or
    two on PostgreSQL). For a loop that commits a little at each step."""
    with engine.execution_options(sqlite_immediate=True).connect() as conn:
        @contextlib.contextmanager
        def begin() -> Iterator[Connection]:
            with conn.begin():
                if is_postgres(conn):
                    set_scope(conn, practice_id=practice_id, system=system)
                yield conn
        yield begin


def set_scope(conn: Connection, *, practice_id: uuid.UUID | None, system: bool) -> None:
    """Set the transaction-local settings that RLS policies and audit triggers read."""
    conn.execute(
        text("SELECT set_config('strongroom.app', 'on', true),"
             " set_config('strongroom.scope', :scope, true),"
             " set_config('strongroom.practice_id', :pid, true)"),
        {"scope": "system" if system else "practice", "pid": str(practice_id or "")},
    )


def driver_message(exc: DBAPIError, fallback: str) -> str:
    """The first line of the driver's own message (hosts and SQL, never bound values, so
    safe to show), or `fallback` when the driver gave none."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else fallback


def translate_error(exc: BaseException) -> StrongroomError | None:
    """Turn a driver error into a StrongroomError with one readable line, or None.

    Driver messages name hosts and SQL, never bound values, so they are safe to show;
    only the first line is kept (the rest is SQLAlchemy's background link and the SQL).
    """
    if isinstance(exc, OperationalError):
        first = driver_message(exc, str(exc).splitlines()[0])
        return DatabaseUnavailableError(f"database unavailable: {first}")
    if isinstance(exc, DBAPIError):
        first = driver_message(exc, "unknown error")
        return StrongroomError(f"database error: {first}")
    return None
