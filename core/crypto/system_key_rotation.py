"""System-key rotation: a new system data key re-seals every SYSTEM_KEYED field.

The system key seals the few fields that belong to no client (TOTP seeds, a practice's
tax id and licence number); the old key is retired, not destroyed, like a client key
after a DEK rotation, until key_status.destroy_retired_unused finds no row using it.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.crypto.fields import key_id_of
from strongroom.core.crypto.reencryption import mark_changed, reseal
from strongroom.core.db.encrypted import SYSTEM_KEYED, column
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Base, DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow

_keys = DataKey.__table__


@dataclass(frozen=True)
class SystemKeyRotation:
    old_key_ids: list[str]
    new_key_id: str
    version: int
    rows_reencrypted: dict[str, int]


def rotate_system_key(ctx: Context, *, actor: str) -> SystemKeyRotation:
    """New system DEK; re-encrypt every SYSTEM_KEYED field (TOTP seeds) in one transaction.

    There are few such rows, so one transaction is both simplest and crash-safe.
    """
    keyring = ctx.keyring
    counts: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        keys = conn.execute(
            select(_keys.c.id, _keys.c.version, _keys.c.state)
            .where(_keys.c.purpose == KeyPurpose.SYSTEM)
            .order_by(_keys.c.version.desc()).with_for_update()
        ).all()
        version = (keys[0].version + 1) if keys else 1
        target = keyring.create_key(conn, KeyPurpose.SYSTEM, version=version)
        for name, fields in SYSTEM_KEYED.items():
            table = Base.metadata.tables[name]
            cols = [table.c[column(f)] for f in fields]
            found = conn.execute(select(table).where(
                or_(*[c.is_not(None) for c in cols]))).mappings().all()
            for row in found:
                values = {}
                for field_name in fields:
                    blob = row[column(field_name)]
                    if blob is not None and key_id_of(blob) != target.key_id:
                        values[column(field_name)] = reseal(conn, keyring, target, blob, name,
                                                            field_name, row["id"])
                if values:
                    if "sync_version" in row:
                        mark_changed(conn, row, values)
                    conn.execute(update(table).where(table.c.id == row["id"]).values(**values))
                    counts[name] += 1
        old = [k.id for k in keys if k.state == KeyState.ACTIVE]
        if old:
            conn.execute(update(_keys).where(_keys.c.id.in_(old))
                         .values(state=KeyState.RETIRED, retired_at=utcnow()))
        audit.append(conn, actor=actor, action="KEY_ROTATE", table_name="data_keys", details={
            "kind": "system", "old_key_ids": [str(k) for k in old],
            "new_key_id": str(target.key_id), "version": version,
            "rows_reencrypted": dict(counts),
        })
    # The keyring caches which key is "the" system key; it must use the new one now.
    keyring.forget_singleton(KeyPurpose.SYSTEM)
    return SystemKeyRotation([str(k) for k in old], str(target.key_id), version, dict(counts))
