"""Dry runs show their plan and change nothing: `backup prune --dry-run` names every
snapshot it would keep with the rule(s) keeping it and every one it would forget with
why; `retention run --dry-run` names each row it would archive or delete with why, and
what a legal hold blocks. Both in text and --json, against a real daemon, on both
engines."""
import json
import uuid

import pytest
from sqlalchemy import func, select, update

from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, RetentionArchive
from strongroom.core.demo import client_records
from strongroom.core.backup import snapshots
from strongroom.core.jobs import backup
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import make_data_dir, running_daemon

# Keep the newest snapshot (by two rules) and nothing else by policy; no compaction, so
# a kept incremental keeps its base as a chain link.
POLICY = """
[backup.retention]
keep_last = 1
keep_daily = 1
keep_weekly = 0
keep_monthly = 0
compact = false
"""


def _snapshots(data_dir) -> dict[str, str]:
    """Three full snapshots and an incremental on the third; the first proven verified."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), client_records(4))
        fulls = [backup.run(ctx, {"full": "true"}, lambda *a: None)["snapshot_id"] for _ in range(3)]
        incremental = backup.run(ctx, {}, lambda *a: None)["snapshot_id"]
        with transaction(ctx.engine) as conn:
            conn.execute(update(Backup.__table__).where(Backup.__table__.c.id == uuid.UUID(fulls[0]))
                         .values(proof="verified"))
    finally:
        ctx.close()
    return {"verified": fulls[0], "unkept": fulls[1], "base": fulls[2], "newest": incremental}


def _repository_ids(data_dir) -> list[str]:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        _, repo = snapshots.open_configured(ctx, {})
        return sorted(str(i) for i in repo.list_snapshots())
    finally:
        ctx.close()


@pytest.fixture
def backed_up(tmp_path, db_url, monkeypatch):
    data_dir = make_data_dir(tmp_path, db_url, POLICY)
    snaps = _snapshots(data_dir)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        yield data_dir, snaps


def test_prune_dry_run_names_each_snapshot_kept_or_forgotten_and_why(backed_up, capsys):
    data_dir, snaps = backed_up
    before = _repository_ids(data_dir)
    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "prune", "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True and plan["configuration"] == "default"
    assert plan["forgotten"] == [snaps["unkept"]]
    by_id = {s["snapshot_id"]: s for s in plan["snapshots"]}
    assert set(by_id) == set(before)
    assert by_id[snaps["newest"]]["action"] == "keep"
    assert {r.split()[0] for r in by_id[snaps["newest"]]["reasons"]} == {"last", "daily"}
    assert by_id[snaps["verified"]]["action"] == "keep"
    assert by_id[snaps["verified"]]["reasons"] == ["newest verified"]
    assert by_id[snaps["base"]]["action"] == "keep"
    assert by_id[snaps["base"]]["reasons"] == [f"chain link of {snaps['newest']}"]
    assert by_id[snaps["unkept"]]["action"] == "forget"
    assert by_id[snaps["unkept"]]["reasons"] == ["no keep rule"]
    uuid.UUID(plan["run_id"])                  # the dry run is a recorded job run
    assert _repository_ids(data_dir) == before  # nothing changed

    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "prune", "--dry-run")
    assert code == 0, err
    assert "dry run" in out and "nothing changed" in out and "forget 1" in out
    lines = {line.split()[1]: line for line in out.splitlines() if line.split()[0] in ("keep", "forget")}
    assert set(lines) == set(before)
    assert lines[snaps["newest"]].split()[0] == "keep" and "last" in lines[snaps["newest"]]
    assert "newest verified" in lines[snaps["verified"]]
    assert f"chain link of {snaps['newest']}" in lines[snaps["base"]]
    assert lines[snaps["unkept"]].split()[0] == "forget" and "no keep rule" in lines[snaps["unkept"]]
    assert _repository_ids(data_dir) == before


def test_prune_without_dry_run_still_only_starts_the_run(backed_up, capsys):
    data_dir, snaps = backed_up
    code, out, err = run(capsys, "--data-dir", data_dir, "backup", "prune", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["forgotten"] == [snaps["unkept"]]
    assert snaps["unkept"] not in _repository_ids(data_dir)


def _archived(data_dir) -> int:
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with ctx.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(RetentionArchive.__table__)).scalar_one()
    finally:
        ctx.close()


def test_retention_dry_run_names_each_row_due_and_why_and_changes_nothing(retention_daemon, capsys):
    d = retention_daemon
    expected = d.call("retention.plan.get", {"horizon_days": 0, "limit": 1000})
    assert expected["actions"], "the retention demo has rows due now"
    code, out, err = run(capsys, "--data-dir", d.data_dir, "retention", "run", "--dry-run", "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["dry_run"] is True
    uuid.UUID(plan["run_id"])
    assert plan["summary"] == expected["summary"]
    assert [(a["row_id"], a["action"], a["reason"], a["blocked_by"]) for a in plan["actions"]] == \
        [(a["row_id"], a["action"], a["reason"], a["blocked_by"]) for a in expected["actions"]]
    assert _archived(d.data_dir) == 0

    code, out, err = run(capsys, "--data-dir", d.data_dir, "retention", "run", "--dry-run")
    assert code == 0, err
    assert "dry run" in out and "nothing changed" in out
    first = expected["actions"][0]
    line = next(line for line in out.splitlines() if first["row_id"] in line)
    assert first["action"] in line and f"({first['reason']})" in line
    blocked = [a for a in expected["actions"] if a["blocked_by"]]
    if blocked:
        assert f"BLOCKED by hold {blocked[0]['blocked_by']}" in out
    assert _archived(d.data_dir) == 0
    assert d.call("retention.plan.get", {"horizon_days": 0, "limit": 1000})["summary"] == expected["summary"]
