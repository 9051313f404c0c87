"""Are two sites the same? Compare them by ranges of primary keys, descending only into
ranges that differ.

Each side is read once as a stream of (id, data_checksum) (the checksum covers every
column but the site's own change counter, so two sites holding the same version of a
row hold the same checksum). Rows fall into buckets by the first bytes of their id,
and each bucket gets an order-independent digest (the sum of per-row hashes), so the
two streams need not arrive in the same order. Only buckets whose digests differ are
read again, row by row, on both sides, to name the rows that differ: the cost beyond the
first read grows with the differences, not with the table. Nothing is decrypted.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine, select

from strongroom.core.db.engine import transaction
from strongroom.core.sync.tables import by_name, synced

BUCKET_BITS = 12
MAX_NAMED = 50
_MOD = 1 << 128


def _row_hash(row_id: uuid.UUID, checksum: str | None) -> int:
    """The row's checksum is already a SHA-256 over every column, its id included: its
    first 128 bits serve as they are. A row without one hashes its id (and is reported
    by the integrity job's checksum check)."""
    if checksum is not None and len(checksum) == 64:
        try:
            return int(checksum[:32], 16)
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(row_id.bytes + (checksum or "~").encode(), digest_size=16).digest(), "big")


def digests(engine: Engine, table_name: str) -> tuple[dict[int, int], int]:
    """Per bucket, the digest of its rows; and the row count."""
    table = by_name(table_name).table
    buckets: dict[int, int] = {}
    count = 0
    with transaction(engine, read_only=True) as conn:
        result = conn.execution_options(stream_results=True, yield_per=10_000).execute(
            select(table.c.id, table.c.data_checksum))
        shift = 128 - BUCKET_BITS
        for row_id, checksum in result:
            b = row_id.int >> shift
            buckets[b] = buckets.get(b, 0) + _row_hash(row_id, checksum)
            count += 1
    return {b: v % _MOD for b, v in buckets.items()}, count


def _rows_in(engine: Engine, table_name: str, buckets: Iterable[int]) -> dict[uuid.UUID, str | None]:
    table = by_name(table_name).table
    out: dict[uuid.UUID, str | None] = {}
    shift = 128 - BUCKET_BITS
    with transaction(engine, read_only=True) as conn:
        for b in sorted(buckets):
            low, high = uuid.UUID(int=b << shift), uuid.UUID(int=((b + 1) << shift) - 1)
            for row_id, checksum in conn.execute(select(table.c.id, table.c.data_checksum)
                                                 .where(table.c.id >= low, table.c.id <= high)):
                out[row_id] = checksum
    return out


def compare_table(local: Engine, remote: Engine, table_name: str) -> dict:
    # Both sides read at once: the two databases (often on two machines) work in parallel.
    with ThreadPoolExecutor(2, thread_name_prefix="sync-check") as pool:
        here, there = pool.submit(digests, local, table_name), pool.submit(digests, remote, table_name)
        (mine, my_count), (theirs, their_count) = here.result(), there.result()
    differing = sorted(b for b in set(mine) | set(theirs) if mine.get(b) != theirs.get(b))
    result = {"table": table_name, "rows_here": my_count, "rows_there": their_count,
              "ranges": 1 << BUCKET_BITS, "ranges_differing": len(differing),
              "missing_here": 0, "missing_there": 0, "differing": 0, "examples": []}
    if not differing:
        return result
    here, there = _rows_in(local, table_name, differing), _rows_in(remote, table_name, differing)
    for row_id in sorted(set(here) | set(there)):
        if row_id not in here:
            kind = "missing_here"
        elif row_id not in there:
            kind = "missing_there"
        elif here[row_id] != there[row_id]:
            kind = "differing"
        else:
            continue
        result[kind] += 1
        if len(result["examples"]) < MAX_NAMED:
            result["examples"].append({"row_id": str(row_id), "problem": kind})
    return result


def compare(local: Engine, remote: Engine) -> dict:
    """Every synced table of two sites compared; `consistent` when no row differs."""
    tables = [compare_table(local, remote, spec.name) for spec in synced()]
    consistent = all(t["missing_here"] == t["missing_there"] == t["differing"] == 0 for t in tables)
    return {"consistent": consistent, "tables": tables}


def check_peer(ctx, name: str) -> dict:
    """The consistency check of this site and peer `name` (reached as a pass reaches it).
    Differences are expected while changes wait to be sent or conflicts wait for a person;
    the report says how many rows differ, never what they hold."""
    from strongroom.core.sync import peers as peer_store
    with transaction(ctx.engine, read_only=True) as conn:
        peer = peer_store.get_peer(conn, name)
    from strongroom.core.jobs.sync import _peer_engine
    remote, _keyring = _peer_engine(ctx, peer["url"])
    report = compare(ctx.engine, remote)
    return {"peer": name, **report}
