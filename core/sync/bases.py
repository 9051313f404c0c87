"""Base versions for manual conflicts: reading and dropping what the triggers keep.

The schema side (shadow tables, triggers, why) is core/db/sync_bases.py. Here:
- `applying`: marks a transaction as a sync pass applying a peer's rows, so the
  triggers keep no base for those writes;
- `base_image`: the base of a row for a conflict between two versions, only when it is
  the version both have seen last: its version vector must equal the meet (the
  element-wise minimum) of theirs. A base kept from before an exchange both sides have
  since seen would show a person a value neither side holds as its ancestor any more;
  then the conflict goes without a base, as it always could;
- `forget`: a row's base is dropped once a peer holds the row (applied here, or sent
  there and applied), so the shadows hold only edits waiting to travel.

A site syncing with several peers drops a row's base when the row reaches the first of
them; a conflict with another peer that had not seen the edit then has no base.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from sqlalchemy import Connection, Table, delete, insert, select, text

from strongroom.core.db.models import SYNC_BASES, SyncApplying
from strongroom.core.db.sync_bases import APPLYING_SETTING
from strongroom.core.sync.conflicts import row_image
from strongroom.core.sync.idsets import among

_flag = SyncApplying.__table__


@contextmanager
def applying(conn: Connection) -> Iterator[None]:
    """The caller's transaction applies a peer's rows: the triggers keep no base for
    them. The flag row is the transaction's own (others never see it) and is removed
    before it commits; on PostgreSQL a transaction-local setting says the same to the
    UPDATE trigger's WHEN clause, so the trigger is not even fired (core.db.sync_bases).
    On an error nothing is undone here: the caller's transaction rolls back, flag and
    setting with it (a statement now would fail in an aborted transaction and hide the
    error)."""
    holder = uuid.uuid4().hex
    conn.execute(insert(_flag), [{"holder": holder}])
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT set_config(:name, 'on', true)"), {"name": APPLYING_SETTING})
    yield
    if postgres:
        conn.execute(text("SELECT set_config(:name, '', true)"), {"name": APPLYING_SETTING})
    conn.execute(delete(_flag).where(_flag.c.holder == holder))


def meet(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    """What two version vectors have both seen: the element-wise minimum."""
    return {site: m for site in set(a) & set(b) if (m := min(a[site], b[site])) > 0}


def base_image(conn: Connection, table_name: str, row_id: uuid.UUID, local_vv: Mapping[str, int],
               remote_vv: Mapping[str, int]) -> dict | None:
    """The row's base as a conflict image (core.sync.conflicts.row_image), or None when
    no base is kept or the one kept is not the last version both sides have seen."""
    shadow = SYNC_BASES.get(table_name)
    if shadow is None:
        return None
    record = conn.execute(select(shadow).where(shadow.c.id == row_id)).mappings().first()
    if record is None:
        return None
    vv = {site: int(v) for site, v in (record["base_vv"] or {}).items()}
    if {s: v for s, v in vv.items() if v > 0} != meet(local_vv, remote_vv):
        return None
    return row_image(table_name, {k: v for k, v in record.items() if k != "base_vv"})


def with_bases(conn: Connection, table_name: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Which of `ids` have a base kept here."""
    shadow = SYNC_BASES.get(table_name)
    if shadow is None or not ids:
        return []
    # Fetched at once: a result iterated row by row costs a fetch per row.
    return conn.execute(select(shadow.c.id).where(among(conn, shadow.c.id, ids))).scalars().all()


def forget(conn: Connection, table_name: str, ids: Iterable[uuid.UUID]) -> None:
    """Drop the bases of these rows (a peer now holds them)."""
    shadow = SYNC_BASES.get(table_name)
    ids = list(ids)
    if shadow is None or not ids:
        return
    conn.execute(delete(shadow).where(among(conn, shadow.c.id, ids)))


def forget_sent(conn: Connection, table: Table, sent: Mapping[uuid.UUID, int]) -> None:
    """Drop the bases of rows a peer has applied, as sent (`sent`: id -> the
    `sync_version` sent): a row edited here again since keeps the base that edit kept.
    One statement, matched in the database (reading the rows' versions back to compare
    them here cost a round trip and a row object per row)."""
    if not sent:
        return
    shadow = SYNC_BASES.get(table.name)
    if shadow is None:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(text(
            f'DELETE FROM "{shadow.name}" AS s USING "{table.name}" AS t, '
            "unnest(CAST(:ids AS uuid[]), CAST(:versions AS bigint[])) AS x(id, version) "
            "WHERE s.id = x.id AND t.id = x.id AND t.sync_version = x.version"),
            {"ids": list(sent), "versions": list(sent.values())})
        return
    # SQLite stores a UUID as its 32 hex digits.
    pairs = json.dumps([[row_id.hex, version] for row_id, version in sent.items()])
    conn.execute(text(
        f'DELETE FROM "{shadow.name}" WHERE id IN (SELECT t.id FROM json_each(:pairs) AS x '
        f'JOIN "{table.name}" AS t ON t.id = json_extract(x.value, \'$[0]\') '
        "AND t.sync_version = json_extract(x.value, '$[1]'))"),
        {"pairs": pairs})
