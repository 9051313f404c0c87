"""Client data keys travel with the rows they open, and a destroyed key always wins.

Sites of one practice share one KEK, so a key record moves as it is stored: wrapped.
Nothing is unwrapped to move it. A key the receiver lacks is inserted; a key both hold
takes the later of the two states (active < retired < destroyed). A destroyed key's
record keeps no wrapped key, so once any site has erased a client, every site it syncs
with destroys that client's keys on its next pass, and no order of passes brings them
back: the merge can only move a key towards destroyed.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import Connection, bindparam, insert, select, text, update

from strongroom.core.db.models import DataKey, KeyPurpose, KeyState
from strongroom.core.errors import IntegrityError

_keys = DataKey.__table__
_RANK = {KeyState.ACTIVE: 0, KeyState.RETIRED: 1, KeyState.DESTROYED: 2}
COLUMNS = ("id", "purpose", "client_id", "version", "wrapped_key", "public_key", "kek_id", "state",
           "created_at", "retired_at", "destroyed_at")


def foreign_keks(conn: Connection, kek_ids: list[str]) -> list[str]:
    """The KEKs that wrap this database's live keys other than `kek_ids`: sites of one
    practice share one KEK, so any is a refusal (naming them, never a key)."""
    return sorted(kek_ids_in_use(conn) - set(kek_ids))


# A loose index scan: the smallest live KEK id, then the smallest above it, and so on,
# each one probe of ix_data_keys_live_kek (migration 0010), so the cost is the number of
# KEKs (one or two), not of keys. The WHERE matches the index's own predicate.
_LIVE_KEKS = text("""
    WITH RECURSIVE keks(kek_id) AS (
        SELECT min(kek_id) FROM data_keys WHERE state <> 'destroyed'
        UNION ALL
        SELECT (SELECT min(d.kek_id) FROM data_keys d WHERE d.state <> 'destroyed' AND d.kek_id > keks.kek_id)
        FROM keks WHERE keks.kek_id IS NOT NULL
    )
    SELECT kek_id FROM keks WHERE kek_id IS NOT NULL""")


def kek_ids_in_use(conn: Connection) -> set[str]:
    """The KEKs this database's live keys are wrapped by (ids, never keys)."""
    return set(conn.execute(_LIVE_KEKS).scalars())


def changed_keys(conn: Connection, after: int, limit: int) -> list[dict]:
    """Client key records whose version moved past `after`, oldest change first."""
    rows = conn.execute(select(_keys).where(_keys.c.sync_version > after, _keys.c.purpose == KeyPurpose.CLIENT)
                        .order_by(_keys.c.sync_version).limit(limit)).mappings().all()
    return [dict(r) for r in rows]


def apply_keys(conn: Connection, records: list[dict], *, kek_ids: list[str],
               forget: Callable[[uuid.UUID], None]) -> dict[str, int]:
    """Merge key records into this database (the caller's transaction). Returns counts:
    inserted, destroyed (keys this site destroyed because a peer had), retired."""
    counts = {"inserted": 0, "destroyed": 0, "retired": 0}
    if not records:
        return counts
    ids = [r["id"] for r in records]
    here = {r["id"]: r for r in conn.execute(select(_keys).where(_keys.c.id.in_(ids))).mappings()}
    # `kek_ids` is the keyring the pass holds, which is the sending site's: a pass cannot
    # see the receiver's key file. What this database's own keys are wrapped by is what
    # the site opens them with, so a key must be wrapped by one of those too. Otherwise a
    # site midway through taking a new KEK (old key file, new one pending) would hand a
    # peer already on the new KEK keys wrapped by the old one, which that peer cannot open.
    held = kek_ids_in_use(conn) or set(kek_ids)
    inserts: list[dict] = []
    changes: list[dict] = []
    for record in records:
        state = KeyState(record["state"])
        if state != KeyState.DESTROYED and (record["kek_id"] not in kek_ids or record["kek_id"] not in held):
            raise IntegrityError(f"data key {record['id']} is wrapped by KEK {record['kek_id']}, but the receiving "
                                 f"site's keys are wrapped by KEK {', '.join(sorted(held))}; "
                                 "sites of one practice share one KEK (a site that is taking a new KEK finishes "
                                 "with strongroom keys rotate-kek before it syncs)")
        mine = here.get(record["id"])
        if mine is None:
            inserts.append({c: record[c] for c in COLUMNS})
            counts["inserted"] += 1
            continue
        if mine["client_id"] != record["client_id"] or mine["purpose"] != record["purpose"]:
            raise IntegrityError(f"data key {record['id']} names another client or purpose on the peer")
        if _RANK[state] <= _RANK[KeyState(mine["state"])]:
            continue
        values = {"b_id": record["id"], "state": state, "retired_at": mine["retired_at"] or record["retired_at"],
                  "wrapped_key": mine["wrapped_key"], "destroyed_at": mine["destroyed_at"]}
        if state == KeyState.DESTROYED:
            values.update(wrapped_key=None, destroyed_at=record["destroyed_at"])
            counts["destroyed"] += 1
            forget(record["id"])
        else:
            counts["retired"] += 1
        changes.append(values)
    # A batch of key records in two statements (new keys, state changes), not one each.
    if inserts:
        conn.execute(insert(_keys), inserts)
    if changes:
        conn.execute(update(_keys).where(_keys.c.id == bindparam("b_id"))
                     .values(state=bindparam("state"), retired_at=bindparam("retired_at"),
                             wrapped_key=bindparam("wrapped_key"), destroyed_at=bindparam("destroyed_at")), changes)
    return counts
