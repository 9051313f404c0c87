"""Benchmark: inserting clients with every PHI field encrypted, against the same insert
through the same repository path without encryption (issue 3's target: encrypted at
least 0.5x the unencrypted rate on SQLite).

    .venv/bin/python bench/encrypted_insert.py [--scale 1] [--rows 100000] [--pg DSN] [--repeat 3]

Each run gets a fresh database (a new SQLite file; a new PostgreSQL database with --pg).
The unencrypted path stores the same plaintext bytes in the same columns with one
shared placeholder key, no per-client keys and no blind indexes: exactly the work
encryption adds is what the ratio measures. --rows defaults to 100,000 x --scale.
Writes bench/results/encrypted_insert-s<scale>.json/.md (bench/report.py's summary rows).
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.report import row, write_result  # noqa: E402

from strongroom.core.crypto.kek import Kek, generate_kek
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.migrate import upgrade
from strongroom.core.demo import client_records
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import ClientInput, insert_clients
from strongroom.core.repository.practices import create_practice


def _fresh_db(pg: str | None, workdir: Path) -> tuple[str, callable]:
    if pg is None:
        path = workdir / f"{uuid.uuid4().hex}.db"
        return f"sqlite:///{path}", lambda: None
    name = f"sr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    base = pg.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", drop


def one_run(rows: int, encrypt: bool, pg: str | None, workdir: Path, items: list[ClientInput]) -> float:
    url, drop = _fresh_db(pg, workdir)
    try:
        engine = make_engine(url)
        upgrade(engine)
        keyring = Keyring([Kek(generate_kek(), "bench")])
        with transaction(engine) as conn:
            practice = create_practice(conn, SYSTEM, "Bench Practice")
        start = time.perf_counter()
        with transaction(engine) as conn:
            n = insert_clients(conn, keyring, SYSTEM, practice, items, encrypt=encrypt)
        elapsed = time.perf_counter() - start
        assert n == rows
        engine.dispose()
        return rows / elapsed
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rows", type=int, help="clients inserted per run (default 100,000 x --scale)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", help="also run on this PostgreSQL server (libpq DSN)")
    args = parser.parse_args()
    if args.rows is None:
        args.rows = max(1, int(100_000 * args.scale))
    summary, figures = [], {}
    # Validation is part of both paths; build the inputs once so neither pays generation.
    items = [ClientInput.model_validate(r) for r in client_records(args.rows)]
    engines = [("sqlite", None)] + ([("postgresql", args.pg)] if args.pg else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, pg in engines:
            plain, sealed = [], []
            for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
                plain.append(one_run(args.rows, False, pg, Path(tmp), items))
                sealed.append(one_run(args.rows, True, pg, Path(tmp), items))
            p, s = statistics.median(plain), statistics.median(sealed)
            print(f"{label:<10} rows={args.rows}  unencrypted {p:,.0f} rows/s  encrypted {s:,.0f} rows/s  "
                  f"ratio {s / p:.2f}x  (runs: {[round(x) for x in plain]} vs {[round(x) for x in sealed]})")
            sys.stdout.flush()
            figures[label] = {"rows": args.rows, "unencrypted_rows_per_second": round(p),
                              "encrypted_rows_per_second": round(s), "ratio": round(s / p, 3)}
            # Issue 3's target is on SQLite: encrypted at least 0.5x the unencrypted rate,
            # i.e. at most 2x its time; PostgreSQL is reported without a target.
            summary.append(row(f"insert {args.rows} clients encrypted ({label})", args.rows / s,
                               reference="same insert unencrypted", reference_seconds=args.rows / p,
                               target="<= 2x unencrypted (rate >= 0.5x)" if label == "sqlite" else None,
                               met=(s / p >= 0.5) if label == "sqlite" else None,
                               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    write_result("encrypted_insert", args.scale, {"benchmark": "encrypted_insert", "scale": args.scale,
                                                  "repeat": args.repeat, "figures": figures}, summary)


if __name__ == "__main__":
    main()
