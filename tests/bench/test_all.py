"""bench/all.py end to end, kept short: a --quick run of two cheap benchmarks as real
processes into a temporary results folder, and a benchmark that fails (its PostgreSQL
server refuses connections) still gets its row in the table and the run exits non-zero."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run_all(results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "all.py"), "--quick", "--results-dir", str(results),
                           *args], cwd=REPO, capture_output=True, text=True, timeout=150)


@contextlib.contextmanager
def _held(port: int) -> Iterator[None]:
    """A loopback TCP port kept listening for the duration (when nothing else has it)."""
    with socket.socket() as sock:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield


def test_quick_run_writes_one_table_with_each_benchmarks_rows(tmp_path):
    done = run_all(tmp_path, "--only", "encrypted_insert,control_latency")
    assert done.returncode == 0, done.stderr[-2000:]
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["failed"] == [] and latest["skipped"] == [] and latest["quick"] is True
    assert [b["name"] for b in latest["benchmarks"]] == ["encrypted_insert", "control_latency"]
    by_bench = {}
    for row in latest["rows"]:
        by_bench.setdefault(row["benchmark"], []).append(row)
    sqlite = next(r for r in by_bench["encrypted_insert"] if r["task"].endswith("(sqlite)"))
    assert sqlite["reference"] == "same insert unencrypted"
    assert sqlite["ours_seconds"] > 0 and sqlite["reference_seconds"] > 0
    assert sqlite["ratio"] == pytest.approx(sqlite["ours_seconds"] / sqlite["reference_seconds"], rel=0.01)
    assert sqlite["met"] is (sqlite["ratio"] <= 2.0)
    assert sqlite["peak_rss_mb"] > 0
    idle = next(r for r in by_bench["control_latency"] if r["task"] == "status p99 idle ipc")
    assert idle["target"] == "< 5 ms" and idle["met"] is (idle["ours_seconds"] < 0.005)
    assert idle["ours_seconds"] > 0 and idle["peak_rss_mb"] > 0
    # Each benchmark also left its own result file with the same summary rows.
    own = json.loads((tmp_path / "control_latency-s0_01.json").read_text())
    assert [r["task"] for r in own["summary"]] == [r["task"] for r in by_bench["control_latency"]]
    table = (tmp_path / "latest.md").read_text()
    assert "| encrypted_insert | insert 300 clients encrypted (sqlite) | same insert unencrypted |" in table
    assert "| control_latency | status p99 idle ipc |" in table
    assert "| pass |" in table or "| miss |" in table


def test_a_failing_benchmark_is_in_the_table_and_the_run_exits_non_zero(tmp_path):
    done = run_all(tmp_path, "--only", "encrypted_insert", "--dsn", "postgresql://postgres@127.0.0.1:1/postgres")
    assert done.returncode == 1
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest["failed"] == ["encrypted_insert"] and latest["rows"] == []
    bench = latest["benchmarks"][0]
    assert bench["status"] == "failed" and bench["returncode"] != 0
    assert "Connection refused" in bench["stderr_tail"] or "connection" in bench["stderr_tail"].lower()
    assert "| encrypted_insert | failed (exit" in (tmp_path / "latest.md").read_text()


def test_a_benchmark_past_its_timeout_is_stopped_and_reported_failed(tmp_path):
    done = run_all(tmp_path, "--only", "control_latency", "--timeout", "2")
    assert done.returncode == 1
    latest = json.loads((tmp_path / "latest.json").read_text())
    bench = latest["benchmarks"][0]
    assert bench["status"] == "failed" and bench["returncode"] is None
    assert bench["stderr_tail"].startswith("timed out after 2 s") and bench["seconds"] < 60
    assert "| control_latency | failed (timed out;" in (tmp_path / "latest.md").read_text()


def test_unknown_names_are_refused_before_anything_runs(tmp_path):
    done = run_all(tmp_path, "--only", "export,nosuchbench")
    assert done.returncode == 2 and "nosuchbench" in done.stderr
    assert not (tmp_path / "latest.json").exists()


def test_every_script_in_bench_is_run_or_listed_as_skipped_with_why(tmp_path):
    from bench.all import NOT_BENCHMARKS, plan, unplanned
    planned = plan(1.0, False, "postgresql://postgres@127.0.0.1:5432/postgres")
    skipped = unplanned(planned)
    scripts = {p.stem for p in (REPO / "bench").glob("*.py")} - NOT_BENCHMARKS
    assert scripts == set(planned) | set(skipped) and not set(planned) & set(skipped)
    assert "export" in planned and "backup_vs_pgdump" in planned and "copytext_speed" in skipped
    assert all(why for why in skipped.values())
    # A new script nobody wired in yet is skipped with why until it joins the plan.
    for name in [*planned, "all", "report", "dataset", "newcomer"]:
        (tmp_path / f"{name}.py").write_text('"""a script"""\n')
    assert list(unplanned(planned, tmp_path)) == ["newcomer"]
    assert "not in bench/all.py's plan yet" in unplanned(planned, tmp_path)["newcomer"]


def test_merge_re_runs_one_benchmark_and_keeps_the_rest_of_the_table(tmp_path):
    """After a fix, one benchmark is measured again (`--only NAME --merge`) and its rows
    replace the earlier table's, the others kept as they were and the re-run named."""
    earlier_rows = [{"benchmark": "export", "task": "export clients csv masked", "reference": "psql \\copy clients",
                     "reference_seconds": 0.7, "ours_seconds": 4.2, "ratio": 6.0, "target": "<= 3x psql \\copy",
                     "met": False, "peak_rss_mb": 94},
                    {"benchmark": "control_latency", "task": "status p99 idle ipc", "reference": None,
                     "reference_seconds": None, "ours_seconds": 9.0, "ratio": None, "target": "< 5 ms",
                     "met": False, "peak_rss_mb": 130}]
    (tmp_path / "latest.json").write_text(json.dumps({
        "scale": 0.01, "quick": False, "rows": earlier_rows, "skipped": [], "failed": [],
        "benchmarks": [{"name": "export", "argv": [], "seconds": 3.0, "returncode": 0, "status": "ok"},
                       {"name": "control_latency", "argv": [], "seconds": 9.0, "returncode": 0, "status": "ok"}]}))
    # The benchmark's daemon once listened on a fixed port: whatever held the next one (a
    # client's ephemeral port, under CI's load) failed the run. Held here on purpose.
    with _held(47312):
        done = subprocess.run([sys.executable, str(REPO / "bench" / "all.py"), "--scale", "0.01", "--results-dir",
                               str(tmp_path), "--only", "control_latency", "--merge"],
                              cwd=REPO, capture_output=True, text=True, timeout=150)
    # all.py prints a failed benchmark's stderr tail to its stdout
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert [b["name"] for b in latest["benchmarks"]] == ["export", "control_latency"]
    assert [r for r in latest["rows"] if r["benchmark"] == "export"] == earlier_rows[:1]
    idle = next(r for r in latest["rows"] if r["task"] == "status p99 idle ipc")
    assert idle["ours_seconds"] < 1 and idle != earlier_rows[1]
    assert "merged into the earlier table (`--only ... --merge`): control_latency at 20" in (tmp_path / "latest.md").read_text()
    assert [s["name"] for s in latest["skipped"]] == ["copytext_speed"]        # as in a full run
    refused = run_all(tmp_path, "--only", "control_latency", "--merge")     # --quick: nothing to merge into
    assert refused.returncode == 2 and "--merge" in refused.stderr
