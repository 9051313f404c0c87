"""Which database a URL or an engine really is, whatever the URL's spelling.

A restore over the database a daemon serves rolls the live data back under it (users
created since vanish, the audit log loses its newest entries and still verifies). Two
URLs name the same database in many ways: localhost or 127.0.0.1 or a socket,
postgresql:// or postgresql+psycopg://, extra query parameters, a SQLite path through a
symlink, a `..` or a hard link. So "is this the live database?" is decided by identity:

- PostgreSQL: the cluster's system identifier (`pg_control_system()`, callable by any
  role on 13-15; where a hardened server revokes it, the postmaster's start time, which
  no two running clusters share) and the database's oid in that cluster.
- SQLite: the file's device and inode (`os.stat` follows symlinks; a hard link is the
  same inode). A file that does not exist yet, or an in-memory database, is no existing
  database at all, so it is never the live one.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from strongroom.core.db.pg import LEADER_LOCK_KEY

LEADER_LOCK_FILE = "strongroomd.leader.lock"     # daemon/leader.py takes it in data_dir


@dataclass(frozen=True)
class DatabaseIdentity:
    """Equal for two handles on the same database, different otherwise."""

    engine: str          # "postgresql" or "sqlite"
    cluster: str         # PostgreSQL system identifier; SQLite st_dev
    database: int        # PostgreSQL database oid; SQLite st_ino


def sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite URL opens (relative to the working directory, as SQLite takes
    it), or None for an in-memory database."""
    parsed = make_url(url) if isinstance(url, str) else url
    name = parsed.database or ""
    if parsed.query.get("uri") in ("true", "1") and name.startswith("file:"):
        name, _, options = name[len("file:"):].partition("?")
        if "mode=memory" in options:
            return None
    if name in ("", ":memory:"):
        return None
    return Path(name)


def of_sqlite(url: str | URL) -> DatabaseIdentity | None:
    """Identity of the SQLite file `url` opens, or None if there is no such file yet.
    Never creates the file (connecting would)."""
    path = sqlite_file(url)
    if path is None:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return DatabaseIdentity("sqlite", str(st.st_dev), st.st_ino)


def of_postgresql(conn: Connection) -> DatabaseIdentity:
    """Identity of the database `conn` is connected to."""
    oid = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
    try:
        with conn.begin_nested():
            cluster = conn.execute(text("SELECT system_identifier::text FROM pg_control_system()")).scalar_one()
    except DBAPIError:   # EXECUTE revoked: the running postmaster's start is as unique
        cluster = "started:" + conn.execute(text("SELECT pg_postmaster_start_time()::text")).scalar_one()
    return DatabaseIdentity("postgresql", cluster, int(oid))


def of_engine(engine: Engine) -> DatabaseIdentity | None:
    """Identity of the database `engine` opens (None: a SQLite file not yet created)."""
    if engine.dialect.name == "sqlite":
        return of_sqlite(engine.url)
    with engine.connect() as conn:
        identity = of_postgresql(conn)
        conn.rollback()
    return identity


def served_by_daemon(engine: Engine) -> bool:
    """Whether a running strongroomd (leader) serves the database `engine` opens.

    PostgreSQL: the daemon's leader lock is an advisory lock in that very database, so
    this is exact. SQLite: the leader lock is a file in the daemon's data directory;
    the database there is the daemon's only if the data directory's configuration names
    that same file, which is checked by identity (an unreadable configuration under a
    held lock counts as served: when in doubt, do not restore over it)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            free = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
            if free:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
            conn.rollback()
        return not free
    target = of_sqlite(engine.url)
    if target is None:
        return False
    folder = Path(os.path.realpath(sqlite_file(engine.url))).parent
    if not _flock_held(folder / LEADER_LOCK_FILE):
        return False
    from strongroom.core.config import CONFIG_NAME, load_settings
    from strongroom.core.errors import ConfigError
    try:
        served = load_settings(folder / CONFIG_NAME).database.url
    except ConfigError:
        return True
    return make_url(served).get_backend_name() == "sqlite" and of_sqlite(served) == target


def _flock_held(path: Path) -> bool:
    """Whether another open file (another process, or another descriptor of this one)
    holds an exclusive flock on `path`. A missing file is not held, and is not created."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)      # closing releases the shared lock if it was taken
    return False
