"""Leases on a backup repository: who is using it, and whether garbage collection may run.

A backup, verify or restore holds a shared lock; garbage collection holds an exclusive
one. Locks are plain JSON objects under `locks/` on the target itself, because the
processes that must see each other may run on different machines and share nothing
but the storage. The protocol (write, then list, back off on conflict) is in
`acquire_lock`; a crashed holder's lease simply expires.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from strongroom.core.backup.manifest import canonical_json
from strongroom.core.db.types import utcnow
from strongroom.core.errors import ConflictError, NotFoundError
from strongroom.core.ids import new_id
from strongroom.core.storage.base import Target

if TYPE_CHECKING:
    from strongroom.core.backup.repository import Repository

Clock = Callable[[], datetime]

LOCKS = "locks/"
DEFAULT_LOCK_TTL = timedelta(minutes=30)


def acquire_lock(repository: Repository, kind: Literal["shared", "exclusive"], purpose: str, *,
                 ttl: timedelta = DEFAULT_LOCK_TTL, clock: Clock = utcnow) -> Lock:
    """Take a lease on the repository: shared (backup, verify, restore) or exclusive
    (garbage collection).

    Protocol: write `locks/<id>.json`, then list every lock; if a live conflicting
    lock is there (exclusive vs anything, shared vs exclusive) remove ours and raise
    ConflictError naming the holder. Two processes racing both see each other and
    both back off, never both proceed. A lock whose lease expired is ignored (its
    holder crashed); a holder must therefore `refresh` well within `ttl`, and one
    whose lease lapsed must stop (`check` raises), because another process may have
    treated it as gone. An unreadable lock object counts as live: an operator
    removes it by hand, rather than a garbled file letting GC run under a backup.
    """
    if kind not in ("shared", "exclusive"):
        raise ValueError(f"lock kind must be shared or exclusive, not {kind!r}")
    lock = Lock(repository, new_id(), kind, purpose, ttl, clock)
    lock._write()
    for key in repository.target.list(LOCKS):
        if key == lock.key:
            continue
        other = read_lock(repository.target, key)
        if other is None:
            continue
        if other.get("garbled"):
            conflict = True
        else:
            if datetime.fromisoformat(other["expires_at"]) < clock():
                continue
            conflict = kind == "exclusive" or other["kind"] == "exclusive"
        if conflict:
            lock.release()
            raise ConflictError(f"{repository.target.describe()}: cannot take a {kind} lock "
                                f"for {purpose}: {_describe_lock(key, other)}")
    return lock


def read_lock(target: Target, key: str) -> dict[str, Any] | None:
    """A lock object's contents; None if it is gone, {'garbled': True} if unreadable."""
    try:
        data = target.get(key)
    except NotFoundError:
        return None  # released between list and get
    try:
        document = json.loads(data)
        if (datetime.fromisoformat(document["expires_at"]).tzinfo is None
                or document["kind"] not in ("shared", "exclusive")):
            raise ValueError
        return document
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return {"garbled": True}


def list_locks(target: Target) -> list[dict[str, Any]]:
    """Every lock object's contents (for the console and `strongroom backup locks`)."""
    found = []
    for key in target.list(LOCKS):
        document = read_lock(target, key)
        if document is not None:
            found.append({"key": key, **document})
    return found


def _describe_lock(key: str, document: dict[str, Any]) -> str:
    if document.get("garbled"):
        return f"{key} is unreadable; remove it if no backup or prune is running"
    return (f"{key} is held {document['kind']} for {document.get('purpose')} by "
            f"{document.get('host')} pid {document.get('pid')} until {document['expires_at']}")


class Lock:
    """A lease on a repository; renew with `refresh`, end with `release` (or `with`)."""

    def __init__(self, repository: Repository, lock_id: uuid.UUID, kind: str, purpose: str,
                 ttl: timedelta, clock: Clock) -> None:
        self.repository = repository
        self.id = lock_id
        self.kind = kind
        self.purpose = purpose
        self.ttl = ttl
        self.clock = clock
        self.key = f"{LOCKS}{lock_id}.json"
        self.expires_at = clock() + ttl
        self.released = False

    def _write(self) -> None:
        now = self.clock()
        self.expires_at = now + self.ttl
        self.repository.target.put(self.key, canonical_json({
            "id": str(self.id), "kind": self.kind, "purpose": self.purpose,
            "host": socket.gethostname(), "pid": os.getpid(),
            "refreshed_at": now.isoformat(), "expires_at": self.expires_at.isoformat()}))

    def check(self) -> None:
        """Raise ConflictError if the lease lapsed; renew it when half spent."""
        if self.released:
            raise ConflictError(f"lock {self.key} was released")
        now = self.clock()
        if now >= self.expires_at:
            raise ConflictError(f"lock {self.key} ({self.purpose}) lapsed at "
                                f"{self.expires_at.isoformat()}; another process may have "
                                "taken over the repository, stop and start again")
        if now >= self.expires_at - self.ttl / 2:
            self._write()

    def refresh(self) -> None:
        """Renew the lease now (after checking it has not lapsed)."""
        self.check()
        self._write()

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.repository.target.delete(self.key)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
