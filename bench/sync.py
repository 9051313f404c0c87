"""Benchmark: sync between a PostgreSQL site and a SQLite site that joined it.

    .venv/bin/python bench/sync.py [--scale 1] [--dsn postgresql://postgres@127.0.0.1:5432/postgres]
    make bench [SCALE=3]

The central site is a copy (CREATE DATABASE ... TEMPLATE) of the export benchmark's
dataset (bench/export.py, bench/dataset.py: scale 1 = 100k clients, 300k sessions with
1.5 KB notes), so every run starts from the same data; the satellite is a SQLite site
made the way `strongroom init --join` makes one. Each phase is a fresh process (its
peak RSS is its own; a pass's includes its reader child's, core/sync/reader.py, added):

  * initial: the satellite's first pass, every client and session pulled (PG -> SQLite)
  * noop: a pass with no changes, the median of five over kept connections as the daemon
    runs them (target: under 100 ms, flat from scale 1 to 3)
  * check: the consistency check of the two identical sites (target: under 2 s at scale 1)
  * changes: 100k rows changed on each side (central: sessions, by a bypass write the
    PostgreSQL trigger versions and checksums, then vacuumed; satellite: clients, as
    the application writes them), then one pass (target: at least 10,000 rows/s each way, each
    direction timed on its own), compared with psql \\copy of the same number of rows
    of the same table. The pass is made three times from the same changed state (both
    sites copied before the first); the figures are the median run's, and every run's
    rows per second are listed (runs of the same code here vary by about 10%)
  * peak RSS of every phase under 300 MB, flat from scale 1 to 3.
  * the changes pass's applying thread, per direction: its seconds applying batches, of
    them its own CPU (the rest is waiting on the receiving database), and its seconds
    waiting for the next batch to be read (core.sync.passes.Timing)
  * the machine's speed at Python (a bare loop's nanoseconds an iteration): figures are
    comparable only between runs at a similar speed
  * the changes pass's CPU, in all and per direction: its own process's, the reader
    child's and the machine's busy time, how many cores that kept busy, and the rows
    per second the pass would reach with every core it can use busy (the rows over the
    machine's CPU time per core; at most three cores: the pass's three processes). When
    that is under the target, overlapping more cannot reach it: only less CPU per row.

Writes bench/results/sync-s<scale>.md/.json and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.backup_vs_pgdump import rss_of  # noqa: E402
from bench.export import OUT, _scale_tag, copy_database, prepare  # noqa: E402
from bench.report import row as summary_row, summary_table, write_result  # noqa: E402

PY = sys.executable
CHANGED = 100_000
REPEATS = 3          # changes passes, from the same changed state: the median run is reported
TARGETS = {"noop_seconds": 0.1, "check_seconds": 2.0, "rows_per_second": 10_000, "rss_mb": 300.0}


# --- phases (each run in its own process) ----------------------------------------------

def _sides(data: Path, sat: Path):
    from strongroom.core import audit
    from strongroom.core.config import load_settings
    from strongroom.core.crypto.kek import load_keks
    from strongroom.core.crypto.keyring import Keyring
    from strongroom.core.db.engine import make_engine
    from strongroom.core.sync.passes import Side
    settings = load_settings(data / "strongroom.toml")
    keks = load_keks(settings.keys)
    central = make_engine(settings.database.url)
    satellite = make_engine(f"sqlite:///{sat}")
    sides = []
    for engine in (satellite, central):
        keyring = Keyring(keks)
        audit.seal_with(engine, keyring)
        sides.append(Side(engine, keyring))
    return sides


def _peer_id(side):
    from sqlalchemy import select
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import SyncPeer
    with transaction(side.engine, read_only=True) as conn:
        return conn.execute(select(SyncPeer.__table__.c.id).where(SyncPeer.__table__.c.name == "central")).scalar_one()


def phase_join(data: Path, sat: Path, central_url: str) -> dict:
    from strongroom.core.db.engine import make_engine, transaction
    from strongroom.core.db.migrate import upgrade
    from strongroom.core.sync.join import join
    engine = make_engine(f"sqlite:///{sat}")
    upgrade(engine)
    local, _remote = _sides(data, sat)
    with transaction(local.engine) as conn:
        local.keyring.signing_key(conn)
        join(conn, local.keyring, peer_name="central", peer_url=central_url)
    return {}


class _ChildPeaks:
    """The largest peak RSS (VmHWM) of the pass's reader children (core.sync.reader)
    while it runs, sampled every 50 ms from /proc, because the kernel's RUSAGE_CHILDREN
    figure counts the parent's memory a child was forked with. Only those children are
    read: their pids are noted as ProcessReader starts them. Scanning every process in
    /proc for children instead took about a tenth of the pass's own process's samples
    (py-spy), on the interpreter lock the pass needs, and slowed what it measured."""

    def __init__(self) -> None:
        import threading

        from strongroom.core.sync import reader
        self.peak_kb = 0
        self._pids: list[int] = []
        started = reader.ProcessReader.__init__
        pids = self._pids

        def noted(this, *args, **kwargs) -> None:
            started(this, *args, **kwargs)
            pids.append(this.process.pid)
        reader.ProcessReader.__init__ = noted
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for pid in list(self._pids):
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
                except (OSError, IndexError, ValueError):
                    self._pids.remove(pid)      # gone (its peak was read while it ran)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


def phase_pass(data: Path, sat: Path, repeat: int = 1) -> dict:
    """One pass (or `repeat` passes over the same connections, as a daemon syncing on a
    schedule makes them: the figure is then the median of all but the first)."""
    import statistics
    from strongroom.core.sync.passes import PassOptions, run_pass
    from strongroom.core.sync.settings import SyncTableSettings
    local, remote = _sides(data, sat)
    peer = _peer_id(local)
    watcher = _ChildPeaks()
    times = []
    cpu_before = _cpu()
    for _ in range(repeat):
        started = time.perf_counter()
        timings: dict = {}
        # The CPU counters as each direction starts (the pass says "push: keys", then
        # "pull: keys"), and as the pass ends: each direction's share of the CPU. The
        # reader child of a direction is reaped before the next one starts.
        marks: list[tuple[str, dict]] = []

        def mark(message: str) -> None:
            if message.endswith(": keys"):
                marks.append((message.split(":")[0], _cpu()))
        # The batch a sync job makes by default (the table settings' default), so the
        # figures are what a site that configured nothing gets.
        result = run_pass(local, remote, peer, PassOptions(batch_size=SyncTableSettings().batch_size,
                                                           timings=timings), progress=mark)
        marks.append(("end", _cpu()))
        times.append(time.perf_counter() - started)
    seconds = statistics.median(times[1:]) if repeat > 1 else times[0]
    moved = {d: sum(c.get("applied", 0) for t, c in result[d].items() if t != "data_keys") for d in ("push", "pull")}
    cpu = {k: round(v - cpu_before[k], 2) for k, v in _cpu().items()}
    reader_kb = watcher.stop()
    return {"seconds": seconds, "pushed": moved["push"], "pulled": moved["pull"], "reader_rss_mb": reader_kb / 1024,
            "push_seconds": result["seconds"].get("push"), "pull_seconds": result["seconds"].get("pull"),
            "cpu": cpu, "wall": sum(times),
            "direction_cpu": {d: {k: round(after[k] - before[k], 2) for k in before}
                              for (d, before), (_, after) in zip(marks, marks[1:])},
            "timings": {d: {k: round(v, 2) for k, v in t.__dict__.items()} for d, t in timings.items()}}


# A pass runs in three processes at most (this one, its reader child, the database
# server): more cores than that cannot all be kept busy by it.
_PASS_CORES = min(os.cpu_count() or 1, 3)


def _all_cores_busy(rows: int, machine_seconds: float | None) -> int | None:
    """The rows per second a pass would reach with every core it can use busy: the rows
    over the machine's CPU seconds per core (None when no CPU was measured)."""
    return round(rows / (machine_seconds / _PASS_CORES)) if machine_seconds else None


def _cpu() -> dict[str, float]:
    """CPU seconds so far: this process's, its reaped children's (the reader, which
    ProcessReader.close waits for) and the whole machine's busy time (/proc/stat: the
    database server's share is what the other two leave). A pass is bounded by the
    machine's cores once its processes keep them busy: these say how close it is."""
    import resource
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(ticks[:3]) + sum(ticks[5:7])          # user, nice, system, irq, softirq: not idle, iowait, steal
    return {"pass": own.ru_utime + own.ru_stime, "reader": children.ru_utime + children.ru_stime,
            "machine": busy / os.sysconf("SC_CLK_TCK")}


def _loop_ns() -> float:
    """Nanoseconds per iteration of a bare Python loop in a function, the best of three:
    how fast this machine runs Python right now. Most of a pass's CPU is Python, and the
    machines these figures come from have differed by half or more at it (the same code
    pushed 5,555 rows/s on one and 7,992 on another), so a figure is comparable only
    with one measured at a similar speed."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(2_000_000):
            pass
        best = min(best, time.perf_counter() - started)
    return best / 2_000_000 * 1e9


def phase_check(data: Path, sat: Path) -> dict:
    from strongroom.core.sync.consistency import compare
    local, remote = _sides(data, sat)
    started = time.perf_counter()
    report = compare(local.engine, remote.engine)
    return {"seconds": time.perf_counter() - started, "consistent": report["consistent"]}


def phase_change(data: Path, sat: Path, libpq: str) -> dict:
    """100k sessions changed on the central site (bypassing Strongroom: the trigger
    versions and checksums them) and 100k clients on the satellite (as the application
    writes: new version, new checksum)."""
    from sqlalchemy import select, update
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client
    from strongroom.core.repository.changes import next_change_version, row_checksum
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("UPDATE therapy_sessions SET duration_minutes = duration_minutes + 1 "
                     "WHERE id IN (SELECT id FROM therapy_sessions ORDER BY id LIMIT %s)", (CHANGED,))
        # The update leaves 100k dead row versions: autovacuum would start on them at
        # some point of the timed pass and the figure would measure it too (passes over
        # the same data varied by 15% until this was done here).
        conn.execute("VACUUM ANALYZE therapy_sessions, sync_base_therapy_sessions")
    local, _remote = _sides(data, sat)
    table = Client.__table__
    with transaction(local.engine) as conn:
        version = next_change_version(conn)
        rows = conn.execute(select(table).order_by(table.c.id).limit(CHANGED)).mappings().all()
        updates = []
        for row in rows:
            new = dict(row)
            new["status"] = "VIP" if row["status"] != "VIP" else "ACTIVE"
            new["sync_version"] = version
            updates.append({"b_id": row["id"], "status": new["status"], "sync_version": version,
                            "data_checksum": row_checksum(new)})
        from sqlalchemy import bindparam
        conn.execute(update(table).where(table.c.id == bindparam("b_id")), updates)
    return {"clients": len(rows)}


# --- the run ---------------------------------------------------------------------------

def _phase(name: str, data: Path, sat: Path, *extra: str) -> tuple[dict, float]:
    """The phase's result and its peak RSS: the phase process's own plus, for a pass, its
    reader child's (the sum of the two peaks, which need not have coincided: an upper
    bound on what the pass held at once)."""
    cmd = f"{PY} {Path(__file__)} --phase {name} --data {data} --sat {sat} " + " ".join(extra)
    out = tempfile.NamedTemporaryFile(delete=False, suffix=".json")
    out.close()
    _seconds, rss = rss_of(f"{cmd} --out {out.name}")
    result = json.loads(Path(out.name).read_text())
    return result, rss + result.get("reader_rss_mb", 0)


def _copy_seconds(libpq: str, table: str, rows: int) -> float:
    target = Path(tempfile.mkdtemp()) / "copy.csv"
    query = f"(SELECT * FROM {table} ORDER BY id LIMIT {rows})"
    started = time.perf_counter()
    subprocess.run(["psql", libpq, "-q", "-c", f"\\copy {query} TO '{target}' CSV HEADER"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--dsn", default=os.environ.get("STRONGROOM_BENCH_DSN",
                                                        "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--phase")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--sat", type=Path)
    parser.add_argument("--central")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep", action="store_true",
                        help="keep the central database and the satellite (to profile a phase by hand)")
    args = parser.parse_args()
    if args.phase:
        result = {"join": lambda: phase_join(args.data, args.sat, args.central),
                  "pass": lambda: phase_pass(args.data, args.sat),
                  "noop": lambda: phase_pass(args.data, args.sat, repeat=6),
                  "check": lambda: phase_check(args.data, args.sat),
                  "change": lambda: phase_change(args.data, args.sat, args.central)}[args.phase]()
        args.out.write_text(json.dumps(result))
        return

    data_src, libpq_src, counts = prepare(args.dsn, args.scale)
    tag = _scale_tag(args.scale)
    name = f"sr_bench_sync_s{tag}"
    base = args.dsn.rsplit("/", 1)[0]
    copy_database(args.dsn, libpq_src.rsplit("/", 1)[1], name)
    libpq = f"{base}/{name}"
    work = OUT / f"sync-s{tag}"
    work.mkdir(parents=True, exist_ok=True)
    data = work / "central"
    data.mkdir(exist_ok=True)
    config = (data_src / "strongroom.toml").read_text().replace(libpq_src.rsplit("/", 1)[1], name)
    (data / "strongroom.toml").write_text(config.replace('kek_file = "kek.key"', f'kek_file = "{data_src}/kek.key"'))
    sat = work / "satellite.db"
    for path in work.glob("satellite.db*"):
        path.unlink()
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("UPDATE sync_site SET id = gen_random_uuid()::text")   # a copy is another site

    rows = {}
    _phase("join", data, sat, "--central", libpq.replace("postgresql://", "postgresql+psycopg://"))
    initial, rss_initial = _phase("pass", data, sat)
    _phase("pass", data, sat)            # what the first pass received is not sent back: settled here
    noop, rss_noop = _phase("noop", data, sat)
    check, rss_check = _phase("check", data, sat)
    _phase("change", data, sat, "--central", libpq)
    # The changes pass, REPEATS times from the same changed state (the central database
    # copied as a template, the satellite's file copied): this machine's runs of the same
    # code vary by about 10%, and one run said little about a change of a few percent.
    # The figures are the median run's (by the sum of both directions' seconds).
    changed = f"{name}_changed"
    copy_database(args.dsn, name, changed)
    shutil.copyfile(sat, work / "satellite.changed")
    runs = []
    for attempt in range(REPEATS):
        if attempt:
            copy_database(args.dsn, changed, name)
            for path in work.glob("satellite.db*"):
                path.unlink()
            shutil.copyfile(work / "satellite.changed", sat)
        runs.append(_phase("pass", data, sat))
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{changed}" WITH (FORCE)')
    (work / "satellite.changed").unlink()
    runs.sort(key=lambda run: run[0]["push_seconds"] + run[0]["pull_seconds"])
    changes, rss_changes = runs[len(runs) // 2]
    rss_changes = max(rss for _run, rss in runs)
    copy_sessions = _copy_seconds(libpq, "therapy_sessions", CHANGED)
    copy_clients = _copy_seconds(libpq, "clients", CHANGED)
    rows = {
        "scale": args.scale, "clients": counts.get("clients"), "sessions": counts.get("sessions"),
        "python_loop_ns": round(_loop_ns(), 1),
        "initial_rows": initial["pulled"], "initial_seconds": round(initial["seconds"], 2),
        "initial_rows_per_second": round(initial["pulled"] / initial["seconds"]),
        "noop_seconds": round(noop["seconds"], 4), "check_seconds": round(check["seconds"], 3),
        "check_consistent": check["consistent"],
        "changed_pushed": changes["pushed"], "changed_pulled": changes["pulled"],
        "changes_seconds": round(changes["seconds"], 2),
        "changes_runs": len(runs),
        "pushed_rows_per_second_runs": sorted(round(r["pushed"] / r["push_seconds"]) for r, _ in runs),
        "pulled_rows_per_second_runs": sorted(round(r["pulled"] / r["pull_seconds"]) for r, _ in runs),
        "push_seconds": changes["push_seconds"], "pull_seconds": changes["pull_seconds"],
        "pushed_rows_per_second": round(changes["pushed"] / changes["push_seconds"]),
        "pulled_rows_per_second": round(changes["pulled"] / changes["pull_seconds"]),
        "rows_per_second_both_ways": round((changes["pushed"] + changes["pulled"]) / changes["seconds"]),
        "copy_seconds_sessions": round(copy_sessions, 2), "copy_seconds_clients": round(copy_clients, 2),
        "ratio_to_copy": round(changes["seconds"] / (copy_sessions + copy_clients), 1),
        "peak_rss_mb": round(max(rss_initial, rss_noop, rss_check, rss_changes)),
        # Where the changes pass's CPU went, and what it allows: with every core kept
        # busy, the pass could not take less than the machine's busy time over its cores.
        "changes_cpu_seconds_pass_process": changes["cpu"]["pass"],
        "changes_cpu_seconds_reader_child": changes["cpu"]["reader"],
        "changes_cpu_seconds_machine": changes["cpu"]["machine"],
        "changes_cores_busy": round(changes["cpu"]["machine"] / changes["wall"], 2),
        "changes_rows_per_second_all_cores_busy": _all_cores_busy(changes["pushed"] + changes["pulled"],
                                                                  changes["cpu"]["machine"]),
    }
    # Each direction's CPU in the median run: this process's, its reader child's and the
    # machine's (the rest of which is mostly the database server's), and the rows per
    # second that CPU allows with every core busy: under the target, overlapping more
    # cannot reach it in that direction, only less CPU per row.
    for direction, moved in (("push", changes["pushed"]), ("pull", changes["pulled"])):
        cpu = changes["direction_cpu"].get(direction, {})
        rows[f"changes_{direction}_cpu_seconds_pass_process"] = cpu.get("pass")
        rows[f"changes_{direction}_cpu_seconds_reader_child"] = cpu.get("reader")
        rows[f"changes_{direction}_cpu_seconds_machine"] = cpu.get("machine")
        rows[f"changes_{direction}_rows_per_second_all_cores_busy"] = _all_cores_busy(moved, cpu.get("machine"))
    # The median run's applying thread, per direction (passes.Timing): applying batches
    # (wall, and its own CPU: the rest waits on the receiving database) and waiting for
    # the next batch to be read (by the reader child, mostly).
    for direction in ("push", "pull"):
        timing = changes["timings"].get(direction, {})
        for name in ("apply_seconds", "apply_cpu_seconds", "read_wait_seconds"):
            rows[f"changes_{direction}_{name}"] = timing.get(name)
    verdict = {
        "noop under 100 ms": rows["noop_seconds"] < TARGETS["noop_seconds"],
        "check under 2 s": rows["check_seconds"] < TARGETS["check_seconds"],
        "10k rows/s each way": min(rows["pushed_rows_per_second"], rows["pulled_rows_per_second"])
        >= TARGETS["rows_per_second"],
        "RSS under 300 MB": rows["peak_rss_mb"] < TARGETS["rss_mb"],
    }
    summary = [
        summary_row("sync: first pass (pull everything)", initial["seconds"], peak_rss_mb=rss_initial),
        summary_row("sync: pass with nothing to do", noop["seconds"], target="< 100 ms",
            met=verdict["noop under 100 ms"], peak_rss_mb=rss_noop),
        summary_row("sync: consistency check", check["seconds"], target="< 2 s", met=verdict["check under 2 s"],
            peak_rss_mb=rss_check),
        summary_row(f"sync: {changes['pushed']:,} rows pushed + {changes['pulled']:,} pulled", changes["seconds"],
            reference="psql \\copy of the changed rows", reference_seconds=copy_sessions + copy_clients,
            target=">= 10,000 rows/s each way, RSS < 300 MB",
            met=verdict["10k rows/s each way"] and verdict["RSS under 300 MB"], peak_rss_mb=rss_changes),
    ]
    lines = [f"# sync benchmark, scale {args.scale:g}", "", "| figure | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    lines += ["", "| target | met |", "| --- | --- |"] + [f"| {k} | {'pass' if v else 'MISS'} |" for k, v in verdict.items()]
    lines += ["", *summary_table(summary)]
    write_result("sync", args.scale, {"figures": rows, "targets": verdict}, summary, lines)
    print("\n".join(lines))
    if args.keep:
        print(f"kept: --data {data} --sat {sat} --central {libpq}")
        return
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
