"""Are two sites the same? Compare them by ranges of primary keys, descending only into
ranges that differ.

Ids are UUIDv7, time-ordered: their first bits are a timestamp, so ranges cut at fixed
points of the id space would put a whole practice in one range. The ranges are instead
cut where this site's ids fall, every n-th id in order (at most RANGES of them), and the
other site uses the same cut points. Each range gets an order-independent digest (the
sum of its rows' checksums, each already a SHA-256 over every column, id included, but
the site's own change counter), computed by PostgreSQL itself or from SQLite's stored
text. Only ranges whose digests differ are read again, row by row, on both sides, by
their id range (an index range scan), to name the rows that differ: the cost beyond the
first read grows with the differences, not with the table. Nothing is decrypted.
"""
from __future__ import annotations

import hashlib
import re
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat

from sqlalchemy import Engine, select, text

from strongroom.core.db.engine import transaction
from strongroom.core.sync.tables import by_name, synced

RANGES = 4096
MAX_NAMED = 50
_MOD = 1 << 128
_HEX = frozenset("0123456789abcdef")


def _row_hash(row_id: uuid.UUID, checksum: str | None) -> int:
    """The row's checksum serves as it is: its first 120 bits. A row without one (or with
    a malformed one) hashes its id (the integrity job's checksum check reports it)."""
    if checksum is not None and len(checksum) == 64 and not set(checksum) - _HEX:
        return int(checksum[:30], 16)
    return int.from_bytes(hashlib.blake2b(row_id.bytes + (checksum or "~").encode(), digest_size=15).digest(), "big")


_HEX_LINES = re.compile(r"[0-9a-f]{64}(?:\n[0-9a-f]{64})*")


def _all_hex(rows: list) -> bool:
    """Whether every row's checksum is 64 lowercase hex digits, checked in one regular
    expression over the chunk (a set per row cost about a third of SQLite's side)."""
    try:
        return _HEX_LINES.fullmatch("\n".join([checksum for _id, checksum in rows])) is not None
    except TypeError:                   # a missing checksum
        return False


def cut_points(engine: Engine, table_name: str) -> list[uuid.UUID]:
    """Ids splitting this site's rows of the table into at most RANGES ranges of about
    equal size: range i holds ids from cut i-1 (included) to cut i (excluded)."""
    with transaction(engine, read_only=True) as conn:
        count = conn.execute(text(f'SELECT count(*) FROM "{table_name}"')).scalar() or 0
        step = max(1, -(-count // RANGES))
        if conn.dialect.name == "postgresql":
            return list(conn.execute(text(
                f'SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM "{table_name}") AS o '
                f"WHERE n % :step = 1 AND n > 1 ORDER BY id"), {"step": step}).scalars().all())
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.execute(f'SELECT id FROM "{table_name}" ORDER BY id')
            cuts, n = [], 0
            while rows := cursor.fetchmany(10_000):
                for (row_id,) in rows:
                    if n and n % step == 0:
                        cuts.append(uuid.UUID(hex=row_id))
                    n += 1
            return cuts
        finally:
            cursor.close()


def digests(engine: Engine, table_name: str, cuts: list[uuid.UUID]) -> tuple[dict[int, int], int]:
    """Per range (0 .. len(cuts)), the digest of its rows; and the row count. PostgreSQL
    groups each range itself (_pg_digests); SQLite's rows are read as stored text, with
    no UUID or row object made per row."""
    with transaction(engine, read_only=True) as conn:
        if conn.dialect.name == "postgresql":
            return _pg_digests(conn, table_name, cuts)
        return _sqlite_digests(conn, table_name, cuts)


def _sqlite_digests(conn, table_name: str, cuts: list[uuid.UUID]) -> tuple[dict[int, int], int]:
    """In id order, from the (id, data_checksum) index alone (migration 0019: a table scan
    read every session's notes to reach its checksum). In order, a fetched chunk splits
    into runs of one range each, found by bisection at the runs' ends, and a run's
    checksums are summed in one call instead of a bucket lookup per row."""
    bounds = [c.hex for c in cuts]                  # SQLite stores a UUID as 32 hex digits
    buckets: dict[int, int] = {}
    count = 0
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(f'SELECT id, data_checksum FROM "{table_name}" ORDER BY id')
        while rows := cursor.fetchmany(10_000):
            count += len(rows)
            if not _all_hex(rows):      # rare: a missing or malformed checksum, row by row
                for row_id, checksum in rows:
                    b = bisect_right(bounds, row_id)
                    buckets[b] = buckets.get(b, 0) + _row_hash(uuid.UUID(hex=row_id), checksum)
                continue
            ids = [row_id for row_id, _checksum in rows]
            prefixes = [checksum[:30] for _id, checksum in rows]
            start, end_of_chunk = 0, len(rows)
            while start < end_of_chunk:
                b = bisect_right(bounds, ids[start])
                end = bisect_left(ids, bounds[b], start) if b < len(bounds) else end_of_chunk
                buckets[b] = buckets.get(b, 0) + sum(map(int, prefixes[start:end], repeat(16)))
                start = end
    finally:
        cursor.close()
    return {b: v % _MOD for b, v in buckets.items()}, count


def _pg_digests(conn, table_name: str, cuts: list[uuid.UUID]) -> tuple[dict[int, int], int]:
    """PostgreSQL groups the rows by range (width_bucket over the cut points) and sends
    each range's checksum prefixes as one string; Python sums them. Casting hex to
    numbers in SQL, or checking it with a regular expression, cost 5-10 µs a row there;
    this costs about 2. One scan of the table: the rows whose checksum is missing or not
    64 characters come in the same groups, as (id, checksum) arrays, and are hashed here
    (a second query for them scanned the whole table again: about 40% of the check's
    time on PostgreSQL). A range holding a checksum that is not hex is summed row by row."""
    table = by_name(table_name).table
    buckets: dict[int, int] = {}
    count = 0
    odd: list[int] = []
    for b, prefixes, n, odd_ids, odd_sums in conn.execute(text(
            "SELECT width_bucket(id, CAST(:cuts AS uuid[])), "
            "string_agg(substr(data_checksum, 1, 30), '') FILTER (WHERE length(data_checksum) = 64), "
            "count(*), "
            "array_agg(id) FILTER (WHERE data_checksum IS NULL OR length(data_checksum) <> 64), "
            "array_agg(data_checksum) FILTER (WHERE data_checksum IS NULL OR length(data_checksum) <> 64) "
            f'FROM "{table_name}" GROUP BY 1'), {"cuts": cuts}):
        count += n
        value = 0
        if prefixes:
            try:
                value = sum(int(prefixes[i:i + 30], 16) for i in range(0, len(prefixes), 30))
            except ValueError:
                odd.append(b)
        for row_id, checksum in zip(odd_ids or (), odd_sums or ()):
            value += _row_hash(row_id, checksum)
        buckets[b] = value
    for b in odd:
        buckets[b] = 0
        for row_id, checksum in conn.execute(_range_query(table, b, cuts)):
            buckets[b] += _row_hash(row_id, checksum)
    return {b: v % _MOD for b, v in buckets.items()}, count


def _range_query(table, b: int, cuts: list[uuid.UUID]):
    """(id, data_checksum) of range `b`: an index range scan."""
    query = select(table.c.id, table.c.data_checksum)
    if b > 0:
        query = query.where(table.c.id >= cuts[b - 1])
    if b < len(cuts):
        query = query.where(table.c.id < cuts[b])
    return query


def _rows_in(engine: Engine, table_name: str, buckets: Iterable[int],
             cuts: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    table = by_name(table_name).table
    out: dict[uuid.UUID, str | None] = {}
    with transaction(engine, read_only=True) as conn:
        for b in sorted(buckets):
            for row_id, checksum in conn.execute(_range_query(table, b, cuts)):
                out[row_id] = checksum
    return out


def compare_table(local: Engine, remote: Engine, table_name: str) -> dict:
    cuts = cut_points(local, table_name)
    # Both sides read at once: the two databases (often on two machines) work in parallel.
    with ThreadPoolExecutor(2, thread_name_prefix="sync-check") as pool:
        here, there = pool.submit(digests, local, table_name, cuts), pool.submit(digests, remote, table_name, cuts)
        (mine, my_count), (theirs, their_count) = here.result(), there.result()
    differing = sorted(b for b in set(mine) | set(theirs) if mine.get(b) != theirs.get(b))
    result = {"table": table_name, "rows_here": my_count, "rows_there": their_count,
              "ranges": len(cuts) + 1, "ranges_differing": len(differing),
              "missing_here": 0, "missing_there": 0, "differing": 0, "examples": []}
    if not differing:
        return result
    here, there = _rows_in(local, table_name, differing, cuts), _rows_in(remote, table_name, differing, cuts)
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
