"""Proving a restored database: every table's row count and its re-encoded SHA-256 must
equal the manifest's (or, for a table loaded in parts, each part must cut into exactly
its chunks' keyed addresses), and the audit chain must verify and end at the
snapshot's recorded head."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, func, select, text

from strongroom.core import audit
from strongroom.core.backup import copytext
from strongroom.core.errors import IntegrityError
from strongroom.core.restore.load import SQLITE_BATCH

if TYPE_CHECKING:
    from strongroom.core.restore.plan import Plan


def read_in_key_order(conn: Connection) -> None:
    """Plan the proof's read-backs as index scans in key order. A just-loaded table has
    no statistics, and PostgreSQL then picked a parallel sequential scan and a sort that
    spilled to disk (work_mem), twice the time of walking the key index over rows that
    were loaded in key order anyway. Transaction-local."""
    for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        conn.execute(text(f"SET LOCAL {setting} = off"))
    conn.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))

def reencoded_sha(conn: Connection, table) -> tuple[str, int]:
    cols = copytext.columns(table)
    digest = hashlib.sha256()
    rows = 0
    if conn.dialect.name == "postgresql":
        read_in_key_order(conn)
        raw = conn.connection.driver_connection
        buf = bytearray()               # hashed a MiB at a time: a call per row costs more
        with raw.cursor().copy(copytext.copy_out_sql(table)) as copy:
            for block in copy:              # one row per CopyData message (protocol docs)
                buf += block
                rows += 1
                if len(buf) >= 1 << 20:
                    digest.update(buf)
                    buf.clear()
        digest.update(buf)
        return digest.hexdigest(), rows
    result = conn.execute(copytext.select_for_copy(table))
    while batch := result.fetchmany(SQLITE_BATCH):
        data = copytext.encode_rows(cols, batch)
        digest.update(data)
        rows += len(batch)
    return digest.hexdigest(), rows

def prove_table(conn: Connection, plan: Plan, name: str, proven_rows: int | None = None) -> None:
    """The restored table re-encodes to the snapshot's bytes (whole-copied tables) and
    holds the row count the snapshot recorded. `proven_rows`: the table was loaded and
    proven in parts (`prove_part`), which read back this many rows."""
    entry = next((e for e in plan.manifest.tables if e.name == name), None)
    if entry is None:
        return
    table = plan.by_name[name]
    if proven_rows is not None:
        if proven_rows != entry.row_count or (entry.live_rows is not None and proven_rows != entry.live_rows):
            raise IntegrityError(f"restored table {entry.name} has {proven_rows} rows, the snapshot "
                                 f"recorded {entry.row_count}")
        return
    if entry.mode == "full":
        sha, rows = reencoded_sha(conn, table)
        if rows != entry.row_count or sha != entry.sha256:
            raise IntegrityError(f"restored table {entry.name} differs from the snapshot "
                                 f"({rows} rows vs {entry.row_count}; hash "
                                 f"{'equal' if sha == entry.sha256 else 'differs'})")
    if entry.live_rows is not None:
        rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
        if rows != entry.live_rows:
            raise IntegrityError(f"restored table {entry.name} has {rows} rows, the snapshot "
                                 f"recorded {entry.live_rows}")

def prove_part(conn: Connection, plan: Plan, name: str, part: int, parts: int) -> int:
    """Part of a table loaded in parts, read back in key order, must cut into exactly its
    chunks: each run of bytes the size of a chunk hashing to that chunk's sealed address
    (the manifest, HMAC'd, lists them in order), nothing left over. The parts' key ranges
    cover every key, so together they prove the whole table, and each part is proven on
    its own connection as soon as it is loaded. Returns the rows read back."""
    table = plan.by_name[name]
    refs = plan.part_chunks(name, part, parts)
    sql = copytext.copy_out_sql(table, key_range=plan.key_range(name, part, parts))
    position, need, mac = 0, refs[0].size, plan.repo.address_hasher()
    buf, rows = bytearray(), 0

    def mismatch(why: str) -> IntegrityError:
        return IntegrityError(f"restored table {name} differs from the snapshot in part {part + 1} of "
                              f"{parts}, chunk {position + 1} of {len(refs)}: {why}")

    def consume() -> None:
        nonlocal position, need, mac
        while buf:
            if position == len(refs):
                raise mismatch("rows past the snapshot's last chunk")
            take = min(len(buf), need)
            with memoryview(buf) as view:
                mac.update(view[:take])
            del buf[:take]
            need -= take
            if need == 0:
                if mac.hexdigest() != refs[position].address:
                    raise mismatch("its rows do not hash to the chunk's address")
                position += 1
                need = refs[position].size if position < len(refs) else 0
                mac = plan.repo.address_hasher()

    read_in_key_order(conn)
    raw = conn.connection.driver_connection
    with raw.cursor().copy(sql) as copy:
        for block in copy:              # one row per CopyData message (protocol docs)
            buf += block
            rows += 1
            if len(buf) >= 1 << 20:
                consume()
    consume()
    if position != len(refs):
        raise mismatch("rows missing")
    return rows

def prove_chain(engine: Engine, plan: Plan) -> audit.VerifyResult:
    chain_check = audit.verify(engine)
    if not chain_check.ok:
        raise IntegrityError(f"restored audit chain is broken at entry {chain_check.broken_id}: {chain_check.reason}")
    if chain_check.head_hash != plan.manifest.audit.hash:
        raise IntegrityError("restored audit chain does not end at the snapshot's recorded head")
    return chain_check
