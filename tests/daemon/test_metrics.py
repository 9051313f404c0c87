"""Backup freshness per configuration, read from the backups table so it holds across
restarts and for backups run from the CLI."""
from __future__ import annotations

from prometheus_client import generate_latest

from strongroom.core.config import BackupConfigurationSettings
from strongroom.core.jobs import backup
from strongroom.daemon.metrics import Metrics
from tests.core.jobs.test_backup_restore import _seed, _settings_with_target


def test_each_configuration_reports_its_own_last_backup_and_allowed_age(ctx, tmp_path):
    _settings_with_target(ctx, tmp_path)
    offsite = BackupConfigurationSettings(target=str(tmp_path / "offsite"))
    archive = BackupConfigurationSettings(target=str(tmp_path / "archive"))
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": offsite, "archive": archive}})})
    _seed(ctx, n=3)
    backup.run(ctx, {"actor": "test"}, lambda *a: None)
    backup.run(ctx, {"actor": "test", "configuration": "offsite"}, lambda *a: None)

    metrics = Metrics(ctx.engine, {"default": 3600.0, "offsite": 90000.0}, lambda: ctx.settings)
    text = generate_latest(metrics.registry).decode()
    last = [line for line in text.splitlines() if line.startswith("strongroom_backup_last_success_timestamp_seconds{")]
    assert sorted(line.split("}")[0] for line in last) == [
        'strongroom_backup_last_success_timestamp_seconds{configuration="default"',
        'strongroom_backup_last_success_timestamp_seconds{configuration="offsite"']   # archive: never
    assert 'strongroom_backup_max_age_seconds{configuration="offsite"} 90000.0' in text

    metrics.set_backup_max_ages({"default": 7200.0})              # reload dropped offsite's schedule
    text = generate_latest(metrics.registry).decode()
    assert 'strongroom_backup_max_age_seconds{configuration="default"} 7200.0' in text
    assert 'configuration="offsite"} 90000.0' not in text
