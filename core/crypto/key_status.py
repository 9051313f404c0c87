"""What the keys look like after rotations, and shredding the retired keys nothing uses.

`key_status` answers "is the rotation finished, and can the retired keys go?";
`retired_unused` names the retired keys no row of the live database uses, and
`destroy_retired_unused` crypto-shreds them. Rotation retires keys rather than
destroying them (kek_rotation, dek_rotation, system_key_rotation), so this is the one
place a rotated key is destroyed.
"""
from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Connection, exists, func, select, update

from strongroom.core import audit
from strongroom.core.context import Context
from strongroom.core.crypto.dek_rotation import count_pending, open_generation
from strongroom.core.crypto.fields import key_id_of
from strongroom.core.crypto.kek_rotation import kek_ids_in_use
from strongroom.core.db.encrypted import CLIENT_KEYED, SYSTEM_KEYED, column
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Base, DataKey, KeyPurpose, KeyState
from strongroom.core.db.types import utcnow

_keys = DataKey.__table__


def _system_rows_by_key(conn: Connection) -> Counter[tuple[str, uuid.UUID]]:
    """(table, key id) -> rows, for fields whose key id lives only inside the ciphertext."""
    counts: Counter[tuple[str, uuid.UUID]] = Counter()
    for name, fields in SYSTEM_KEYED.items():
        table = Base.metadata.tables[name]
        for field_name in fields:
            col = table.c[column(field_name)]
            for blob in conn.execute(select(col).where(col.is_not(None))).scalars():
                counts[(name, key_id_of(blob))] += 1
    return counts


def key_status(conn: Connection) -> dict:
    """Counts for `strongroom keys status`: keys by purpose/state, rows on each key version.

    `rows` answers "is the rotation finished, and can the retired keys go?": for every
    encrypted table, the number of rows sealed with keys of each (purpose, version,
    state). Nothing here is secret: ids, counts and timestamps only.
    """
    keys = [
        {"purpose": p.value, "state": s.value, "keys": n}
        for p, s, n in conn.execute(
            select(_keys.c.purpose, _keys.c.state, func.count())
            .group_by(_keys.c.purpose, _keys.c.state).order_by(_keys.c.purpose, _keys.c.state))
    ]
    rows: list[dict] = []
    for name in CLIENT_KEYED:
        table = Base.metadata.tables[name]
        for version, state, n in conn.execute(
                select(_keys.c.version, _keys.c.state, func.count())
                .select_from(table.join(_keys, _keys.c.id == table.c.key_id))
                .group_by(_keys.c.version, _keys.c.state)
                .order_by(_keys.c.version, _keys.c.state)):
            rows.append({"table": name, "purpose": "client", "version": version,
                         "state": state.value, "rows": n})
    system = _system_rows_by_key(conn)
    if system:
        meta = {r.id: r for r in conn.execute(select(_keys.c.id, _keys.c.version, _keys.c.state)
                                              .where(_keys.c.id.in_({k for _, k in system})))}
        grouped: Counter[tuple[str, int, str]] = Counter()
        for (name, key_id), n in system.items():
            info = meta.get(key_id)
            grouped[(name, info.version if info else -1,
                     info.state.value if info else "missing")] += n
        rows += [{"table": t, "purpose": "system", "version": v, "state": s, "rows": n}
                 for (t, v, s), n in sorted(grouped.items())]
    gen = open_generation(conn)
    return {
        "kek_ids": dict(sorted(kek_ids_in_use(conn).items())),
        "keys": keys,
        "rows": rows,
        "rows_on_retired_keys": sum(r["rows"] for r in rows if r["state"] == "retired"),
        "dek_rotation": None if gen is None else {
            "generation": gen.id, "started_at": gen.started_at.isoformat(),
            "scope": "all" if gen.client_ids is None else len(gen.client_ids),
            "remaining_clients": count_pending(conn, gen),
        },
        "stray_clients": count_pending(conn, None),
    }


def retired_unused(conn: Connection, *, for_update: bool = False) -> list[tuple[uuid.UUID, KeyPurpose]]:
    """(id, purpose) of retired client and system keys no row of `conn`'s database uses.

    What `destroy_retired_unused` destroys, and what a snapshot does not need: the
    backup's key bag carries such a key only while an older kept snapshot needs it."""
    unused = [~exists().where(Base.metadata.tables[name].c.key_id == _keys.c.id) for name in CLIENT_KEYED]
    # A client file's content stays sealed under the key it was added with (rotation
    # re-encrypts the row's name, not the content; its chunks name their key only inside
    # the objects), so a retired client key is kept while its client has a live file.
    files = Base.metadata.tables["client_files"]
    unused.append(~exists().where(files.c.client_id == _keys.c.client_id, files.c.deleted_at.is_(None)))
    query = (select(_keys.c.id, _keys.c.purpose)
             .where(_keys.c.state == KeyState.RETIRED,
                    _keys.c.purpose.in_([KeyPurpose.CLIENT, KeyPurpose.SYSTEM]), *unused))
    candidates = conn.execute(query.with_for_update() if for_update else query).all()
    system_in_use = {key_id for _, key_id in _system_rows_by_key(conn)}
    return [(k.id, k.purpose) for k in candidates
            if not (k.purpose == KeyPurpose.SYSTEM and k.id in system_in_use)]


@dataclass(frozen=True)
class Destroyed:
    key_ids: list[str]
    by_purpose: dict[str, int] = field(default_factory=dict)


def destroy_retired_unused(ctx: Context, *, actor: str) -> Destroyed:
    """Crypto-shred retired data keys that no row of the live database uses any more.

    Irreversible for the live database. Snapshots taken before still restore: each
    backup repository's key bag keeps the key while a kept snapshot needs it, and a
    prune drops it once none does (core/backup/keybag.py). Only client and system keys
    are considered: blind-index and signing keys are never retired by rotation.
    """
    by_purpose: Counter[str] = Counter()
    with transaction(ctx.engine) as conn:
        doomed = retired_unused(conn, for_update=True)
        if doomed:
            conn.execute(update(_keys).where(_keys.c.id.in_([k for k, _ in doomed]))
                         .values(wrapped_key=None, state=KeyState.DESTROYED,
                                 destroyed_at=utcnow()))
            for key_id, purpose in doomed:
                ctx.keyring.forget(key_id)
                by_purpose[purpose.value] += 1
            audit.append(conn, actor=actor, action="KEY_DESTROY", table_name="data_keys",
                         details={"reason": "retired and unused", "count": len(doomed),
                                  "by_purpose": dict(by_purpose),
                                  "key_ids": sorted(str(k) for k, _ in doomed)})
    return Destroyed(sorted(str(k) for k, _ in doomed), dict(by_purpose))
