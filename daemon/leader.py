"""Leader election: only one daemon per database schedules and runs jobs.

PostgreSQL: a session-level `pg_try_advisory_lock` on a dedicated connection. The lock
lives exactly as long as that connection, so a leader that dies (or loses its network)
releases it and a standby's next try, every `leader_retry_seconds`, takes over.
SQLite: an exclusive `flock` on a file beside the database, released by the kernel when
the process dies.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from strongroom.core.db.pg import LEADER_LOCK_KEY


class Leadership:
    def __init__(self, engine: Engine, lock_dir: Path) -> None:
        self._engine = engine
        self._lock_path = lock_dir / "strongroomd.leader.lock"
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def is_leader(self) -> bool:
        return self._conn is not None or self._fd is not None

    def try_acquire(self) -> bool:
        if self.is_leader:
            return self.still_held()
        if self._engine.dialect.name == "postgresql":
            conn = self._engine.connect()
            try:
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY}).scalar()
                conn.commit()
            except DBAPIError:
                conn.close()
                raise
            if got:
                self._conn = conn
            else:
                conn.close()
            return bool(got)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        """PostgreSQL: a leader whose lock connection broke is no longer leader."""
        if self._conn is None:
            return self._fd is not None
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
            return True
        except DBAPIError:  # the connection is gone, and the lock with it
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_KEY})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
