"""Benchmark: bulk reads (exports and `clients list --reveal`) against `psql \\copy` of
the same table, on the same PostgreSQL database, in the same run.

    .venv/bin/python bench/export.py [--scale 1] [--repeat 2] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
    make bench [SCALE=3]

The dataset (bench/dataset.py: scale 1 = 100k clients, 300k sessions with 1.5 KB notes,
every PHI field encrypted with its client's own key) is built once per scale into the
database `sr_bench_export_s<scale>` with its data directory (config and KEK) under
bench/out/; later runs reuse both. Each task is a whole fresh process, ours and the
reference paired A B A B so machine noise hits both alike:

  * export job, CSV and NDJSON, clients and therapy_sessions, masked and full
      vs  psql -c "\\copy <table> TO file CSV HEADER"
  * strongroom clients list --all --reveal --json     vs  psql \\copy clients

Targets (issue 14): therapy_sessions at most 2x the reference, clients at most 3x, peak
RSS under 200 MB (and flat from scale 1 to 3). Writes bench/results/export-s<scale>.md
and .json: per task seconds (median), rows/s, the reference's seconds, the ratio, the
target, pass or miss, peak RSS, and the `summary` rows (bench/report.py) that
bench/all.py gathers into bench/results/latest.md/.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.backup_vs_pgdump import rss_of  # noqa: E402  (one way to time a process and its peak RSS)
from bench.report import results_dir, row, scale_tag, write_atomic  # noqa: E402

PY = sys.executable
OUT = REPO / "bench" / "out"
RESULTS = results_dir()  # bench/results, or $STRONGROOM_BENCH_RESULTS (bench/all.py --results-dir)
TARGET_RATIO = {"therapy_sessions": 2.0, "clients": 3.0}
TARGET_RSS_MB = 200.0


@dataclass
class Task:
    name: str
    table: str
    rows: int
    seconds: float
    reference_seconds: float
    peak_rss_mb: float
    job_seconds: float | None = None
    output_sha256: str = ""      # of the data written (same database, same output: comparable across trees)

    @property
    def ratio(self) -> float:
        return self.seconds / self.reference_seconds

    @property
    def target(self) -> float:
        return TARGET_RATIO[self.table]

    @property
    def passed(self) -> bool:
        return self.ratio <= self.target and self.peak_rss_mb < TARGET_RSS_MB

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": round(self.rows / self.seconds), "ratio": round(self.ratio, 2),
                "target_ratio": self.target, "target_rss_mb": TARGET_RSS_MB,
                "result": "pass" if self.passed else "miss"}


# --- the dataset, built once per scale ------------------------------------------------

_scale_tag = scale_tag  # the name sync.py and integrity.py import


def prepare(dsn: str, scale: float) -> tuple[Path, str, dict]:
    """The data directory and libpq URL of the dataset at `scale`, built if missing;
    returns them with the row counts."""
    base = dsn.rsplit("/", 1)[0]
    name = f"sr_bench_export_s{_scale_tag(scale)}"
    data = OUT / f"export-s{_scale_tag(scale)}"
    marker = data / "bench-dataset.json"
    libpq = f"{base}/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and marker.exists():
            _upgrade(libpq)   # the schema may have moved on since the dataset was built
            return data, libpq, json.loads(marker.read_text())
        # A half-built dataset (interrupted run) is started again from nothing.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    shutil.rmtree(data, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"building the dataset at scale {scale:g} into {name} (once; later runs reuse it)")
    url = libpq.replace("postgresql://", "postgresql+psycopg://")
    subprocess.run([PY, "-m", "strongroom.console.cli", "--data-dir", str(data), "init",
                    "--database-url", url, "--practice-name", "Bench"], check=True, capture_output=True)
    from bench.dataset import generate
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    ctx = open_context(load_settings(data / "strongroom.toml"))
    try:
        counts = generate(url, ctx.keyring, scale)
    finally:
        ctx.close()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        counts["database_mb"] = round(conn.execute(
            "SELECT pg_database_size(current_database())").fetchone()[0] / 1e6)
    counts["build_seconds"] = round(time.monotonic() - started)
    marker.write_text(json.dumps(counts))
    return data, libpq, counts


def copy_database(dsn: str, source: str, target: str, pause: float = 1.0) -> None:
    """`target` made anew as a copy (CREATE DATABASE ... TEMPLATE) of `source`, such as
    the dataset `prepare` builds. A template must have no session open: another
    benchmark may be reading it, or a phase's server process may still be ending after
    its client exited; the copy is tried again 120 times, `pause` seconds apart."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        for attempt in range(120):
            try:
                conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
                return
            except psycopg.errors.ObjectInUse:
                if attempt == 119:
                    raise
                time.sleep(pause)


def _upgrade(libpq: str) -> None:
    from strongroom.core.db.engine import make_engine
    from strongroom.core.db.migrate import upgrade
    engine = make_engine(libpq)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


# --- the commands timed ---------------------------------------------------------------

def export_command(data: Path, target: Path, table: str, fmt: str, masking: str) -> str:
    """One export job in a fresh process, as the daemon runs it (actor system); prints the
    result with `job_seconds`, the job alone without interpreter start and imports. Like
    every Strongroom entry point (strongroomd, the CLI: core.bulk.skip_final_collection)
    the process leaves its heap to the kernel at exit instead of walking it once more
    (0.3 s of an export process here)."""
    params = {"actor": "system", "tables": [table], "format": fmt, "masking": masking}
    return (f"{PY} -c \"import time,pathlib;from strongroom.core.config import load_settings;"
            f"from strongroom.core.bulk import skip_final_collection;skip_final_collection();"
            f"from strongroom.core.context import open_context;from strongroom.core.jobs import export;"
            f"ctx=open_context(load_settings(pathlib.Path('{data}/strongroom.toml')));"
            f"ctx.settings=ctx.settings.model_copy(update={{'export': ctx.settings.export.model_copy("
            f"update={{'directory': pathlib.Path('{target}'), 'max_per_hour': 10000}})}});"
            f"t=time.perf_counter();r=export.run(ctx, {params!r}, lambda *a: None);"
            f"print(__import__('json').dumps({{'rows': r['row_count'], 'job_seconds': time.perf_counter() - t}}))\"")


def reveal_command(data: Path, target: Path, limit: int | None = None) -> str:
    """`clients list --all --reveal --json`; with `limit`, one page of that size instead (for
    a tree older than --all)."""
    which = "--all" if limit is None else f"--limit {limit}"
    return (f"{PY} -m strongroom.console.cli --data-dir {data} clients list {which} --reveal --json "
            f"> {target / 'clients.json'}")


def copy_command(libpq: str, table: str, target: Path) -> str:
    return f"psql -X -q '{libpq}' -c \"\\copy {table} TO '{target / (table + '.csv')}' CSV HEADER\""


def run_task(name: str, table: str, ours: str, reference: str, repeat: int, scratch: Path,
             expect_rows: int) -> Task:
    mine, theirs, rss, jobs, digests = [], [], [], [], set()
    for _ in range(repeat):
        for which in ("ours", "reference"):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
            wrapper_out = _run(ours if which == "ours" else reference)
            seconds, peak, stdout = wrapper_out
            if which == "ours":
                mine.append(seconds)
                rss.append(peak)
                job = _job_seconds(stdout, expect_rows, name)
                if job is not None:
                    jobs.append(job)
                digests.add(_digest(scratch))
            else:
                theirs.append(seconds)
    shutil.rmtree(scratch, ignore_errors=True)
    task = Task(name, table, expect_rows, round(statistics.median(mine), 2), round(statistics.median(theirs), 2),
                round(max(rss), 1), round(statistics.median(jobs), 2) if jobs else None,
                ",".join(sorted(digests)))
    print(f"  {name:<40} {task.seconds:7.2f}s  ref {task.reference_seconds:6.2f}s  {task.ratio:5.2f}x "
          f"(target {task.target:g}x)  {task.rows / task.seconds:9,.0f} rows/s  rss {task.peak_rss_mb:5.0f} MB  "
          f"{'pass' if task.passed else 'MISS'}", flush=True)
    return task


def _run(cmd: str) -> tuple[float, float, str]:
    """rss_of, keeping the command's own output (the export's row count and job time)."""
    capture = Path(tempfile.mktemp(prefix="sr-bench-out-"))
    try:
        seconds, peak = rss_of(f"{cmd} > {capture}" if "> " not in cmd else cmd)
        return seconds, peak, capture.read_text() if capture.exists() else ""
    finally:
        capture.unlink(missing_ok=True)


def _digest(scratch: Path) -> str:
    """SHA-256 over the data files a run wrote (not its manifest, which names the run)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in scratch.rglob("*") if p.is_file() and p.name != "manifest.json"):
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()[:16]


def _job_seconds(stdout: str, expect_rows: int, name: str) -> float | None:
    if not stdout.strip():
        return None
    result = json.loads(stdout.strip().splitlines()[-1])
    if result["rows"] != expect_rows:
        raise SystemExit(f"{name}: exported {result['rows']} rows, expected {expect_rows}")
    return result["job_seconds"]


# --- the report -----------------------------------------------------------------------

def write_results(tasks: list[Task], scale: float, counts: dict, repeat: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": "export", "scale": scale, "dataset": counts, "repeat": repeat,
            "host": platform.node(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    summary = [row(t.name, t.seconds, reference=f"psql \\copy {t.table}", reference_seconds=t.reference_seconds,
                   target=f"<= {t.target:g}x psql \\copy, RSS < {TARGET_RSS_MB:.0f} MB", met=t.passed,
                   peak_rss_mb=t.peak_rss_mb) for t in tasks]
    body = json.dumps({**meta, "tasks": [t.as_dict() for t in tasks], "summary": summary}, indent=2) + "\n"
    lines = [f"# make bench: bulk reads at scale {scale:g}", "",
             f"{counts['clients']:,} clients, {counts['sessions']:,} sessions (1.5 KB notes), "
             f"{counts.get('database_mb', '?')} MB in PostgreSQL; median of {repeat} paired runs, whole processes; "
             f"reference: psql \\copy of the same table to CSV. {meta['when']}, {meta['cpus']} CPUs.", "",
             "| task | seconds | rows/s | psql \\copy s | ratio | target | peak RSS MB | result |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for t in tasks:
        lines.append(f"| {t.name} | {t.seconds:.2f} | {t.rows / t.seconds:,.0f} | {t.reference_seconds:.2f} | "
                     f"{t.ratio:.2f}x | <= {t.target:g}x | {t.peak_rss_mb:.0f} (< {TARGET_RSS_MB:.0f}) | "
                     f"{'pass' if t.passed else 'miss'} |")
    # export-s<scale>.* is the newest run at that scale, so scale 1 and scale 3 (is peak
    # RSS flat?) sit side by side; bench/all.py writes latest.* from its summary.
    stem = f"export-s{_scale_tag(scale)}"
    write_atomic(RESULTS / f"{stem}.json", body)
    write_atomic(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    print(f"wrote {RESULTS / stem}.md and .json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dsn", default=os.environ.get("STRONGROOM_BENCH_PG_DSN",
                                                        "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--only", help="run only the tasks whose name contains this")
    parser.add_argument("--reveal-limit", type=int,
                        help="time `clients list --limit N` instead of --all (for trees without --all)")
    args = parser.parse_args()
    data, libpq, counts = prepare(args.dsn, args.scale)
    rows = {"clients": counts["clients"], "therapy_sessions": counts["sessions"]}
    scratch = Path(tempfile.mkdtemp(prefix="sr-bench-export-"))
    plan = [(f"export {table} {fmt} {masking}", table, export_command(data, scratch, table, fmt, masking))
            for table in ("clients", "therapy_sessions") for fmt in ("csv", "ndjson") for masking in ("masked", "full")]
    if args.reveal_limit:
        rows["clients list"] = args.reveal_limit
        plan.append((f"clients list --limit {args.reveal_limit} --reveal --json", "clients",
                     reveal_command(data, scratch, args.reveal_limit)))
    else:
        plan.append(("clients list --all --reveal --json", "clients", reveal_command(data, scratch)))
    tasks = []
    try:
        for name, table, ours in plan:
            if args.only and args.only not in name:
                continue
            expect = rows["clients list"] if name.startswith("clients list") and "clients list" in rows else rows[table]
            tasks.append(run_task(name, table, ours, copy_command(libpq, table, scratch), args.repeat,
                                  scratch, expect))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_results(tasks, args.scale, counts, args.repeat)


if __name__ == "__main__":
    main()
