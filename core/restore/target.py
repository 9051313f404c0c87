"""What a restore may write into: a database URL that is one, a database that answers, empty
unless forced, and never a live one (the caller's own, or any a running daemon serves),
decided by the database's identity rather than its URL's spelling."""
from __future__ import annotations

import os

from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.exc import DBAPIError

from strongroom.core.db import identity
from strongroom.core.db.engine import driver_message, make_engine
from strongroom.core.db.models import AuditLog, Client, DataKey, Practice
from strongroom.core.errors import ConfigError, ConflictError, ValidationError


_EMPTY_CHECK = (Practice, Client, DataKey, AuditLog)

def is_empty(conn: Connection) -> bool:
    return all(conn.execute(select(func.count()).select_from(m.__table__)).scalar_one() == 0
               for m in _EMPTY_CHECK)

def dest_engine(dest: str) -> Engine:
    """The engine for a restore's `dest`; a URL that is not one is a ValidationError
    naming `dest` (the parameter the person gave), never the URL, which may hold a
    password, and never `database.url`, the daemon's own setting."""
    try:
        return make_engine(dest)
    except ConfigError as exc:
        why = ("names an engine Strongroom does not restore into" if "unsupported engine" in str(exc)
               else "is not a database URL")
        raise ValidationError(f"restore: dest (the target database) {why} (give "
                              "sqlite:////path/to/new.db or postgresql://user@host/database)") from None

def check_request(dest: str, *, force: bool, live: Engine | None = None) -> None:
    """What can be known about a restore's target before a job is queued: its URL is a
    database URL, the database answers, and it is empty unless `force`. Found here, a
    mistake is refused at once, by name, instead of as a failed run minutes later. A
    SQLite file that does not exist yet is fine (the restore creates it) and is not
    created here. A target that is a live database (`live`, or one a daemon serves) is
    let through to the run, which refuses it and audits the attempt as a failed
    RESTORE: an attempt on live data is worth a record, a typo is not."""
    engine = dest_engine(dest)
    try:
        if engine.dialect.name == "sqlite" and not _sqlite_file_exists(engine):
            return
        try:
            refuse_live_target(engine, live)
        except ConflictError:
            return
        except DBAPIError:
            pass                  # unreachable: said below, when it is opened
        try:
            with engine.connect() as conn:
                have = set(inspect(conn).get_table_names())
                empty = not {m.__tablename__ for m in _EMPTY_CHECK} <= have or is_empty(conn)
        except DBAPIError as exc:
            raise ValidationError("restore: dest (the target database) cannot be opened "
                                  f"({driver_message(exc, type(exc).__name__)})") from None
        if not empty and not force:
            raise ConflictError("restore: dest (the target database) is not empty; restoring over "
                                "live data needs force (which first empties it); nothing was queued")
    finally:
        engine.dispose()

def _sqlite_file_exists(engine: Engine) -> bool:
    database = engine.url.database
    return bool(database) and database != ":memory:" and os.path.exists(database)

def refuse_live_target(target: Engine, live: Engine | None) -> None:
    """Refuse a target that is a live database: `live` (the caller's own, e.g. the
    daemon's) or any database a running daemon serves, decided by identity, never by
    how the URL is spelled (core.db.identity). `force` does not override this: it
    means "a non-empty database that is not the live one". Restoring a practice over
    its own database is disaster recovery, done offline with the daemon stopped."""
    target_id = identity.of_engine(target)
    if target_id is None:                 # a SQLite file not yet created: nothing to lose
        return
    if live is not None and identity.of_engine(live) == target_id:
        raise ConflictError("the target is this daemon's own live database (the same "
                            f"{_what(target_id)}, however its URL is spelled); nothing was "
                            "changed. Restore into an empty database and switch over, or stop "
                            "the daemon and restore offline with `strongroom restore --force`")
    if identity.served_by_daemon(target):
        raise ConflictError("the target is a live database: a running strongroomd serves it "
                            "(it holds its leader lock); nothing was changed. Stop that daemon "
                            "before restoring over its database")

def _what(ident: identity.DatabaseIdentity) -> str:
    return ("PostgreSQL cluster and database oid" if ident.engine == "postgresql"
            else "SQLite file (device and inode)")
