"""Benchmark: Strongroom's row-aware incremental backup after 1% of rows changed, against
its own full backup and against `pg_dump | restic backup --stdin`, on one database.

    .venv/bin/python bench/backup_incremental.py [--scale 1] [--repeat 2] [--change 0.01]
        [--dsn postgresql://postgres@127.0.0.1:5432/test] [--no-restic] [--profile DIR]

Builds a practice at --scale (bench/dataset.py) in a scratch PostgreSQL database
`strongroom_bench_inc_<pid>` (created and dropped here), then, timing whole processes:
  1. full backup, --repeat times, interleaved: Strongroom (fresh repository each time)
     and `pg_dump | restic backup --stdin` (fresh restic repository each time);
  2. changes --change of the clients and therapy_sessions rows, picked at random, the
     way the application does: updates re-encrypt fields and take a new `sync_version`
     (next_change_version, under the change lock), a tenth are tombstones (`deleted_at`
     set, new version), each write audited, so audit_logs grows too;
  3. incremental backup, --repeat times: Strongroom on top of the full snapshot and a
     second restic snapshot of a new pg_dump; after each run the files it added are
     removed again, so every repetition starts from the same repository.
Reports seconds, bytes added to the repository and peak RSS (of the backup process and
its children), the incremental as a ratio of the full and against restic. Targets
(issue 5): incremental under 10% of the full backup's time and under 3% of its bytes;
peak RSS under 300 MB at scale 1 and not growing with scale (run again at --scale 3
--no-restic for that). With --profile DIR, one more incremental and one more full run
(not timed) go under py-spy, wall-clock samples of every thread, idle ones included;
DIR gets the collapsed stacks (flamegraph.pl / inferno input) and the top frames are
printed. Writes bench/results/backup_incremental-s<scale>.json/.md (bench/report.py's
summary rows).
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup_vs_pgdump import backup_command, make_practice, rss_of, size_of  # noqa: E402
from bench.report import row as summary_row, write_result  # noqa: E402

RESTIC_PASSWORD = "strongroom-bench"
SLICE = 500


def ensure_restic() -> str:
    """The restic binary; installed with apt-get when missing and running as root."""
    found = shutil.which("restic")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("restic is not installed and this is not root: install it "
                         "(apt-get install restic, or https://restic.net) and run again")
    print("installing restic (apt-get install -y restic)")
    install = ["apt-get", "install", "-y", "-q", "restic"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        subprocess.run(install, check=True, capture_output=True)
    found = shutil.which("restic")
    if not found:
        raise SystemExit("apt-get install restic finished but no restic is on PATH")
    return found


def scatter_changes(url: str, keyring, fraction: float, seed: int = 5) -> dict[str, int]:
    """Change `fraction` of the live clients and therapy sessions, picked at random,
    through the application's write paths: update_client / delete_client for clients
    (re-encrypted fields, new sync_version, audited); for sessions, which have no update
    function yet, the same steps insert_sessions takes (new notes sealed with the row's
    key, one change version per transaction under the change lock, data_checksum, one
    audit entry per batch). One change in ten is a tombstone."""
    from sqlalchemy import bindparam, select, update

    from strongroom.core import audit
    from strongroom.core.crypto.fields import associated_data
    from strongroom.core.db.engine import make_engine, transaction
    from strongroom.core.db.models import Client, SessionStatus, TherapySession
    from strongroom.core.db.types import utcnow
    from strongroom.core.demo import session_records
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository.changes import next_change_version, row_checksum
    from strongroom.core.repository.clients import delete_client, update_client

    rng = random.Random(seed)
    clients, sessions = Client.__table__, TherapySession.__table__
    from strongroom.core.audit import seal_with
    engine = make_engine(url)
    seal_with(engine, keyring)  # the chain is sealed: its entries need the KEK, as open_context gives them
    counts = {"clients_updated": 0, "clients_deleted": 0, "sessions_updated": 0, "sessions_deleted": 0}
    with transaction(engine) as conn:
        client_ids = conn.execute(select(clients.c.id).where(clients.c.deleted_at.is_(None))).scalars().all()
        session_ids = conn.execute(select(sessions.c.id).where(sessions.c.deleted_at.is_(None))).scalars().all()
    picked_clients = rng.sample(client_ids, round(len(client_ids) * fraction))
    picked_sessions = rng.sample(session_ids, round(len(session_ids) * fraction))
    del client_ids, session_ids

    for start in range(0, len(picked_clients), SLICE):
        with transaction(engine) as conn:
            for client_id in picked_clients[start:start + SLICE]:
                if rng.random() < 0.1:
                    delete_client(conn, SYSTEM, client_id)
                    counts["clients_deleted"] += 1
                else:
                    update_client(conn, keyring, SYSTEM, client_id, {
                        "phone": f"555-02{rng.randrange(100):02d}",
                        "notes": f"Reviewed {utcnow():%Y-%m-%d}; plan updated ({rng.randrange(10**6)})."})
                    counts["clients_updated"] += 1

    stmt = update(sessions).where(sessions.c.id == bindparam("row_id"))
    for start in range(0, len(picked_sessions), SLICE):
        with transaction(engine) as conn:
            version = next_change_version(conn)
            rows = conn.execute(select(sessions).where(
                sessions.c.id.in_(picked_sessions[start:start + SLICE]))).mappings().all()
            changes = []
            for row in rows:
                now = utcnow()
                if rng.random() < 0.1:
                    values = {"deleted_at": now}
                    counts["sessions_deleted"] += 1
                else:
                    note = next(session_records([row["client_id"]], 1, seed=rng.randrange(10**9),
                                                note_bytes=1500))["notes"]
                    cipher = keyring.cipher(conn, row["key_id"])
                    values = {"status": SessionStatus.COMPLETED,
                              "notes_enc": cipher.encrypt(note.encode(), associated_data(
                                  "therapy_sessions", "notes", row["id"]))}
                    counts["sessions_updated"] += 1
                values |= {"updated_at": now, "sync_version": version}
                values["data_checksum"] = row_checksum({**row, **values})
                changes.append({"row_id": row["id"], **{k: values.get(k, row[k]) for k in (
                    "status", "notes_enc", "deleted_at", "updated_at", "sync_version", "data_checksum")}})
            conn.execute(stmt, changes)
            audit.append(conn, actor=SYSTEM.actor, action="UPDATE", table_name="therapy_sessions",
                         details={"count": len(changes), "bulk": True, "bench": "scatter"})
    engine.dispose()
    return counts


def restic_command(restic: str, repo: Path, cache: Path, pg_url: str, log: Path) -> str:
    return (f"pg_dump '{pg_url}' | {restic} --repo {repo} --cache-dir {cache} backup --stdin "
            f"--stdin-filename strongroom.sql --json > {log}")


def restic_summary(log: Path) -> dict:
    for line in reversed(log.read_text().splitlines()):
        if '"message_type":"summary"' in line.replace(" ", ""):
            return json.loads(line)
    raise SystemExit(f"no restic summary in {log}:\n{log.read_text()[-2000:]}")


def files_of(path: Path) -> set[Path]:
    return {p for p in path.rglob("*") if p.is_file()}


def added_since(before: set[Path], path: Path) -> tuple[int, list[Path]]:
    new = sorted(files_of(path) - before)
    return sum(p.stat().st_size for p in new), new


def backup_result(log: Path) -> dict:
    return ast.literal_eval(log.read_text().strip().splitlines()[-1])


def manifest_breakdown(data: Path, repo: Path, snapshot_id: str, parent_chunks: set[str]) -> list[tuple]:
    """Per table of a snapshot: mode, rows, plain bytes, stored bytes, bytes not in the parent."""
    from strongroom.core.backup.repository import open_repository
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.storage import open_target

    ctx = open_context(load_settings(data / "strongroom.toml"))
    try:
        manifest = open_repository(open_target(str(repo)), ctx.keyring).read_manifest(uuid.UUID(snapshot_id))
    finally:
        ctx.close()
    out = []
    for t in manifest.tables:
        new = sum(r.stored_size for r in t.chunks if r.address not in parent_chunks)
        out.append((t.name, t.mode, t.row_count, sum(r.size for r in t.chunks),
                    sum(r.stored_size for r in t.chunks), new))
    return out


def chunk_addresses(repo: Path) -> set[str]:
    return {p.name for p in (repo / "chunks").rglob("*") if p.is_file()}


PY_SPY = Path(sys.executable).with_name("py-spy")


def profile(cmd: str, out: Path) -> None:
    """Run `cmd` (a Python command line) under py-spy: wall-clock samples of all threads."""
    if not PY_SPY.exists():
        raise SystemExit(f"--profile needs py-spy next to the interpreter ({PY_SPY})")
    subprocess.run(f"{PY_SPY} record -f raw -F -t -i -r 100 -o {out} -- {cmd} > /dev/null",
                   shell=True, check=True, capture_output=True)


def top_frames(stacks: Path, limit: int = 18) -> None:
    """Print, per thread group (main, backup workers), the functions with the largest
    share of that group's wall-clock samples (inclusive)."""
    groups: dict[str, tuple[int, dict[str, int]]] = {}
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        label = frames[0].partition(": ")[2]
        group = "workers" if label.startswith("backup") else ("main" if label in ("", "MainThread") else "other")
        total, by_frame = groups.get(group, (0, {}))
        for frame in set(frames[1:]):
            name = frame.split(" (")[0] + " (" + frame.split(" (", 1)[-1].rsplit(":", 1)[0].split("/")[-1] + ")"
            by_frame[name] = by_frame.get(name, 0) + int(count)
        groups[group] = (total + int(count), by_frame)
    for group in ("main", "workers"):
        if group not in groups:
            continue
        total, by_frame = groups[group]
        print(f"  {group} thread(s), {total} samples; inclusive share:")
        for name, n in sorted(by_frame.items(), key=lambda kv: -kv[1])[:limit]:
            print(f"    {n / total:6.1%}  {name}")


def median(values: list[float]) -> float:
    return statistics.median(values)


def mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--change", type=float, default=0.01, help="share of rows changed (default 0.01)")
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-restic", action="store_true", help="only Strongroom (e.g. for RSS at --scale 3)")
    parser.add_argument("--profile", type=Path, help="also profile one incremental and one full run into DIR")
    args = parser.parse_args()
    restic = None if args.no_restic else ensure_restic()
    base = args.dsn.rsplit("/", 1)[0]
    name = f"strongroom_bench_inc_{os.getpid()}"
    pg_url = f"{base}/{name}"
    env = {**os.environ, "RESTIC_PASSWORD": RESTIC_PASSWORD}
    # A plain `kill` must still drop the database and the temp dir (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def admin(sql: str) -> None:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql)

    tmp = Path(tempfile.mkdtemp(prefix="sr-bench-inc-"))
    admin(f'CREATE DATABASE "{name}"')
    try:
        data, ours, rrepo, cache = tmp / "data", tmp / "repo", tmp / "restic", tmp / "restic-cache"
        url = make_practice(base, name, data, args.scale)
        # A live database is autovacuumed; a freshly bulk-loaded one has no visibility
        # map yet, so every count(*) would be a full heap scan that production never pays.
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE)")
        ours_cmd = backup_command(data, ours)
        log = tmp / "out.log"

        # -- 1. full backups --------------------------------------------------------------
        full: dict[str, list] = {"ours_s": [], "ours_job": [], "ours_rss": [], "restic_s": [], "restic_rss": []}
        for i in range(args.repeat):
            shutil.rmtree(ours, ignore_errors=True)
            seconds, rss = rss_of(f"{ours_cmd} > {log}")
            result = backup_result(log)
            assert result["kind"] == "full", result
            full["ours_s"].append(seconds)
            full["ours_job"].append(result["job_seconds"])
            full["ours_rss"].append(rss)
            print(f"  full #{i + 1}: strongroom {seconds:.1f}s (job {result['job_seconds']:.1f}s) rss {rss:.0f} MiB",
                  end="", flush=True)
            if restic:
                shutil.rmtree(rrepo, ignore_errors=True)
                subprocess.run([restic, "--repo", str(rrepo), "init"], env=env, check=True, capture_output=True)
                seconds, rss = rss_of(restic_command(restic, rrepo, cache, pg_url, log), env=env)
                restic_full = restic_summary(log)
                full["restic_s"].append(seconds)
                full["restic_rss"].append(rss)
                print(f" | pg_dump|restic {seconds:.1f}s rss {rss:.0f} MiB", end="")
            print()
        full_id = result["snapshot_id"]
        ours_full_bytes = size_of(ours)
        restic_full_bytes = size_of(rrepo) if restic else 0
        parent_chunks = chunk_addresses(ours)

        # -- 2. change 1% ----------------------------------------------------------------
        from strongroom.core.config import load_settings
        from strongroom.core.context import open_context
        ctx = open_context(load_settings(data / "strongroom.toml"))
        counts = scatter_changes(url, ctx.keyring, args.change)
        ctx.close()
        print(f"changed {args.change:.1%} of clients and sessions: {counts}")

        # -- 3. incremental backups -------------------------------------------------------
        inc: dict[str, list] = {"ours_s": [], "ours_job": [], "ours_rss": [], "ours_bytes": [], "restic_s": [],
                                "restic_rss": [], "restic_stored": [], "restic_added": []}
        ours_before = files_of(ours)
        restic_before = files_of(rrepo) if restic else set()
        for i in range(args.repeat):
            seconds, rss = rss_of(f"{ours_cmd} > {log}")
            result = backup_result(log)
            assert result["kind"] == "incremental", result
            added, new_files = added_since(ours_before, ours)
            inc["ours_s"].append(seconds)
            inc["ours_job"].append(result["job_seconds"])
            inc["ours_rss"].append(rss)
            inc["ours_bytes"].append(added)
            if i == args.repeat - 1:
                breakdown = manifest_breakdown(data, ours, result["snapshot_id"], parent_chunks)
            for path in new_files:  # back to the full snapshot alone for the next run
                path.unlink()
            print(f"  incremental #{i + 1}: strongroom {seconds:.1f}s (job {result['job_seconds']:.1f}s) {mb(added)} "
                  f"rss {rss:.0f} MiB", end="")
            if restic:
                seconds, rss = rss_of(restic_command(restic, rrepo, cache, pg_url, log), env=env)
                summary = restic_summary(log)
                stored, new_files = added_since(restic_before, rrepo)
                for path in new_files:
                    path.unlink()
                inc["restic_s"].append(seconds)
                inc["restic_rss"].append(rss)
                inc["restic_stored"].append(stored)
                inc["restic_added"].append(summary["data_added"])
                print(f" | pg_dump|restic {seconds:.1f}s added {mb(summary['data_added'])} "
                      f"(stored {mb(stored)}) rss {rss:.0f} MiB", end="")
            print(flush=True)

        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
            profile(ours_cmd, args.profile / "incremental.txt")
            for path in sorted(files_of(ours) - ours_before):
                path.unlink()
            profile(backup_command(data, tmp / "repo-profile"), args.profile / "full.txt")
            shutil.rmtree(tmp / "repo-profile")

        # -- report ----------------------------------------------------------------------
        print(f"\nincremental snapshot by table (full snapshot {full_id}):")
        print(f"  {'table':24} {'mode':8} {'rows':>8} {'plain':>10} {'stored':>10} {'new':>10}")
        for row in breakdown:
            if row[2] or row[5]:
                print(f"  {row[0]:24} {row[1]:8} {row[2]:8d} {mb(row[3]):>10} {mb(row[4]):>10} {mb(row[5]):>10}")
        f_s, i_s = median(full["ours_s"]), median(inc["ours_s"])
        f_job, i_job = median(full["ours_job"]), median(inc["ours_job"])
        i_b = median(inc["ours_bytes"])
        rss_all = max(full["ours_rss"] + inc["ours_rss"])
        print(f"\nscale {args.scale}, {args.repeat} runs each, medians:")
        print(f"  strongroom full         {f_s:7.1f}s (job {f_job:.1f}s)  {mb(ours_full_bytes):>10}  "
              f"peak rss {max(full['ours_rss']):.0f} MiB")
        print(f"  strongroom incremental  {i_s:7.1f}s (job {i_job:.1f}s)  {mb(i_b):>10}  "
              f"peak rss {max(inc['ours_rss']):.0f} MiB")
        print(f"  incremental / full: time {i_s / f_s:.1%} as processes, {i_job / f_job:.1%} as jobs (target < 10%); "
              f"bytes {i_b / ours_full_bytes:.2%} (target < 3%); peak rss {rss_all:.0f} MiB (target < 300 MB at scale 1)")
        if restic:
            rf_s, ri_s = median(full["restic_s"]), median(inc["restic_s"])
            ri_stored, ri_added = median(inc["restic_stored"]), median(inc["restic_added"])
            print(f"  pg_dump|restic full     {rf_s:7.1f}s  {mb(restic_full_bytes):>10}  "
                  f"(added {mb(restic_full['data_added'])}) peak rss {max(full['restic_rss']):.0f} MiB")
            print(f"  pg_dump|restic 2nd      {ri_s:7.1f}s  {mb(ri_stored):>10}  (added {mb(ri_added)}, "
                  f"{ri_added / restic_full['data_added']:.0%} of its full) peak rss {max(inc['restic_rss']):.0f} MiB")
            print(f"  strongroom incremental vs restic's: time {i_s / ri_s:.2f}x, bytes {i_b / ri_stored:.3f}x "
                  f"of stored ({i_b / ri_added:.3f}x of 'Added to the repository'); "
                  f"full: time {f_s / rf_s:.2f}x, bytes {ours_full_bytes / restic_full_bytes:.2f}x")
        restic_ref = "pg_dump | restic backup --stdin"
        met = i_s / f_s < 0.10 and i_b / ours_full_bytes < 0.03 and rss_all < 300
        rows = [
            summary_row("full backup", f_s, reference=restic_ref if restic else None,
                        reference_seconds=median(full["restic_s"]) if restic else None,
                        peak_rss_mb=max(full["ours_rss"])),
            summary_row(f"incremental backup after {args.change:.0%} changed", i_s,
                        reference=f"{restic_ref} (2nd snapshot)" if restic else None,
                        reference_seconds=median(inc["restic_s"]) if restic else None,
                        target="< 10% of the full's time, < 3% of its bytes, RSS < 300 MB", met=met,
                        peak_rss_mb=max(inc["ours_rss"])),
        ]
        write_result("backup_incremental", args.scale, {
            "benchmark": "backup_incremental", "scale": args.scale, "repeat": args.repeat, "change": args.change,
            "restic": bool(restic), "full": full, "incremental": inc, "ours_full_bytes": ours_full_bytes,
            "restic_full_bytes": restic_full_bytes}, rows)
        if args.profile:
            for phase in ("incremental", "full"):
                print(f"\nprofile of one {phase} backup ({args.profile / phase}.txt):")
                top_frames(args.profile / f"{phase}.txt")
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
