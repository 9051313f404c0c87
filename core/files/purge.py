"""Deleting a file's objects from the live store when its row goes: erasure, retention.

A file's object names are listed in its manifest, which is sealed with the client's
data key, so they are collected inside the transaction that tombstones the rows and
before that transaction destroys any key; the objects are deleted only after it has
committed, so a rollback deletes nothing and never leaves a live row without content.
A delete that fails does not undo anything: it is counted, its file named, and the
object stays an orphan (sealed under a key that may now be destroyed) for the
integrity job's files check (core/integrity/files.py) to find and remove. A crash
between the commit and the deletes leaves orphans the same way.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from strongroom.core import audit
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.models import ClientFile
from strongroom.core.errors import StrongroomError
from strongroom.core.files.content import object_keys
from strongroom.core.files.repository import _cipher_for
from strongroom.core.integrity import MAX_EVIDENCE_IDS
from strongroom.core.storage.base import Target

_files = ClientFile.__table__


@dataclass(frozen=True)
class Purged:
    """What deleting the collected objects did: counts, and the files whose objects
    could not all be deleted (ids only)."""

    files: int
    objects_deleted: int
    objects_failed: int
    failed_file_ids: list[str]

    def evidence(self) -> dict:
        """Counts and at most MAX_EVIDENCE_IDS file ids, for an audit entry or a certificate."""
        return {"files": self.files, "objects_deleted": self.objects_deleted,
                "objects_failed": self.objects_failed, "failed_file_ids": self.failed_file_ids[:MAX_EVIDENCE_IDS]}


@dataclass
class Purge:
    """The objects of files about to be tombstoned, collected in the tombstoning
    transaction; `run` after it commits."""

    target: Target
    objects: dict[uuid.UUID, list[str]] = field(default_factory=dict)

    def collect_files(self, conn: Connection, keyring: Keyring, file_ids: Iterable[uuid.UUID]) -> int:
        """Collect the objects of the live files among `file_ids`; returns how many files."""
        ids = list(file_ids)
        if not ids:
            return 0
        rows = conn.execute(select(_files.c.id, _files.c.client_id, _files.c.storage_key).where(
            _files.c.id.in_(ids), _files.c.deleted_at.is_(None)).order_by(_files.c.client_id)).all()
        return self._collect(conn, keyring, rows)

    def collect_client(self, conn: Connection, keyring: Keyring, client_id: uuid.UUID) -> int:
        """Collect the objects of every live file of `client_id` (before its keys go)."""
        rows = conn.execute(select(_files.c.id, _files.c.client_id, _files.c.storage_key).where(
            _files.c.client_id == client_id, _files.c.deleted_at.is_(None))).all()
        return self._collect(conn, keyring, rows)

    def _collect(self, conn: Connection, keyring: Keyring, rows) -> int:
        openers: dict[uuid.UUID, object] = {}
        for row in rows:
            if row.client_id not in openers:
                openers[row.client_id] = _cipher_for(conn, keyring, row.client_id)
            # A manifest that does not open yields only its own key: its chunks are then
            # orphans for the integrity job.
            self.objects[row.id] = object_keys(self.target, openers[row.client_id], row.id, row.storage_key)
        return len(rows)

    def run(self) -> Purged:
        """Delete every collected object (a file's chunks first, its manifest last).
        A failure is counted and the file named; the rest carry on."""
        deleted = failed = 0
        failed_files: list[str] = []
        for file_id, keys in self.objects.items():
            ok = True
            for key in keys:
                try:
                    self.target.delete(key)
                    deleted += 1
                except (StrongroomError, OSError):
                    failed += 1
                    ok = False
            if not ok:
                failed_files.append(str(file_id))
        purged = Purged(len(self.objects), deleted, failed, failed_files)
        self.objects = {}
        return purged


def record(conn: Connection, purged: Purged, *, actor: str, action: str, table_name: str,
           record_id: uuid.UUID | None, details: dict) -> None:
    """Audit what a purge did (counts and file ids; `details` says why it ran)."""
    audit.append(conn, actor=actor, action=action, table_name=table_name, record_id=record_id,
                 outcome="success" if purged.objects_failed == 0 else "failure",
                 details={"event": "file_objects_deleted", **details, **purged.evidence()})
