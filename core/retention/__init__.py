"""Records retention: per-table policies, legal holds and four-eyes erasure.

The pieces: `policies` (which clinical table is archived after N days and deleted after
M), `holds` (a legal hold on one client, or on a whole practice, blocks both), `erasure`
(a request filed by one person and carried out by a different one: the client's data
keys are destroyed, so its ciphertext is unreadable everywhere, old backups included).
The job that applies the policies, and its plan of upcoming actions, is
strongroom.core.jobs.retention.

Every write here runs inside the caller's transaction and takes RETENTION_LOCK_KEY on
PostgreSQL, so a hold placed while a retention batch or an erasure is deciding either
lands before the decision (and blocks it) or after it; SQLite's single writer gives the
same order. Audit details carry ids and counts, never PHI, and never a hold's or a
request's free-text reason (a person may have written a name into it).
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, Table, bindparam, text, update

from strongroom.core.repository.changes import row_checksum

# The tables a retention policy may name: the clinical ones, whose rows belong to a
# client (sessions and files through client_id).
TABLES = ("clients", "therapy_sessions", "client_files")

RETENTION_LOCK_KEY = 0x5352_5245_544E  # "SRRETN"


def lock(conn: Connection) -> None:
    """Serialise retention decisions with hold changes (PostgreSQL; SQLite has one writer)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RETENTION_LOCK_KEY})


def rewrite_rows(conn: Connection, table: Table, rows: Sequence[RowMapping], values: dict) -> list[uuid.UUID]:
    """Set `values` on each of `rows` (full rows of a syncable table, as read in this
    transaction) with each row's `data_checksum` recomputed; returns their ids. The
    caller includes `updated_at` and a `sync_version` from next_change_version."""
    if not rows:
        return []
    changes = []
    for row in rows:
        checksum = row_checksum({**row, **values})
        changes.append({"row_id": row["id"], "v_data_checksum": checksum, **{f"v_{k}": v for k, v in values.items()}})
    columns = [*values, "data_checksum"]
    conn.execute(update(table).where(table.c.id == bindparam("row_id"))
                 .values({c: bindparam(f"v_{c}") for c in columns}), changes)
    return [row["id"] for row in rows]
