"""Benchmark: duplicate-client matching (issue 20 part 5), precision, recall and time.

    .venv/bin/python bench/reconcile.py [--scale 1 | --clients 100000] [--rate 0.05] [--dir DIR]

Builds a data directory (SQLite) with one practice of N clients from
core/reconcile/planted.py (about `rate` x N planted duplicates: a name typo, swapped
first and last names, another phone, the email in other case; plus family members who
share a surname and phone), every PHI field encrypted with its client's own key as
usual. Then runs the reconcile job's matching for the practice exactly as the job does
(bulk decrypting read, blocking, scoring, pairs stored) and reports precision and
recall against the planted truth, and the time. Targets: precision >= 0.95 at recall
>= 0.9; under 60 s at 100k clients. Writes reconcile-<N>.json and .md, and the summary
rows bench/all.py gathers (reconcile-s<scale>.json), in the results folder
(bench/report.py: bench/results, or bench/all.py --results-dir).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="clients = 100,000 x scale (unless --clients)")
    parser.add_argument("--clients", type=int, help="the number of clients (default: from --scale)")
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    args = parser.parse_args()
    if args.clients is None:
        args.clients = max(100, round(100_000 * args.scale))

    from sqlalchemy import select

    from strongroom.core.datadir import init_data_dir, open_data_dir
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Practice
    from strongroom.core.jobs.reconcile import reconcile_practice
    from strongroom.core.principal import SYSTEM
    from strongroom.core.reconcile import planted
    from strongroom.core.reconcile.repository import list_pairs
    from strongroom.core.repository.clients import insert_clients

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sr-bench-reconcile-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data = work / "data"
        init_data_dir(data, practice_name="Bench Practice", principal=SYSTEM)
        ctx = open_data_dir(data)
        records, truth = planted.generate(args.clients, args.rate)
        ids: list[uuid.UUID] = []
        start = time.perf_counter()
        with transaction(ctx.engine) as conn:
            practice = conn.execute(select(Practice.__table__.c.id)).scalar_one()
            insert_clients(conn, ctx.keyring, SYSTEM, practice, records, created=ids)
        load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = reconcile_practice(ctx, practice)
        seconds = time.perf_counter() - start
        with transaction(ctx.engine, read_only=True) as conn:
            pairs, more = list_pairs(conn, SYSTEM, practice_id=practice, status="open", limit=10_000)
            if more:
                raise SystemExit("more than 10000 pairs: raise the bench's limit")
        ctx.close()
        found = {frozenset((uuid.UUID(p["client_a"]), uuid.UUID(p["client_b"]))) for p in pairs}
        expected = {frozenset((ids[a], ids[b])) for a, b in truth}
        precision, recall = planted.precision_recall(found, expected)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    report = {"clients": args.clients, "planted_duplicates": len(expected), "pairs_found": len(found),
              "precision": round(precision, 4), "recall": round(recall, 4), "seconds": round(seconds, 2),
              "read_decrypt_seconds": result["read_seconds"], "compared_pairs": result["compared"],
              "blocks": result["blocks"], "oversized_blocks": result["oversized_blocks"],
              "load_seconds": round(load_seconds, 1), "engine": "sqlite", "python": platform.python_version(),
              "cpus": os.cpu_count(),
              "targets": {"precision": 0.95, "recall": 0.9, "seconds_at_100k": 60},
              "pass": precision >= 0.95 and recall >= 0.9 and (args.clients < 100_000 or seconds < 60)}
    from bench.report import results_dir, row, write_result
    results = results_dir()
    _write(results / f"reconcile-{args.clients}.json", json.dumps(report, indent=2) + "\n")
    _write(results / f"reconcile-{args.clients}.md", "\n".join([
        f"# reconcile: {args.clients} clients, {len(expected)} planted duplicates (SQLite, {os.cpu_count()} CPUs)", "",
        "| measure | value | target |", "|---|---|---|",
        f"| precision | {precision:.4f} | >= 0.95 |", f"| recall | {recall:.4f} | >= 0.9 |",
        f"| matching time (read+decrypt, block, score, store) | {seconds:.1f} s | < 60 s at 100k |",
        f"| of which read and decrypt | {result['read_seconds']} s | |",
        f"| pairs compared (blocking) | {result['compared']} | far below n(n-1)/2 |", ""]))
    time_target = 60 * args.clients / 100_000
    summary = [row(f"reconcile {args.clients:,} clients: matching", seconds,
                   target=f"< {time_target:g} s (60 s per 100k)", met=seconds < time_target),
               row("reconcile: precision", None, ours=f"{precision:.4f}", target=">= 0.95", met=precision >= 0.95),
               row("reconcile: recall", None, ours=f"{recall:.4f}", target=">= 0.9", met=recall >= 0.9)]
    write_result("reconcile", args.scale, {"benchmark": "reconcile", **report}, summary)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
