"""Benchmark: COPY text encoding/decoding speed for therapy_sessions-like rows.

    .venv/bin/python bench/copytext_speed.py [--rows 100000] [--note-min 1024] [--note-max 2048]
                                              [--pg postgresql://postgres@127.0.0.1:5432/postgres]

A fresh migrated SQLite holds --rows therapy_sessions rows with random 1-2 KB bytea notes
(ciphertext-like, so incompressible). Reported, each best of 3:

  * encode (in memory): encode_rows over already-fetched SQLAlchemy Rows -- the cost
    this module adds.
  * select + encode: what the SQLite backup does: select_for_copy streamed with
    yield_per, encode_rows per 5,000-row segment -- includes SQLAlchemy/sqlite3 fetch
    and result processing.
  * + zstd level 3 of each segment, for scale against the compression stage.
  * decode: decode_lines over the whole stream (the SQLite restore's parse).
  * with --pg: the same bytes loaded into a scratch PostgreSQL database by COPY FROM,
    then `COPY (SELECT ...) TO STDOUT` timed -- the native path the SQLite encoder is
    meant to keep up with -- and checked byte-identical.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import zstandard
from sqlalchemy import insert
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from strongroom.core.backup import copytext as ct
from strongroom.core.db.engine import make_engine, normalise_url, transaction
from strongroom.core.db.migrate import upgrade
from strongroom.core.db.models import Client, DataKey, Practice, SessionStatus, TherapySession

SEGMENT = 5000


def _seed(engine, rows: int, note_min: int, note_max: int) -> None:
    rng = random.Random(1)
    practice, key = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    clients = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(max(1, rows // 20))]
    with transaction(engine) as conn:
        conn.execute(insert(Practice.__table__), [{"id": practice, "name": "Bench", "settings": {}}])
        conn.execute(insert(DataKey.__table__), [{"id": key, "purpose": "client", "kek_id": "k"}])
        conn.execute(insert(Client.__table__), [
            {"id": c, "practice_id": practice, "key_id": key, "first_name_enc": os.urandom(40),
             "last_name_enc": os.urandom(40)} for c in clients])
        start = datetime(2025, 1, 6, 9, tzinfo=UTC)
        for base in range(0, rows, 10000):
            conn.execute(insert(TherapySession.__table__), [{
                "id": uuid.UUID(int=rng.getrandbits(128)), "practice_id": practice,
                "client_id": clients[i % len(clients)], "key_id": key, "practitioner_id": None,
                "created_at": now, "updated_at": now + timedelta(microseconds=rng.randrange(10**6)),
                "sync_version": i, "data_checksum": os.urandom(32).hex(), "deleted_at": None,
                "starts_at": start + timedelta(hours=i), "duration_minutes": 50,
                "session_type": "individual", "notes_enc": os.urandom(rng.randint(note_min, note_max)),
                "status": SessionStatus.COMPLETED, "payment_status": "PAID", "price_cents": 15000,
            } for i in range(base, min(rows, base + 10000))])


def _best(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _line(label: str, seconds: float, rows: int, nbytes: int) -> None:
    print(f"{label:<34} {rows / seconds:>10,.0f} rows/s {nbytes / seconds / 2**20:>8,.1f} MiB/s"
          f" ({seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--note-min", type=int, default=1024)
    parser.add_argument("--note-max", type=int, default=2048)
    parser.add_argument("--pg", help="admin DSN; a scratch database is created and dropped")
    args = parser.parse_args()

    table = TherapySession.__table__
    cols = ct.columns(table)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        t0 = time.perf_counter()
        _seed(engine, args.rows, args.note_min, args.note_max)
        print(f"seeded {args.rows:,} therapy_sessions rows in {time.perf_counter() - t0:.1f} s")

        with engine.connect() as conn:
            fetched = conn.execute(ct.select_for_copy(table)).all()
        seconds, data = _best(lambda: ct.encode_rows(cols, fetched))
        _line("encode (in memory)", seconds, len(fetched), len(data))
        fetched.clear()

        def select_encode(compress: bool) -> int:
            total = 0
            cctx = zstandard.ZstdCompressor(level=3)
            with engine.connect() as conn:
                result = conn.execution_options(yield_per=SEGMENT).execute(ct.select_for_copy(table))
                for part in result.partitions():
                    segment = ct.encode_rows(cols, part)
                    total += len(cctx.compress(segment)) if compress else len(segment)
            return total

        seconds, _ = _best(lambda: select_encode(False))
        _line("select + encode (SQLite)", seconds, args.rows, len(data))
        seconds, _ = _best(lambda: select_encode(True))
        _line("select + encode + zstd-3 (SQLite)", seconds, args.rows, len(data))
        seconds, _ = _best(lambda: sum(1 for _ in ct.decode_lines(cols, data)))
        _line("decode", seconds, args.rows, len(data))
        engine.dispose()

    if args.pg:
        _pg(args.pg, table, data)


def _pg(dsn: str, table, data: bytes) -> None:
    import psycopg
    name = f"sr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        sa_url = make_url(normalise_url(dsn)).set(database=name)
        url = sa_url.set(drivername="postgresql").render_as_string(hide_password=False)
        upgrade_engine = make_engine(sa_url.render_as_string(hide_password=False))
        upgrade(upgrade_engine)
        upgrade_engine.dispose()
        with psycopg.connect(url) as conn:
            conn.execute(ct.pg_session_sql())
            conn.execute("SELECT set_config('strongroom.app', 'on', true), set_config('strongroom.scope', 'system', true)")
            conn.execute("SET session_replication_role = replica")  # parents are not loaded here
            with conn.cursor().copy(ct.copy_in_sql(table)) as copy:
                copy.write(data)
        with psycopg.connect(url) as conn:
            conn.execute(ct.pg_session_sql())
            conn.execute("SELECT set_config('strongroom.scope', 'system', true)")

            def copy_out() -> bytes:
                with conn.cursor().copy(ct.copy_out_sql(table)) as copy:
                    return b"".join(bytes(chunk) for chunk in copy)
            seconds, native = _best(copy_out)
        _line("PostgreSQL COPY TO STDOUT", seconds, data.count(b"\n"), len(native))
        print("PostgreSQL bytes identical to SQLite encode:", native == data)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
