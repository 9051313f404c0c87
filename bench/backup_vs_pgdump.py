"""Benchmark: Strongroom's full backup and restore against pg_dump, on the same database.

    .venv/bin/python bench/backup_vs_pgdump.py [--scale 1] [--repeat 2] [--dsn postgresql://postgres@127.0.0.1:5432/test]

Builds a practice at --scale (bench/dataset.py; 1 = 100k clients, 300k sessions with
1-2 KB notes, 50k audit rows) in a scratch PostgreSQL database, then times whole
processes, interleaved so machine noise hits both alike:
  * Strongroom full backup (encrypted, local target)  vs  pg_dump -Fc  and  pg_dump | zstd -3
  * Strongroom restore into an empty database (proven)  vs  pg_restore -j2
Reports seconds, bytes stored and peak RSS, each as a ratio to its reference.
Targets (issue 5): backup <= 1.2x `pg_dump | zstd -3`; restore <= 1.2x pg_restore -j2;
peak RSS < 300 MB. Writes bench/results/backup_vs_pgdump-s<scale>.json/.md (bench/report.py's
summary rows).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TARGET_RATIO, TARGET_RSS_MB = 1.2, 300.0


def rss_of(cmd, **kw) -> tuple[float, float]:
    """Run under /usr/bin/time-like accounting: a fresh wrapper per command so ru_maxrss
    is this command's own peak, not the largest child ever seen."""
    wrapper = [PY, "-c", "import resource,subprocess,sys,time;"
               "t=time.perf_counter();r=subprocess.run(sys.argv[2],shell=sys.argv[1]=='1');"
               "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
               "sys.exit(r.returncode)", "1", cmd]
    proc = subprocess.run(wrapper, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"failed: {cmd}\n{proc.stdout}\n{proc.stderr}")
    seconds, rss_kib = proc.stdout.split()[-2:]
    return float(seconds), int(rss_kib) / 1024


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_practice(base: str, name: str, data: Path, scale: float) -> str:
    """Initialise a Strongroom data dir on the (existing, empty) database `name` and fill
    it with bench/dataset.py at `scale`; returns the SQLAlchemy URL."""
    url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    subprocess.run([PY, "-m", "strongroom.console.cli", "--data-dir", str(data), "init",
                    "--database-url", url, "--practice-name", "Bench"], check=True, capture_output=True)
    sys.path.insert(0, str(REPO))
    from bench.dataset import generate
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    ctx = open_context(load_settings(data / "strongroom.toml"))
    print(f"dataset at scale {scale}:", generate(url, ctx.keyring, scale))
    ctx.close()
    with psycopg.connect(f"{base}/{name}") as conn:
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(f"database size {size / 1e6:.0f} MB")
    return url


def backup_command(data: Path, repo: Path) -> str:
    """A shell command running one Strongroom backup job (full into an empty `repo`, else
    incremental on its newest snapshot) in a fresh process; prints the result dict, with
    `job_seconds`: the job alone, as the daemon runs it (no interpreter start or imports)."""
    return (f"{PY} -c \"import time;from strongroom.core.config import load_settings;"
            f"from strongroom.core.context import open_context;from strongroom.core.jobs import backup;"
            f"ctx=open_context(load_settings(__import__('pathlib').Path('{data}/strongroom.toml')));"
            f"ctx.settings=ctx.settings.model_copy(update={{'backup': ctx.settings.backup.model_copy(update={{'target': '{repo}'}})}});"
            f"t=time.perf_counter();r=backup.run(ctx, {{}}, lambda *a: None);"
            f"print({{**r, 'job_seconds': time.perf_counter() - t}})\"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    base = args.dsn.rsplit("/", 1)[0]
    name = f"sr_bench_{uuid.uuid4().hex[:8]}"
    scratch: list[str] = [name]

    def admin(sql: str) -> None:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql)

    admin(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="sr-bench-"))
    try:
        data = tmp / "data"
        make_practice(base, name, data, args.scale)

        dump_fc, dump_zst, repo = tmp / "db.dump", tmp / "db.sql.zst", tmp / "repo"
        ours_backup = backup_command(data, repo)
        results: dict[str, list[tuple[float, float]]] = {"ours": [], "fc": [], "zstd": []}
        for i in range(args.repeat):
            shutil.rmtree(repo, ignore_errors=True)
            results["ours"].append(rss_of(ours_backup))
            results["fc"].append(rss_of(f"pg_dump -Fc -f {dump_fc} '{base}/{name}'"))
            results["zstd"].append(rss_of(f"pg_dump '{base}/{name}' | zstd -3 -q -f -o {dump_zst}"))
        med = {k: statistics.median(s for s, _ in v) for k, v in results.items()}
        rss = {k: max(r for _, r in v) for k, v in results.items()}
        sizes = {"ours": size_of(repo / "chunks"), "fc": size_of(dump_fc), "zstd": size_of(dump_zst)}
        print(f"backup   ours {med['ours']:.1f}s {sizes['ours'] / 1e6:.0f} MB rss {rss['ours']:.0f} MiB | "
              f"pg_dump -Fc {med['fc']:.1f}s {sizes['fc'] / 1e6:.0f} MB | pg_dump|zstd -3 {med['zstd']:.1f}s "
              f"{sizes['zstd'] / 1e6:.0f} MB")
        print(f"ratios   time vs pg_dump|zstd {med['ours'] / med['zstd']:.2f}x, vs pg_dump -Fc "
              f"{med['ours'] / med['fc']:.2f}x; bytes vs zstd {sizes['ours'] / sizes['zstd']:.2f}x")

        snapshot = sorted((repo / "snapshots").glob("*.json"))[-1].stem
        restore_times, ref_times, rss_restore = [], [], 0.0
        for i in range(args.repeat):
            ours_db, ref_db = f"sr_bench_r{uuid.uuid4().hex[:6]}", f"sr_bench_p{uuid.uuid4().hex[:6]}"
            scratch += [ours_db, ref_db]
            admin(f'CREATE DATABASE "{ours_db}"')
            admin(f'CREATE DATABASE "{ref_db}"')
            ours_restore = (f"{PY} -c \"import uuid;from strongroom.core.config import load_settings;"
                            f"from strongroom.core.context import open_context;"
                            f"from strongroom.core.backup.repository import open_repository;"
                            f"from strongroom.core.storage import open_target;from strongroom.core import restore;"
                            f"ctx=open_context(load_settings(__import__('pathlib').Path('{data}/strongroom.toml')));"
                            f"repo=open_repository(open_target('{repo}'), ctx.keyring);"
                            f"print(restore.restore(repo, uuid.UUID('{snapshot}'), "
                            f"'{base.replace('postgresql://', 'postgresql+psycopg://')}/{ours_db}'))\"")
            seconds, peak = rss_of(ours_restore)
            restore_times.append(seconds)
            rss_restore = max(rss_restore, peak)
            ref_times.append(rss_of(f"pg_restore -j2 -d '{base}/{ref_db}' {dump_fc}")[0])
        ours_r, ref_r = statistics.median(restore_times), statistics.median(ref_times)
        print(f"restore  ours {ours_r:.1f}s (proven: hashes, counts, audit chain) rss {rss_restore:.0f} MiB | "
              f"pg_restore -j2 {ref_r:.1f}s | ratio {ours_r / ref_r:.2f}x")
        sys.path.insert(0, str(REPO))
        from bench.report import row, write_result
        target = f"<= {TARGET_RATIO:g}x {{}}, RSS < {TARGET_RSS_MB:.0f} MB"
        summary = [
            row("full backup (encrypted)", med["ours"], reference="pg_dump | zstd -3", reference_seconds=med["zstd"],
                target=target.format("pg_dump | zstd -3"),
                met=med["ours"] / med["zstd"] <= TARGET_RATIO and rss["ours"] < TARGET_RSS_MB, peak_rss_mb=rss["ours"]),
            row("full backup (encrypted)", med["ours"], reference="pg_dump -Fc", reference_seconds=med["fc"],
                peak_rss_mb=rss["ours"]),
            row("restore into an empty database (proven)", ours_r, reference="pg_restore -j2", reference_seconds=ref_r,
                target=target.format("pg_restore -j2"),
                met=ours_r / ref_r <= TARGET_RATIO and rss_restore < TARGET_RSS_MB, peak_rss_mb=rss_restore),
        ]
        write_result("backup_vs_pgdump", args.scale, {
            "benchmark": "backup_vs_pgdump", "scale": args.scale, "repeat": args.repeat,
            "backup_seconds": med, "backup_peak_rss_mb": rss, "bytes": sizes,
            "restore_seconds": {"ours": ours_r, "pg_restore_j2": ref_r}, "restore_peak_rss_mb": rss_restore}, summary)
    finally:
        for db in scratch:
            admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
