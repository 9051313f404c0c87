"""Benchmark: the integrity job and audit chain verification at scale.

    .venv/bin/python bench/integrity.py [--scale 1] [--audit-rows 500000] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
    make bench [SCALE=3]

Runs on a copy (CREATE DATABASE ... TEMPLATE) of the export benchmark's dataset
(bench/export.py, bench/dataset.py: scale 1 = 100k clients, 300k sessions with 1.5 KB
notes, every PHI field under its client's own key), with the audit log grown to
`--audit-rows` chain-valid sealed entries so the verification rate is measured over
more than a second of work. Each phase is a fresh process (its peak RSS its own):

  * audit: the audit chain verified against the newest signed checkpoint, as the
    integrity job does it (target: at least 100,000 rows/s; a naive Python loop did
    about 45,000 on these machines)
  * integrity: the whole integrity job with its default sampled opening of ciphertext
  * integrity full: the same with every encrypted value opened under its row's AAD
    (the nightly run); the restore drill is a job of its own and not part of either
    (target: the full run under 30 s at scale 1)
  * unaudited: the unaudited-changes check comparing two snapshots (a full one, then an
    incremental after 1,000 audited client updates) of the whole dataset.

Writes bench/results/integrity-s<scale>.md/.json and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.backup_vs_pgdump import rss_of  # noqa: E402
from bench.export import OUT, _scale_tag, copy_database, prepare  # noqa: E402
from bench.report import row, summary_table, write_result  # noqa: E402

PY = sys.executable
TARGETS = {"full_run_seconds": 30.0, "audit_rows_per_second": 100_000}
CHANGED = 1_000


def _context(data: Path):
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    return open_context(load_settings(data / "strongroom.toml"))


# --- phases (each run in its own process) ----------------------------------------------

def phase_grow_audit(data: Path, rows: int) -> dict:
    """Append chain-valid sealed entries until the log holds `rows`, and sign a
    checkpoint at the head (the integrity job verifies against the newest one)."""
    from sqlalchemy import func, select
    from bench.dataset import _audit_rows
    from strongroom.core import checkpoints
    from strongroom.core.db.models import AuditLog
    ctx = _context(data)
    with ctx.engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(AuditLog.__table__)).scalar_one()
    added = _audit_rows(ctx.engine, rows - have, ctx.keyring) if rows > have else 0
    checkpoints.take(ctx, actor="bench", reason="bench")
    return {"audit_rows": have + added}


def phase_audit(data: Path) -> dict:
    from strongroom.core import checkpoints
    ctx = _context(data)
    started = time.perf_counter()
    result, _cp = checkpoints.verify_against_newest(ctx)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": result.checked, "ok": result.ok}


def phase_integrity(data: Path, full: bool, checks: str = "") -> dict:
    from sqlalchemy import select
    from strongroom.core.db.models import IntegrityCheck
    from strongroom.core.jobs import integrity
    ctx = _context(data)
    params = {"full": full, **({"checks": checks} if checks else {})}
    started = time.perf_counter()
    try:
        result = integrity.run(ctx, params, lambda *a: None)
    except integrity.IntegrityFailure as failure:
        result = failure.result
    seconds = time.perf_counter() - started
    table = IntegrityCheck.__table__
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(table.c.name, table.c.status, table.c.started_at, table.c.completed_at)
                            .order_by(table.c.completed_at.desc()).limit(len(result["checks"]))).all()
    per_check = {r.name: {"status": r.status, "seconds": round((r.completed_at - r.started_at).total_seconds(), 2)}
                 for r in rows}
    return {"seconds": seconds, "failed": result["failed"], "warnings": result["warnings"], "checks": per_check}


def phase_snapshots(data: Path, target: Path) -> dict:
    """A full snapshot, 1,000 clients updated through the application, an incremental."""
    from sqlalchemy import select
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client
    from strongroom.core.jobs import backup
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository.clients import update_client
    ctx = _context(data)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"target": str(target), "verify_after": False})})
    started = time.perf_counter()
    backup.run(ctx, {"actor": "bench", "full": True}, lambda *a: None)
    full_seconds = time.perf_counter() - started
    table = Client.__table__
    with transaction(ctx.engine) as conn:
        ids = conn.execute(select(table.c.id).order_by(table.c.id).limit(CHANGED)).scalars().all()
        for client_id in ids:
            update_client(conn, ctx.keyring, SYSTEM, client_id, {"phone": "555-0100"})
    backup.run(ctx, {"actor": "bench"}, lambda *a: None)
    return {"full_backup_seconds": full_seconds}


def phase_unaudited(data: Path, target: Path) -> dict:
    from strongroom.core.integrity.unaudited import check_unaudited
    ctx = _context(data)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"target": str(target)})})
    started = time.perf_counter()
    check = check_unaudited(ctx, lambda *a: None)
    seconds = time.perf_counter() - started
    (finding,) = check["evidence"]["findings"].values()
    return {"seconds": seconds, "status": check["status"], "changed": finding.get("changed"),
            "unaudited": finding.get("unaudited")}


# --- the run ---------------------------------------------------------------------------

def _phase(name: str, data: Path, *extra: str) -> tuple[dict, float]:
    out = tempfile.NamedTemporaryFile(delete=False, suffix=".json")
    out.close()
    _seconds, rss = rss_of(f"{PY} {Path(__file__)} --phase {name} --data {data} --out {out.name} " + " ".join(extra))
    result = json.loads(Path(out.name).read_text())
    os.unlink(out.name)
    return result, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--audit-rows", type=int, default=500_000)
    parser.add_argument("--dsn", default=os.environ.get("STRONGROOM_BENCH_DSN",
                                                        "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--no-snapshots", action="store_true", help="skip the unaudited-changes phase")
    parser.add_argument("--phase")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--target", type=Path)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--checks", default="")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.phase:
        result = {"grow": lambda: phase_grow_audit(args.data, args.rows),
                  "audit": lambda: phase_audit(args.data),
                  "integrity": lambda: phase_integrity(args.data, args.full, args.checks),
                  "snapshots": lambda: phase_snapshots(args.data, args.target),
                  "unaudited": lambda: phase_unaudited(args.data, args.target)}[args.phase]()
        args.out.write_text(json.dumps(result))
        return

    data_src, libpq_src, counts = prepare(args.dsn, args.scale)
    tag = _scale_tag(args.scale)
    name = f"sr_bench_integrity_s{tag}"
    source = libpq_src.rsplit("/", 1)[1]
    copy_database(args.dsn, source, name, pause=5)     # another benchmark may be reading the dataset
    work = OUT / f"integrity-s{tag}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    data.mkdir(exist_ok=True)
    config = (data_src / "strongroom.toml").read_text().replace(source, name)
    (data / "strongroom.toml").write_text(config.replace('kek_file = "kek.key"', f'kek_file = "{data_src}/kek.key"'))
    try:
        grown, _ = _phase("grow", data, "--rows", str(args.audit_rows))
        audit_run, rss_audit = _phase("audit", data)
        sampled, rss_sampled = _phase("integrity", data)
        full, rss_full = _phase("integrity", data, "--full")
        unaudited = None
        if not args.no_snapshots:
            target = work / "repo"
            import shutil
            shutil.rmtree(target, ignore_errors=True)
            _phase("snapshots", data, "--target", str(target))
            unaudited, _ = _phase("unaudited", data, "--target", str(target))
            shutil.rmtree(target, ignore_errors=True)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rows = {
        "scale": args.scale, "clients": counts.get("clients"), "sessions": counts.get("sessions"),
        "audit_rows": audit_run["rows"], "audit_seconds": round(audit_run["seconds"], 2),
        "audit_rows_per_second": round(audit_run["rows"] / audit_run["seconds"]),
        "integrity_sampled_seconds": round(sampled["seconds"], 2),
        "integrity_full_seconds": round(full["seconds"], 2),
        "integrity_full_failed": full["failed"], "integrity_full_warnings": full["warnings"],
        "peak_rss_mb": round(max(rss_audit, rss_sampled, rss_full)),
    }
    if unaudited is not None:
        rows.update(unaudited_seconds=round(unaudited["seconds"], 2), unaudited_changed=unaudited["changed"],
                    unaudited_status=unaudited["status"])
    verdict = {
        "full run under 30 s": rows["integrity_full_seconds"] < TARGETS["full_run_seconds"],
        "audit at least 100,000 rows/s": rows["audit_rows_per_second"] >= TARGETS["audit_rows_per_second"],
    }
    summary = [
        row(f"audit chain verify ({rows['audit_rows']:,} rows)", audit_run["seconds"],
            ours=f"{audit_run['seconds']:.2f} s ({rows['audit_rows_per_second']:,} rows/s)",
            target=">= 100,000 rows/s", met=verdict["audit at least 100,000 rows/s"], peak_rss_mb=rss_audit),
        row("integrity run, sampled", sampled["seconds"], peak_rss_mb=rss_sampled),
        row("integrity run, --full", full["seconds"], target="< 30 s", met=verdict["full run under 30 s"],
            peak_rss_mb=rss_full),
    ]
    if unaudited is not None:
        summary.append(row(f"unaudited changes ({unaudited['changed']:,} rows)", unaudited["seconds"]))
    lines = [f"# integrity benchmark, scale {args.scale:g}", "", "| figure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    lines += ["", "| target | met |", "| --- | --- |"] + [f"| {k} | {'pass' if v else 'MISS'} |" for k, v in verdict.items()]
    lines += ["", "Seconds per check (full run):", "", "| check | status | seconds |", "| --- | --- | --- |"]
    lines += [f"| {n} | {c['status']} | {c['seconds']} |" for n, c in sorted(full["checks"].items(),
                                                                          key=lambda kv: -kv[1]["seconds"])]
    lines += ["", *summary_table(summary)]
    body = json.loads(json.dumps({"figures": rows, "targets": verdict, "checks_full": full["checks"],
                                  "audit_rows_grown_to": grown, "counts": counts}, default=str))
    write_result("integrity", args.scale, body, summary, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
