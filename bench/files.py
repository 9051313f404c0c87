"""Benchmark: add and get of one large client file against `cp` of the same file
(issue 19; targets: get within 2x of cp's wall time, add within 2.5x with scanning off,
peak RSS under 150 MB).

    .venv/bin/python bench/files.py [--size-mib 1024] [--dir DIR] [--no-compress] [--no-backup]

A fresh data directory (SQLite) with one client; a source file of random bytes (a
scanned PDF or photo does not compress either). Add and get each run in a child process
of their own through the core functions the daemon's `file.add`/`file.get` use
(core/files/repository.py: the content is read in 1 MiB pieces, cut into 4 MiB chunks,
sealed with the client's key and stored as fsynced objects by two worker threads; get
reads ahead in two threads, authenticates every chunk and writes a
temporary file, fsyncs it and renames it into place: core/files/repository.py's
save_download, through fsutil.StreamedFile as `strongroom files get` writes too),
so each child's peak RSS (wait4) is that operation's alone. `cp` copies the same file
in the same run, timed alone and with an fsync of the copy (cp does not fsync; the
store does). Add runs without malware scanning (the scanner is not in this path).
Each of cp, add and get runs --repeat times (3 by default, interleaved) and the median
is reported (peak RSS: the largest, each child's own VmHWM): this machine is shared and a guest's first touch
of memory it has never used costs several times a warm one, so one run misleads.

The whole command a user runs, `strongroom files add` / `files get`, goes through the
daemon: a real strongroomd is started on the same data directory (its start-up is not
timed: it runs all day) and the CLI runs as a child (strongroom.console.cli.main in a
fresh interpreter, as the console script runs it), timed from exec to exit, so the
CLI's start-up and the control-socket transfer (raw binary frames of at most
[daemon] max_frame_bytes beside the JSON of each call) are in its figure. Its peak RSS is the CLI's; the daemon's
peak (VmHWM) is reported beside it. --no-daemon skips these rows.

Then a full backup of the data directory (the file's objects into a new repository) and
a restore of it into a fresh target (objects proven and written), each in a child of its
own, for their speed and peak RSS (the backup streams objects, so it too stays flat);
if either fails the add/get figures are still written, with the failure in its row.

Writes files.md and files.json in the results folder (bench/results, or bench/all.py
--results-dir) and prints the table; also files-s<scale>.json/.md there with
bench/report.py's summary rows (--scale only names that file; bench/all.py passes its own).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIECE = 1024 * 1024


def _child(args: argparse.Namespace) -> None:
    """One operation in this process; prints {"seconds": ...}."""
    from strongroom.core.datadir import open_data_dir
    from strongroom.core.db.engine import transaction
    from strongroom.core.files.repository import add_file, open_file
    from strongroom.core.files.store import open_files_target
    from strongroom.core.principal import Principal

    who = Principal("user:bench", frozenset({"*"}))
    ctx = open_data_dir(Path(args.data))
    store = open_files_target(ctx.settings)
    settings = ctx.settings.files.model_copy(update={"max_bytes": 1 << 40, "compress": not args.no_compress})
    start = time.perf_counter()
    if args.child == "add":
        src = Path(args.src)

        def pieces():
            # As a local caller would: one reused buffer (the writer copies what it is
            # given), the kernel told the file is read once, front to back.
            buffer = bytearray(PIECE)
            view = memoryview(buffer)
            with src.open("rb", buffering=0) as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while n := f.readinto(buffer):
                    yield view[:n]
        with transaction(ctx.engine) as conn:
            row = add_file(conn, ctx.keyring, who, store, settings, uuid.UUID(args.client), name="scan.pdf",
                           content_type="application/pdf", size=src.stat().st_size, content=pieces())
        out = {"file_id": str(row["id"])}
    elif args.child == "backup":
        from strongroom.core.jobs import backup
        out = {"snapshot_id": backup.run(ctx, {"full": True}, lambda *a: None)["snapshot_id"]}
    elif args.child == "restore":
        from strongroom.core.jobs import restore
        result = restore.run(ctx, {"snapshot_id": args.file, "dest": f"sqlite:///{Path(args.out) / 'strongroom.db'}"},
                             lambda *a: None)
        out = {"files": result["files"]}
    else:
        from strongroom.core.files.repository import save_download
        with transaction(ctx.engine) as conn:
            download = open_file(conn, ctx.keyring, who, store, uuid.UUID(args.file))
        save_download(download, Path(args.out))   # temporary file, fsync, rename: as `files get`
        out = {}
    out["seconds"] = time.perf_counter() - start
    ctx.close()
    out["peak_rss"] = _own_peak_rss()
    print(json.dumps(out))


def _own_peak_rss() -> int:
    """This process's peak RSS (VmHWM, bytes). wait4's ru_maxrss is no good here: a
    child forked from this bench starts its count at the parent's size, which holds
    SQLAlchemy and a comparison buffer, so it reported the parent, not the operation."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cli_child(argv: list[str]) -> None:
    """`strongroom ARGV` in this process (as the console script runs it); prints
    {"reply": its --json output, "peak_rss": bytes}."""
    import contextlib
    import io

    from strongroom.console.cli import main as cli_main
    captured = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(captured):
        try:
            cli_main(argv)
        except SystemExit as exc:
            code = exc.code or 0
    if code:
        raise SystemExit(code)
    print(json.dumps({"reply": json.loads(captured.getvalue()), "peak_rss": _own_peak_rss()}))


def _measure(argv: list[str], env: dict | None = None) -> tuple[float, dict, int]:
    """(wall seconds, the child's JSON, its peak RSS in bytes)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}")
    out = json.loads(output or b"{}")
    return wall, out, out.get("peak_rss") or usage.ru_maxrss * 1024


def _row(measured: tuple | str | None, mb: float) -> dict:
    """A backup/restore result row: figures, the failure, or skipped."""
    if measured is None:
        return {"skipped": True}
    if isinstance(measured, str):
        return {"error": measured}
    wall, out, rss = measured
    return {"seconds": round(wall, 3), "mb_s": round(mb / wall, 1), "peak_rss_mb": round(rss / 1e6, 1),
            "in_process_seconds": round(out["seconds"], 3)}


def _median_run(runs: list[tuple[float, dict, int]]) -> tuple[float, dict, int]:
    """The run of median wall time, with the largest peak RSS of all of them."""
    ordered = sorted(runs, key=lambda r: r[0])
    wall, out, _ = ordered[len(ordered) // 2]
    return wall, out, max(r[2] for r in runs)


def _cp(src: Path, dst: Path) -> tuple[float, float]:
    """`cp` alone, and cp followed by an fsync of the copy (seconds each)."""
    start = time.perf_counter()
    subprocess.run(["cp", str(src), str(dst)], check=True)
    cp = time.perf_counter() - start
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    cp_sync = time.perf_counter() - start
    dst.unlink()
    return cp, cp_sync


def _through_daemon(work: Path, data: Path, src: Path, client: str, got: Path, repeat: int) -> dict:
    """`strongroom files add` and `files get` run as a user would, against a daemon on
    the data directory: {"add": (wall, out, rss), "get": ..., "daemon_peak_rss": bytes}."""
    sys.path.insert(0, str(HERE.parent))
    from tests.daemon.conftest import DaemonProcess   # the test suite's real-daemon harness
    daemon = DaemonProcess(data, work, name="bench")
    try:
        daemon.wait_ready()
        env = {**os.environ, "RUNTIME_DIRECTORY": str(daemon.runtime), "XDG_CONFIG_HOME": str(work / "xdg")}
        cli = [sys.executable, str(Path(__file__).resolve()), "--child", "cli", "--",
               "--data-dir", str(data), "files"]
        adds, gets = [], []
        for _ in range(repeat):
            adds.append(_measure([*cli, "add", client, str(src), "--type", "application/pdf", "--json"], env=env))
            gets.append(_measure([*cli, "get", adds[-1][1]["reply"]["id"], "--out", str(got), "--force", "--json"], env=env))
            if not _same(src, got):
                raise SystemExit("files get through the daemon returned different bytes than were added")
            got.unlink()
        hwm = 0
        for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
        return {"add": _median_run(adds), "get": _median_run(gets), "daemon_peak_rss": hwm}
    finally:
        daemon.stop()


def _cli_row(daemon: dict | None, op: str, mb: float, cp: float, cp_sync: float) -> dict:
    if daemon is None:
        return {"skipped": True}
    wall, _, rss = daemon[op]
    return {"seconds": round(wall, 3), "mb_s": round(mb / wall, 1), "peak_rss_mb": round(rss / 1e6, 1),
            "ratio_to_cp": round(wall / cp, 2), "ratio_to_cp_fsync": round(wall / cp_sync, 2)}


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, 16 * PIECE)
            f.write(os.urandom(n))
            left -= n
        f.flush()
        os.fsync(f.fileno())


def _same(a: Path, b: Path) -> bool:
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(16 * PIECE), fb.read(16 * PIECE)
            if x != y:
                return False
            if not x:
                return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed after)")
    parser.add_argument("--no-compress", action="store_true", help="[files] compress = false")
    parser.add_argument("--scale", type=float, default=1.0, help="only names the summary file files-s<scale>.json")
    parser.add_argument("--no-backup", action="store_true", help="measure add and get only")
    parser.add_argument("--no-daemon", action="store_true", help="skip strongroom files add/get through a daemon")
    parser.add_argument("--repeat", type=int, default=3, help="runs of cp, add and get (the median is reported)")
    parser.add_argument("--child", choices=["add", "get", "backup", "restore", "cli"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    if "--child" in argv and "cli" in argv and "--" in argv:   # the CLI's own arguments follow --
        _cli_child(argv[argv.index("--") + 1:])
        return
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    from strongroom.core.datadir import init_data_dir, open_data_dir
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Practice
    from strongroom.core.demo import client_records
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository.clients import insert_clients
    from sqlalchemy import select

    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="sr-bench-files-"))
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * PIECE
    try:
        data = work / "data"
        init_data_dir(data, practice_name="Bench Practice", principal=SYSTEM)
        ctx = open_data_dir(data)
        created: list = []
        with transaction(ctx.engine) as conn:
            practice = conn.execute(select(Practice.__table__.c.id)).scalar_one()
            insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(1), created=created)
        ctx.close()
        src = work / "source.bin"
        _write_random(src, size)

        me = [sys.executable, str(Path(__file__).resolve()), "--data", str(data)]
        if args.no_compress:
            me.append("--no-compress")
        got = work / "got.bin"
        cps, adds, gets = [], [], []
        for _ in range(args.repeat):
            cps.append(_cp(src, work / "cp.bin"))
            adds.append(_measure([*me, "--child", "add", "--src", str(src), "--client", str(created[0])]))
            gets.append(_measure([*me, "--child", "get", "--file", adds[-1][1]["file_id"], "--out", str(got)]))
            if not _same(src, got):
                raise SystemExit("get returned different bytes than were added")
            got.unlink()
        cp = statistics.median(c for c, _ in cps)
        cp_sync = statistics.median(c for _, c in cps)
        add_wall, added, add_rss = _median_run(adds)
        get_wall, gotten, get_rss = _median_run(gets)
        daemon = None
        stored_files = args.repeat if args.no_daemon else 2 * args.repeat   # every add's file is kept
        if not args.no_daemon:
            with (data / "strongroom.toml").open("a") as config:
                config.write(f"\n[metrics]\nport = 0\n\n[files]\nmax_bytes = {1 << 40}\n"
                             f"compress = {'false' if args.no_compress else 'true'}\n")
            daemon = _through_daemon(work, data, src, str(created[0]), got, args.repeat)
        backup = restore = None
        if not args.no_backup:
            try:
                backup = _measure([*me, "--child", "backup"])
                restored_dir = work / "restored"
                restored_dir.mkdir()
                restore = _measure([*me, "--child", "restore", "--file", backup[1]["snapshot_id"],
                                    "--out", str(restored_dir)])
                if restore[1]["files"]["files"] != stored_files:
                    raise SystemExit("the restore did not bring the file back")
            except SystemExit as exc:      # add/get figures stand; the failure is reported
                failure = f"failed: {exc}"
                if backup is None:
                    backup = failure
                restore = failure
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)

    mb = size / 1e6
    result = {
        "size_bytes": size, "compress": not args.no_compress, "scanning": False,
        "cp": {"seconds": round(cp, 3), "mb_s": round(mb / cp, 1)},
        "cp_fsync": {"seconds": round(cp_sync, 3), "mb_s": round(mb / cp_sync, 1)},
        "add": {"seconds": round(add_wall, 3), "mb_s": round(mb / add_wall, 1), "peak_rss_mb": round(add_rss / 1e6, 1),
                "ratio_to_cp": round(add_wall / cp, 2), "ratio_to_cp_fsync": round(add_wall / cp_sync, 2),
                "target_ratio": 2.5, "in_process_seconds": round(added["seconds"], 3)},
        "get": {"seconds": round(get_wall, 3), "mb_s": round(mb / get_wall, 1), "peak_rss_mb": round(get_rss / 1e6, 1),
                "ratio_to_cp": round(get_wall / cp, 2), "ratio_to_cp_fsync": round(get_wall / cp_sync, 2),
                "target_ratio": 2.0, "in_process_seconds": round(gotten["seconds"], 3)},
        "backup": _row(backup, mb), "restore": _row(restore, mb),
        "cli_add": _cli_row(daemon, "add", mb, cp, cp_sync), "cli_get": _cli_row(daemon, "get", mb, cp, cp_sync),
        "daemon_peak_rss_mb": round(daemon["daemon_peak_rss"] / 1e6, 1) if daemon else None,
        "repeat": args.repeat, "stored_files": stored_files,
        "rss_target_mb": 150, "cpus": os.cpu_count(),
    }
    rows = [("cp", result["cp"]), ("cp + fsync", result["cp_fsync"]), ("files add", result["add"]),
            ("files get", result["get"]),
            ("strongroom files add (CLI -> daemon)", result["cli_add"]),
            ("strongroom files get (CLI -> daemon)", result["cli_get"]),
            (f"full backup ({result['stored_files']} files of {args.size_mib} MiB + database)", result["backup"]),
            ("restore into a fresh target", result["restore"])]
    lines = [f"# Client files: {args.size_mib} MiB add/get against cp "
             f"(compress {'on' if result['compress'] else 'off'}, scanning off, {os.cpu_count()} CPUs)", "",
             "| operation | seconds | MB/s | x cp | x cp+fsync | peak RSS MB | seconds in process |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows:
        if "error" in r or "skipped" in r:
            lines.append(f"| {name} | {r.get('error') or 'not run'} | | | | | |")
            continue
        lines.append(f"| {name} | {r['seconds']} | {r['mb_s']} | {r.get('ratio_to_cp', '')} | "
                     f"{r.get('ratio_to_cp_fsync', '')} | {r.get('peak_rss_mb', '')} | "
                     f"{r.get('in_process_seconds', '')} |")
    lines += ["", "Targets: get within 2x of cp, add within 2.5x (wall time, child process incl. start-up); "
                  "peak RSS under 150 MB. Wall times include each child's Python start-up and imports; "
                  "the last column is the operation alone.",
              "", f"Medians of {args.repeat} runs. cp does not fsync; the store must (every chunk object and "
                  "the download are fsynced before they count as stored), so cp + fsync is the like-for-like "
                  "reference. files add/get: core/files/repository.py in a child process (SQLite); "
                  "strongroom files add/get: the CLI through a running daemon, start-up and control-socket "
                  "transfer included (peak RSS is the CLI's"
                  + (f"; the daemon's peak was {result['daemon_peak_rss_mb']} MB)." if daemon else ").")]
    sys.path.insert(0, str(HERE.parent))
    from bench.report import results_dir, write_atomic
    out = results_dir()       # bench/results, or bench/all.py --results-dir
    suffix = "" if result["compress"] else "-nocompress"
    write_atomic(out / f"files{suffix}.json", json.dumps(result, indent=2) + "\n")
    write_atomic(out / f"files{suffix}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    _write_summary(args, result)


def _write_summary(args: argparse.Namespace, result: dict) -> None:
    """bench/report.py's summary rows, for bench/all.py's table."""
    sys.path.insert(0, str(HERE.parent))
    from bench.report import row, write_result
    rss_ok = {op: result[op]["peak_rss_mb"] < result["rss_target_mb"] for op in ("add", "get")}
    size = f"{args.size_mib} MiB"
    summary = [row(f"files {op} {size}", result[op]["seconds"], reference="cp", reference_seconds=result["cp"]["seconds"],
                   target=f"<= {result[op]['target_ratio']:g}x cp, RSS < {result['rss_target_mb']} MB",
                   met=result[op]["ratio_to_cp"] <= result[op]["target_ratio"] and rss_ok[op],
                   peak_rss_mb=result[op]["peak_rss_mb"]) for op in ("add", "get")]
    summary += [row(f"files {op} {size} (vs cp + fsync: the store fsyncs, cp does not)", result[op]["seconds"],
                    reference="cp + fsync", reference_seconds=result["cp_fsync"]["seconds"],
                    peak_rss_mb=result[op]["peak_rss_mb"]) for op in ("add", "get")]
    for op in ("add", "get"):
        r = result[f"cli_{op}"]
        if "seconds" in r:
            summary.append(row(f"strongroom files {op} {size} (CLI -> daemon)", r["seconds"], reference="cp",
                               reference_seconds=result["cp"]["seconds"], peak_rss_mb=r["peak_rss_mb"]))
    for op, label in (("backup", "full backup"), ("restore", "restore into a fresh target")):
        if result[op].get("skipped"):          # --no-backup
            continue
        ran = "seconds" in result.get(op, {})  # a failed backup or restore has no figures
        summary.append(row(f"{label} ({result['stored_files']} files of {size})" + ("" if ran else ": failed"),
                           result[op]["seconds"] if ran else None,
                           peak_rss_mb=result[op].get("peak_rss_mb") if ran else None, met=None if ran else False,
                           target=None if ran else "completes"))
    name = "files" if result["compress"] else "files-nocompress"
    write_result(name, args.scale, {"benchmark": name, **result}, summary)


if __name__ == "__main__":
    main()
