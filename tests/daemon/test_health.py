"""The `health` command answers with a whole snapshot from the daemon's first moment.

The health loop takes a snapshot every few seconds on its own thread; until its first
one lands, the command used to answer `{}`, and a console (or a test) right after start,
or on a loaded machine, saw no `sync`, no `open_conflicts`, no `compliance` at all.
"""
from __future__ import annotations

import threading

from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.protocol import to_jsonable
from strongroom.core.protocol.models.status import HealthResult
from strongroom.daemon.lifecycle import Daemon
from tests.daemon.conftest import make_data_dir

# Every section a reader may index without checking: the fast ones and the slow ones.
SECTIONS = {"role", "uptime_seconds", "running_jobs", "last_success", "open_conflicts", "sync",
            "sync_peers", "integrity", "audit_chain_ok", "files", "kek", "storage", "backups",
            "compliance", "usage_as_of"}


def test_health_before_the_loop_has_run_is_a_whole_snapshot(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        daemon = Daemon(ctx, data_dir / "strongroom.toml")   # not started: no health loop
        try:
            snapshot = daemon.health_snapshot()
            assert SECTIONS <= snapshot.keys(), sorted(SECTIONS - snapshot.keys())
            assert snapshot["sync"]["open_conflicts"] == 0 and snapshot["open_conflicts"] == 0
            HealthResult.model_validate(to_jsonable(snapshot))     # what the protocol promises
            # Taken once, then kept: the next read is the loop's (or this) snapshot, not a new query.
            assert daemon.health_snapshot() == snapshot
        finally:
            daemon.control.zctx.term()
    finally:
        ctx.close()


def test_a_slow_snapshot_finishing_late_does_not_replace_a_newer_one(tmp_path, db_url):
    """The health loop's first read can take seconds on a loaded machine; meanwhile a
    caller takes its own snapshot. The loop's read, begun earlier, finishing later must
    not bring back what it saw before (a file just added read as not there: CI saw
    `files scan-status` answer 1 clean, then 0)."""
    data_dir = make_data_dir(tmp_path, db_url)
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        daemon = Daemon(ctx, data_dir / "strongroom.toml")
        try:
            began, release = threading.Event(), threading.Event()
            reads = iter([{"seen": "old"}, {"seen": "new"}])

            def read_health() -> dict:
                snapshot = next(reads)
                if snapshot["seen"] == "old":       # the loop's read: begun first, finishes last
                    began.set()
                    release.wait(10)
                return snapshot
            daemon._read_health = read_health
            loop_read = threading.Thread(target=daemon._take_health)
            loop_read.start()
            assert began.wait(10)
            assert daemon.health_snapshot() == {"seen": "new"}     # the caller's own, begun later
            release.set()
            loop_read.join(10)
            assert daemon.health_snapshot() == {"seen": "new"}
        finally:
            daemon.control.zctx.term()
    finally:
        ctx.close()
