"""Keys: no live row sealed with a destroyed or unknown data key; retired keys in use counted.

A live row on a destroyed key is a client whose data was shredded but who still shows
as a client (every read of it fails); a row naming a key that does not exist cannot be
read at all. Both fail. A retired key still named by live rows means a key rotation
has not finished; that is a warning, with the count.
"""
from __future__ import annotations

from sqlalchemy import func, select
from strongroom.core.context import Context
from strongroom.core.db.encrypted import CLIENT_KEYED
from strongroom.core.db.models import Base, DataKey, KeyState
from strongroom.core.db.types import utcnow
from strongroom.core.integrity import FAIL, MAX_EVIDENCE_IDS, OK, WARN, record, worst

_keys = DataKey.__table__


def _live_rows_by_key_state(conn, table) -> tuple[dict[str, int], dict[str, list[str]]]:
    query = (select(table.c.id, _keys.c.id.label("found"), _keys.c.state.label("state"))
             .select_from(table.outerjoin(_keys, table.c.key_id == _keys.c.id))
             .where(table.c.deleted_at.is_(None),
                    (_keys.c.id.is_(None)) | (_keys.c.state != KeyState.ACTIVE)))
    counts: dict[str, int] = {}
    ids: dict[str, list[str]] = {}
    for row in conn.execute(query):
        kind = "unknown" if row.found is None else KeyState(row.state).value
        counts[kind] = counts.get(kind, 0) + 1
        ids.setdefault(kind, []).append(str(row.id))
    return counts, ids


def check_keys(ctx: Context, progress) -> dict:
    """Live rows of every client-keyed table by the state of the key they name."""
    started = utcnow()
    per_table, status, flagged = {}, OK, []
    with ctx.engine.connect() as conn:
        for n, name in enumerate(CLIENT_KEYED, 1):
            counts, ids = _live_rows_by_key_state(conn, Base.metadata.tables[name])
            if counts:
                per_table[name] = counts
            for kind in ("destroyed", "unknown"):
                flagged += ids.get(kind, [])
            if counts.get("destroyed") or counts.get("unknown"):
                status = worst(status, FAIL)
            elif counts.get("retired"):
                status = worst(status, WARN)
            progress(n, len(CLIENT_KEYED), f"keys of {name}")
        states = dict(conn.execute(select(_keys.c.state, func.count()).group_by(_keys.c.state)).all())
    on_destroyed = sum(c.get("destroyed", 0) for c in per_table.values())
    unknown = sum(c.get("unknown", 0) for c in per_table.values())
    retired = sum(c.get("retired", 0) for c in per_table.values())
    return record(ctx, "keys", "data keys of live rows", "data_keys", status,
                  "no live row on a destroyed or unknown key",
                  f"{on_destroyed} on destroyed keys, {unknown} on unknown keys, {retired} on retired keys",
                  {"live_rows_on_destroyed_keys": on_destroyed, "live_rows_on_unknown_keys": unknown,
                   "live_rows_on_retired_keys": retired, "by_table": per_table,
                   "keys_by_state": {KeyState(s).value: c for s, c in states.items()},
                   "ids": flagged[:MAX_EVIDENCE_IDS]}, started)
