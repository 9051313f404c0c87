"""Benchmark: console startup and audit paging (issue "The Textual console").

    .venv/bin/python bench/console_startup.py [--rows 1000000] [--pages 40] [--launches 5] [--scale 1]

  * startup: wall time from launching a fresh Python process to the login screen being
    mounted and interactive (headless, 80x24), median of --launches; target < 1.5 s.
  * paging: a real daemon on a SQLite data directory holding --rows audit entries
    (precomputed hash-chained rows inserted directly with core.audit.record_hash, so the
    chain stays valid); the console, as the local operator, pages back through the audit
    tab (the `n` binding's action, older) and forward (`p`, newer). Latency is from the
    action to the refresh after the new page is in the table; p50/p95/max over --pages
    changes, unfiltered and filtered by actor; target < 150 ms. (Pilot's press/pause add
    ~50-150 ms of test-harness waiting of their own, so they are not used for timing.)
    The console runs in a process of its own, importing what `strongroom console` does:
    run inside this one it carried the daemon's test harness and SQLAlchemy's models,
    and collecting that garbage was what made the slowest pages slow.
Prints the figures as JSON and writes bench/results/console_startup-s<scale>.json/.md
with bench/report.py's summary rows (--scale only names that file).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import row, write_result  # noqa: E402

CHILD = r"""
import sys, time
t_launch = float(sys.argv[1])
import asyncio
from strongroom.console.app import StrongroomConsole
from strongroom.console.screens.login import LoginScreen

async def main():
    app = StrongroomConsole("ipc:///nonexistent/control.sock", "ipc:///nonexistent/events.sock")
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, LoginScreen) or not app.screen.query("#username"):
            await asyncio.sleep(0.001)
        await pilot.pause()          # one full refresh: the first interactive frame
        print(time.time() - t_launch)

asyncio.run(main())
"""


def startup(launches: int) -> dict:
    times = []
    for _ in range(launches):
        out = subprocess.run([sys.executable, "-c", CHILD, repr(time.time())], capture_output=True,
                             text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"launches": launches, "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3), "target_s": 1.5}


def seed(data_dir: Path, rows: int) -> float:
    """Append `rows` chained audit entries straight into the database."""
    from sqlalchemy import insert, select
    from strongroom.core.audit import record_hash
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.models import AuditLog

    started = time.monotonic()
    table = AuditLog.__table__
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with ctx.engine.begin() as conn:
            last_id, prev = conn.execute(select(table.c.id, table.c.hash).order_by(table.c.id.desc()).limit(1)).one()
        moment = datetime.now(UTC) - timedelta(seconds=rows)
        batch: list[dict] = []
        for n in range(1, rows + 1):
            row = {"id": last_id + n, "occurred_at": moment + timedelta(seconds=n),
                   "actor": f"user{n % 7}", "session_id": None, "action": "READ" if n % 3 else "UPDATE",
                   "table_name": "clients", "record_id": f"c{n % 5000}", "ip_address": None,
                   "user_agent": None, "outcome": "success", "details": "{}", "prev_hash": prev}
            row["hash"] = prev = record_hash(row)
            batch.append(row)
            if len(batch) == 20000:
                with ctx.engine.begin() as conn:
                    conn.execute(insert(table), batch)
                batch = []
        if batch:
            with ctx.engine.begin() as conn:
                conn.execute(insert(table), batch)
    finally:
        ctx.close()
    return time.monotonic() - started


def page_latencies(proc, pages: int, actor: str | None) -> list[float]:
    """Page changes timed in a console process of its own (see the module's docstring)."""
    out = subprocess.run([sys.executable, "-c", PAGING_CHILD, proc.endpoint, proc.events_endpoint,
                          proc.local_token(), str(pages), actor or ""],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


PAGING_CHILD = r"""
import asyncio, json, sys
sys.path.insert(0, ".")
from bench.console_startup import console_page_latencies
endpoint, events, token, pages, actor = sys.argv[1:]
print(json.dumps(asyncio.run(console_page_latencies(endpoint, events, token, int(pages), actor or None))))
"""


async def console_page_latencies(endpoint: str, events: str, token: str, pages: int,
                                 actor: str | None) -> list[float]:
    from strongroom.console.app import StrongroomConsole
    from strongroom.console.tabs.audit import AuditTab

    app = StrongroomConsole(endpoint, events, token=token)
    latencies = []
    async with app.run_test(size=(80, 24)) as pilot:
        while not getattr(app.screen, "identity", None):
            await asyncio.sleep(0.01)
        app.screen.action_show_tab("audit")   # what the Audit tab's digit key runs
        tab = app.screen.query_one("#audit", AuditTab)
        if actor:
            await pilot.press("slash", *actor, "enter")
        while not tab.entries or (actor and any(e["actor"] != actor for e in tab.entries.values())):
            await asyncio.sleep(0.01)
        # Timing starts from an idle screen, as a person's first `n` does: the tab just
        # switched to is drawn first (timed with it, the first page also paid the
        # switch's layout and first paint, 0.4-0.9 s, and that was the slowest page).
        await pilot.pause()
        drawn = asyncio.Event()
        app.call_after_refresh(drawn.set)
        await drawn.wait()
        for i in range(pages):
            action = "older" if i < pages // 2 else "newer"
            before = tab.last_id
            started = time.perf_counter()
            await app.run_action(action, tab)   # what the `n` / `p` binding runs
            while tab.last_id == before:
                await asyncio.sleep(0.001)
            drawn = asyncio.Event()
            app.call_after_refresh(drawn.set)   # the new page has been composited
            await drawn.wait()
            latencies.append(time.perf_counter() - started)
    return latencies


def summary(latencies: list[float]) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    return {"pages": len(ms), "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(ms[int(len(ms) * 0.95) - 1], 1), "max_ms": round(ms[-1], 1), "target_ms": 150}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--launches", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="only names the result file")
    args = parser.parse_args()

    from tests.daemon.conftest import DaemonProcess, make_data_dir

    report = {"startup": startup(args.launches)}
    print(json.dumps(report), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data_dir = make_data_dir(root, f"sqlite:///{root / 'strongroom.db'}")
        report["seed"] = {"rows": args.rows, "seconds": round(seed(data_dir, args.rows), 1)}
        print(json.dumps(report["seed"]), flush=True)
        proc = DaemonProcess(data_dir, root)
        try:
            proc.wait_ready()
            report["paging"] = summary(page_latencies(proc, args.pages, None))
            report["paging_filtered_actor"] = summary(page_latencies(proc, args.pages, "user3"))
        finally:
            proc.stop()
    print(json.dumps(report, indent=2))
    start = report["startup"]
    rows = [row(f"console start to login screen (median of {start['launches']})", start["median_s"],
                target="< 1.5 s", met=start["median_s"] < start["target_s"])]
    for key, label in (("paging", "audit page change p95"), ("paging_filtered_actor", "audit page change p95, by actor")):
        page = report[key]
        rows.append(row(f"{label} ({args.rows:,} rows)", page["p95_ms"] / 1000, target="< 150 ms",
                        met=page["p95_ms"] < page["target_ms"]))
    write_result("console_startup", args.scale, {"benchmark": "console_startup", **report}, rows)


if __name__ == "__main__":
    main()
