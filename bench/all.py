"""Run every benchmark in bench/ in one go and write one table: `make bench [SCALE=3]`.

    .venv/bin/python bench/all.py [--scale 1] [--only export,sync,... [--merge]] [--quick]
                                  [--results-dir bench/results] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

Builds the shared dataset once for the scale (bench/export.py's prepare: the database
sr_bench_export_s<scale> and its data directory under bench/out/, reused by later runs
and by sync and integrity), then runs each benchmark as its own process, one after the
other, each against its reference tool in the same run:

  export              export job and `clients list --reveal`  vs  psql \\copy
  backup_vs_pgdump    full backup vs pg_dump -Fc and pg_dump | zstd -3; restore vs pg_restore -j2
  backup_incremental  incremental backup vs restic (installed with apt-get when run as
                      root and missing; otherwise reported skipped)
  encrypted_insert    encrypted insert vs the same insert unencrypted
  control_latency     control round trips (short: --requests 500, no soak; see CONTROL_ARGS)
  sync                satellite push/pull vs psql \\copy of the same rows
  integrity           audit chain and integrity run (absolute targets)
  files               file add/get vs cp (--size-mib 256)
  console_startup     console launch and audit paging (1M audit rows x scale)
  reconcile           duplicate-client matching: precision, recall, time (100k clients x scale)

Each benchmark writes bench/results/<name>-s<scale>.json with a `summary` list
(bench/report.py). This script then writes bench/results/latest.md and latest.json: per
task the reference figure, ours, the ratio, the target, pass or miss, peak RSS, and which
benchmarks were skipped (and why) or failed (with the tail of their stderr in the json).
It exits 1 when a benchmark failed (or ran past --timeout), after writing the table.

--quick is a smoke run (scale 0.01, one repeat, a few hundred requests): it proves the
pipeline, not the figures. --results-dir writes every result there instead of bench/results.
A script in bench/ that is not in the list above shows as skipped in the table, with why
(copytext_speed.py is run by hand).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.report import result_path, summary_table, write_atomic  # noqa: E402

PY = sys.executable
QUICK_SCALE = 0.01
STDERR_TAIL = 4000
CONTROL_ARGS = ["--requests", "500", "--clients", "2000", "--soak-seconds", "0", "--concurrent-seconds", "5"]


def plan(scale: float, quick: bool, dsn: str) -> dict[str, list[str]]:
    """name -> the arguments of bench/<name>.py, in the order they run."""
    repeat = ["--repeat", "1" if quick else "2"]
    return {
        "export": ["--scale", f"{scale:g}", "--dsn", dsn] + repeat,
        "backup_vs_pgdump": ["--scale", f"{scale:g}", "--dsn", dsn] + repeat,
        "backup_incremental": ["--scale", f"{scale:g}", "--dsn", dsn] + repeat,
        "encrypted_insert": ["--scale", f"{scale:g}", "--pg", dsn] + (
            ["--rows", "300", "--repeat", "1"] if quick else ["--repeat", "3"]),
        "control_latency": ["--scale", f"{scale:g}"] + (
            ["--requests", "100", "--clients", "100", "--soak-seconds", "0", "--concurrent-seconds", "1"]
            if quick else CONTROL_ARGS),
        "sync": ["--scale", f"{scale:g}", "--dsn", dsn],
        "integrity": ["--scale", f"{scale:g}", "--dsn", dsn] + (["--audit-rows", "2000"] if quick else []),
        "files": ["--scale", f"{scale:g}", "--size-mib", "4" if quick else "256"],
        "console_startup": ["--scale", f"{scale:g}"] + (
            # the console's paging target is stated over 1M audit rows (issue 18)
            ["--rows", "2000", "--pages", "2", "--launches", "1"] if quick
            else ["--rows", str(max(20_000, int(1_000_000 * scale)))]),
        "reconcile": ["--scale", f"{scale:g}"],
    }


NOT_BENCHMARKS = {"all", "report", "dataset"}  # this runner, the contract, the dataset builder
BY_HAND = {"copytext_speed": "a micro-benchmark of the COPY text encoder alone, run by hand"}


def unplanned(planned: dict, folder: Path = REPO / "bench") -> dict[str, str]:
    """bench/*.py scripts this runner does not run, each with why (so a new benchmark
    shows in the table until it is added to plan())."""
    out = {}
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if name in planned or name in NOT_BENCHMARKS or name.startswith("_"):
            continue
        out[name] = BY_HAND.get(name, "not in bench/all.py's plan yet (add it with its summary rows)")
    return out


def restic_missing() -> str | None:
    """None when restic is there (bench/backup_incremental.py installs it with apt-get
    when root and missing), else why it is not."""
    from bench.backup_incremental import ensure_restic
    try:
        ensure_restic()
    except SystemExit as exc:
        return str(exc)
    except subprocess.CalledProcessError as exc:
        return f"apt-get install restic failed (exit {exc.returncode})"
    return None


def run_one(name: str, args: list[str], scale: float, env: dict, timeout: float) -> dict:
    """Run bench/<name>.py as its own process; its summary rows, or why it failed."""
    out = result_path(name, scale)
    out.unlink(missing_ok=True)  # a stale file from an earlier run must not pass for this one
    started = time.monotonic()
    # Its own session, so a timeout stops it and what it started (a daemon, pg_dump) together.
    # Its stdout goes straight to ours (progress as it runs); stderr is kept for the json.
    sys.stdout.flush()
    proc = subprocess.Popen([PY, str(REPO / "bench" / f"{name}.py"), *args], cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stderr = ""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                _, stderr = proc.communicate(timeout=30)
                break
            except ProcessLookupError:
                _, stderr = proc.communicate()
                break
            except subprocess.TimeoutExpired:
                continue
        return {"name": name, "argv": args, "seconds": round(time.monotonic() - started, 1), "returncode": None,
                "status": "failed", "stderr_tail": f"timed out after {timeout:g} s\n" + (stderr or "")[-STDERR_TAIL:]}
    seconds = round(time.monotonic() - started, 1)
    if proc.returncode != 0:
        sys.stdout.write(stderr[-STDERR_TAIL:])
    entry = {"name": name, "argv": args, "seconds": seconds, "returncode": proc.returncode}
    if proc.returncode != 0:
        return {**entry, "status": "failed", "stderr_tail": stderr[-STDERR_TAIL:]}
    try:
        summary = json.loads(out.read_text())["summary"]
    except (OSError, ValueError, KeyError) as exc:
        return {**entry, "status": "failed", "stderr_tail": f"no summary in {out.name}: {exc}\n"
                + stderr[-STDERR_TAIL:]}
    return {**entry, "status": "ok", "result_file": out.name, "summary": summary}


def write_latest(results_dir: Path, scale: float, quick: bool, runs: list[dict], skipped: dict[str, str]) -> None:
    rows = [{"benchmark": r["name"], **row} for r in runs if r["status"] == "ok" for row in r["summary"]]
    failed = [r for r in runs if r["status"] == "failed"]
    meta = {"scale": scale, "quick": quick, "host": platform.node(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    body = {**meta, "rows": rows,
            "benchmarks": [{k: v for k, v in r.items() if k != "summary"} for r in runs],
            "skipped": [{"name": n, "reason": why} for n, why in skipped.items()],
            "failed": [r["name"] for r in failed]}
    met = [r["met"] for r in rows]
    lines = [f"# make bench at scale {scale:g}{' (--quick smoke run)' if quick else ''}", "",
             f"{meta['when']}, {meta['cpus']} CPUs, Python {meta['python']}. Each benchmark ran as its own "
             f"process; ratio = ours / reference. {met.count(True)} pass, {met.count(False)} miss, "
             f"{len(failed)} failed, {len(skipped)} skipped.", ""]
    lines += summary_table(rows, with_benchmark=True)
    for r in failed:
        why = "timed out" if r["returncode"] is None else f"exit {r['returncode']}"
        lines.append(f"| {r['name']} | failed ({why}; stderr tail in latest.json) "
                     "| - | - | - | - | - | failed | - |")
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | - | - | - | - | - | skipped | - |")
    lines += ["", "Benchmark run times: " + ", ".join(f"{r['name']} {r['seconds']:g} s" for r in runs)]
    rerun = [f"{r['name']} at {r['rerun']}" for r in runs if r.get("rerun")]
    if rerun:
        lines += ["", "Re-run and merged into the earlier table (`--only ... --merge`): "
                  + ", ".join(rerun) + "; the other rows are the earlier run's."]
    write_atomic(results_dir / "latest.json", json.dumps(body, indent=2) + "\n")
    write_atomic(results_dir / "latest.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {results_dir / 'latest.md'} and latest.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="dataset scale (1 = 100k clients, 300k sessions)")
    parser.add_argument("--only", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: scale {QUICK_SCALE:g}, tiny counts")
    parser.add_argument("--merge", action="store_true",
                        help="with --only: keep the other benchmarks' rows of the existing latest.json (same "
                        "scale) and replace only those re-run, so one benchmark can be measured again "
                        "after a fix without re-running the hour")
    parser.add_argument("--results-dir", type=Path, help="where results go (default bench/results)")
    parser.add_argument("--timeout", type=float, help="seconds one benchmark may take before it is stopped and "
                        "reported failed (default 7200, 600 with --quick)")
    parser.add_argument("--dsn", default=os.environ.get("STRONGROOM_BENCH_PG_DSN",
                                                        "postgresql://postgres@127.0.0.1:5432/postgres"),
                        help="PostgreSQL admin DSN the benchmarks create their databases with")
    args = parser.parse_args()
    if args.scale <= 0:
        parser.error("--scale must be greater than 0")
    if args.merge and (not args.only or args.quick):
        parser.error("--merge re-runs some benchmarks of a full table: give --only, without --quick")
    scale = QUICK_SCALE if args.quick else args.scale
    benches = plan(scale, args.quick, args.dsn)
    names = list(benches)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(benches))
        if unknown or not names:
            parser.error(f"--only: unknown benchmark name(s) {', '.join(unknown)}; known: {', '.join(benches)}")
    results_dir = (args.results_dir or REPO / "bench" / "results").resolve()
    results_dir.mkdir(parents=True, exist_ok=True)
    os.environ["STRONGROOM_BENCH_RESULTS"] = str(results_dir)  # bench/report.py's folder, here and in children
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    runs: list[dict] = []
    skipped: dict[str, str] = {} if args.only else unplanned(benches)
    if {"export", "sync", "integrity"} & set(names):
        # The dataset they share, built once here (a no-op when it exists for this scale).
        started = time.monotonic()
        prep = subprocess.run([PY, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from bench.export import "
                               "prepare; prepare(sys.argv[2], float(sys.argv[3]))", str(REPO), args.dsn, f"{scale:g}"],
                              cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        if prep.returncode != 0:
            runs.append({"name": "dataset", "argv": [], "seconds": round(time.monotonic() - started, 1),
                         "returncode": prep.returncode, "status": "failed", "stderr_tail": prep.stderr[-STDERR_TAIL:]})
            for name in {"export", "sync", "integrity"} & set(names):
                skipped[name] = "the dataset could not be built (see dataset in latest.json)"
    for name in names:
        if name in skipped:
            continue
        if name == "backup_incremental":
            why = restic_missing()
            if why:
                skipped[name] = why
                continue
        print(f"== bench/{name}.py {' '.join(benches[name])}", flush=True)
        runs.append(run_one(name, benches[name], scale, env, args.timeout or (600 if args.quick else 7200)))
    failed = any(r["status"] == "failed" for r in runs)
    if args.merge:
        runs = merged(results_dir / "latest.json", scale, runs, list(benches))
        skipped = {**unplanned(benches), **skipped}
    write_latest(results_dir, scale, args.quick, runs, skipped)
    return 1 if failed else 0


def merged(latest: Path, scale: float, runs: list[dict], order: list[str]) -> list[dict]:
    """`runs` in place of the same benchmarks' entries of an earlier full table at this
    scale; the others kept with their rows, in the plan's order. Each re-run entry says
    so (`rerun`: when), and the table's date is the latest re-run's."""
    try:
        earlier = json.loads(latest.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--merge: cannot read {latest}: {exc}") from None
    if earlier.get("scale") != scale or earlier.get("quick"):
        raise SystemExit(f"--merge: {latest} is of scale {earlier.get('scale')}{' (quick)' if earlier.get('quick') else ''}, "
                         f"not {scale:g}")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    fresh = {r["name"]: {**r, "rerun": when} for r in runs}
    kept = {}
    for entry in earlier.get("benchmarks", []):
        if entry["name"] in fresh:
            continue
        rows = [{k: v for k, v in row.items() if k != "benchmark"}
                for row in earlier.get("rows", []) if row.get("benchmark") == entry["name"]]
        kept[entry["name"]] = {**entry, "summary": rows}
    both = {**kept, **fresh}
    return [both[name] for name in order if name in both] + [r for n, r in both.items() if n not in order]


if __name__ == "__main__":
    sys.exit(main())
