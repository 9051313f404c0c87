"""Storage usage for health: rows and bytes per table (bytes where the engine can tell),
bytes per backup target against its quota, backup runs that succeeded and failed in
the window; names and numbers, never a value."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from strongroom.core.config import BackupConfigurationSettings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import JobRun
from strongroom.core.db.types import utcnow
from strongroom.core.jobs import backup, runs
from strongroom.core.usage import usage
from tests.core.conftest import seed_clients, with_backup_target


def _tables(result: dict) -> dict[str, dict]:
    return {t["table"]: t for t in result["storage"]["tables"]}


def test_each_table_reports_its_rows_and_bytes_where_the_engine_tells(ctx):
    seed_clients(ctx, n=25)
    result = usage(ctx.engine, ctx.settings)
    tables = _tables(result)
    assert tables["clients"]["rows"] == 25 and tables["therapy_sessions"]["rows"] == 10
    assert tables["sync_peers"]["rows"] == 0
    assert result["storage"]["database_bytes"] > 0
    if result["storage"]["bytes_per_table"]:          # PostgreSQL always; SQLite with dbstat
        assert tables["clients"]["bytes"] > tables["sync_peers"]["bytes"] >= 0
        ordered = [t["bytes"] for t in result["storage"]["tables"]]
        assert ordered == sorted(ordered, reverse=True)
    else:
        assert tables["clients"]["bytes"] is None


def test_each_backup_target_reports_used_bytes_and_share_of_its_quota(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    offsite = BackupConfigurationSettings(target=str(tmp_path / "offsite"), quota_bytes=10_000_000)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": offsite}})})
    seed_clients(ctx, n=5)
    first = backup.run(ctx, {"actor": "test", "configuration": "offsite"}, lambda *a: None)
    (default, off) = usage(ctx.engine, ctx.settings)["storage"]["targets"]
    assert default == {"configuration": "default", "used_bytes": 0, "quota_bytes": None, "percent": None}
    assert off["configuration"] == "offsite" and off["used_bytes"] == first["added_bytes"] > 0
    assert off["quota_bytes"] == 10_000_000
    assert off["percent"] == round(100 * first["added_bytes"] / 10_000_000, 1)


def test_backup_runs_in_the_window_are_counted_by_outcome_and_older_ones_left_out(ctx):
    now = utcnow()
    for status, finished in (("succeeded", now), ("succeeded", now - timedelta(days=1)), ("failed", now),
                             ("interrupted", now - timedelta(days=2)), ("failed", now - timedelta(days=9)),
                             ("cancelled", now)):
        run = runs.queue(ctx.engine, "backup", trigger="schedule")
        with transaction(ctx.engine) as conn:
            conn.execute(update(JobRun.__table__).where(JobRun.__table__.c.id == run.id)
                         .values(status=status, finished_at=finished))
    verify = runs.queue(ctx.engine, "verify", trigger="schedule")
    runs.finish(ctx.engine, verify.id, runs.JobStatus.FAILED, error="x")
    assert usage(ctx.engine, ctx.settings)["backups"] == {"window_days": 7, "succeeded": 2, "failed": 2}
