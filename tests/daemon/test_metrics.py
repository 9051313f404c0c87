"""What strongroomd exports: backup freshness per configuration, read from the backups
table so it holds across restarts and for backups run from the CLI; and every series an
alert rule reads, present at 0 from the start so that the first failure after a restart
is an increase Prometheus can see."""
from __future__ import annotations

import dataclasses
import re

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from strongroom.core.config import BackupConfigurationSettings
from strongroom.core.jobs import all_kinds, backup, runs, schedulable_kinds
from strongroom.core.db.types import utcnow
from strongroom.daemon.metrics import Metrics
from tests.core.conftest import seed_clients, with_backup_target
from tests.conftest import JOB_STATUSES, METRICS, exported_series_names, rule_exprs


def test_each_configuration_reports_its_own_last_backup_or_zero_and_allowed_age(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    offsite = BackupConfigurationSettings(target=str(tmp_path / "offsite"))
    archive = BackupConfigurationSettings(target=str(tmp_path / "archive"))
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": offsite, "archive": archive}})})
    seed_clients(ctx, n=3)
    backup.run(ctx, {"actor": "test"}, lambda *a: None)
    backup.run(ctx, {"actor": "test", "configuration": "offsite"}, lambda *a: None)

    metrics = Metrics(ctx.engine, {"default": 3600.0, "offsite": 90000.0}, lambda: ctx.settings)
    text = generate_latest(metrics.registry).decode()
    last = [line for line in text.splitlines() if line.startswith("strongroom_backup_last_success_timestamp_seconds{")]
    assert sorted(line.split("}")[0] for line in last) == [
        'strongroom_backup_last_success_timestamp_seconds{configuration="archive"',    # never: 0
        'strongroom_backup_last_success_timestamp_seconds{configuration="default"',
        'strongroom_backup_last_success_timestamp_seconds{configuration="offsite"']
    assert 'strongroom_backup_last_success_timestamp_seconds{configuration="archive"} 0.0' in text
    assert 'strongroom_backup_max_age_seconds{configuration="offsite"} 90000.0' in text

    metrics.set_backup_max_ages({"default": 7200.0})              # reload dropped offsite's schedule
    text = generate_latest(metrics.registry).decode()
    assert 'strongroom_backup_max_age_seconds{configuration="default"} 7200.0' in text
    assert 'configuration="offsite"} 90000.0' not in text


def _samples(metrics: Metrics) -> dict[str, dict[tuple, float]]:
    """series name -> {sorted label items: value}, as a scrape would read them."""
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def test_every_job_kind_counts_failed_runs_and_missed_runs_from_zero_at_start(ctx):
    # increase() over a series that appears with its first failure sees no increase:
    # without these zeros, the first failure after a restart would never alert.
    series = _samples(Metrics(ctx.engine, {}, lambda: ctx.settings))
    job_runs, missed = series["strongroom_job_runs_total"], series["strongroom_missed_runs_total"]
    for kind in all_kinds():
        for status in JOB_STATUSES:
            assert job_runs[(("kind", kind), ("status", status))] == 0, (kind, status)
    for kind in schedulable_kinds():
        assert missed[(("kind", kind),)] == 0, kind


def test_a_finished_run_counts_under_its_kind_and_status(ctx):
    metrics = Metrics(ctx.engine, {}, lambda: ctx.settings)
    run = runs.queue(ctx.engine, "verify", trigger="manual")
    metrics.job_finished(dataclasses.replace(run, status="failed", finished_at=utcnow()))
    job_runs = _samples(metrics)["strongroom_job_runs_total"]
    assert job_runs[(("kind", "verify"), ("status", "failed"))] == 1
    assert job_runs[(("kind", "verify"), ("status", "succeeded"))] == 0


def test_no_series_carries_a_job_label_which_prometheus_sets_itself(ctx):
    # A scraped `job` label is renamed exported_job and the target's job="strongroom"
    # takes its place: alerts would name the scrape job, not the job kind that failed.
    text = generate_latest(Metrics(ctx.engine, {}, lambda: ctx.settings).registry).decode()
    assert not re.search(r'[{,]job="', text)


def test_exported_series_are_the_ones_the_alert_rules_are_checked_against(ctx):
    series = _samples(Metrics(ctx.engine, {"default": 3600.0}, lambda: ctx.settings))
    for name, (kind, labels) in METRICS.items():
        names = {name + "_bucket", name + "_sum", name + "_count"} if kind == "histogram" else {name}
        for exported in names & set(series):
            for label_set in series[exported]:
                assert {k for k, _ in label_set} - {"le"} == set(labels), (exported, label_set)
    read_by_rules = set().union(*(re.findall(r"strongroom_[a-z_]+", e) for e in rule_exprs().values()))
    # The audit chain verdict is absent until a first verification: 0 would mean "broken".
    assert read_by_rules - {"strongroom_audit_chain_ok"} <= set(series)
    assert set(series) - exported_series_names() <= {
        "strongroom_leader", "strongroom_control_requests_total", "strongroom_export_rows_total",
        "strongroom_retention_rows_total", "strongroom_database_up", "strongroom_legal_holds_active",
        "strongroom_erasure_requests_pending", "strongroom_backup_snapshots", "strongroom_backup_size_bytes"}


def test_sync_passes_count_rows_per_peer_and_the_database_gives_lag_pending_failures_and_quarantine(ctx):
    from strongroom.core.db.engine import transaction
    from strongroom.core.sync.passes import Problem, quarantine
    from strongroom.core.sync.peers import add_peer, record_failure

    with transaction(ctx.engine) as conn:
        central = add_peer(conn, "central", "postgresql://sync:s3cret@127.0.0.1/central")
        add_peer(conn, "laptop", "sqlite:////tmp/laptop.db")
        record_failure(conn, central, error="database error talking to the peer", now=utcnow(),
                       retry_delay_seconds=60)
        quarantine(conn, central, "clients", {"id": "0190d6c1-0000-7000-8000-000000000001"},
                   Problem("checksum_mismatch", "clients row's checksum does not match its content"))
    seed_clients(ctx, n=2)
    metrics = Metrics(ctx.engine, {}, lambda: ctx.settings)
    run = runs.queue(ctx.engine, "sync", trigger="manual")
    result = {"peers": [{"peer": "laptop", "sent": 5, "received": 7, "seconds": 1.5},
                        {"peer": "central", "error": "database error talking to the peer"}], "failed": ["central"]}
    metrics.job_finished(dataclasses.replace(run, status="failed", finished_at=utcnow(), result=result))
    series = _samples(metrics)
    assert series["strongroom_sync_rows_total"] == {(("direction", "sent"), ("peer", "laptop")): 5,
                                                    (("direction", "received"), ("peer", "laptop")): 7}
    assert series["strongroom_sync_pass_duration_seconds"] == {(("peer", "laptop"),): 1.5}
    assert series["strongroom_sync_peer_failures"] == {(("peer", "central"),): 1, (("peer", "laptop"),): 0}
    assert series["strongroom_sync_pending_rows"][(("peer", "laptop"),)] >= 2     # the clients, and more
    assert set(series["strongroom_sync_lag_seconds"]) == {(("peer", "central"),), (("peer", "laptop"),)}
    assert series["strongroom_sync_quarantined"] == {(): 1}
    assert "s3cret" not in generate_latest(metrics.registry).decode()


def test_each_integrity_check_exports_its_latest_verdict_and_time_labelled_by_name_only(ctx):
    from sqlalchemy import update

    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client
    from strongroom.core.jobs import integrity

    metrics = Metrics(ctx.engine, {}, lambda: ctx.settings)
    assert "strongroom_integrity_check_status" not in _samples(metrics)    # never run: no verdict
    ids = seed_clients(ctx, n=3)
    integrity.run(ctx, {"checks": "row_checksums,orphans"}, lambda *a: None)
    with transaction(ctx.engine) as conn:     # a checksum the row no longer matches
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == ids[1]).values(data_checksum="0" * 64))
    try:
        integrity.run(ctx, {"checks": "row_checksums"}, lambda *a: None)
    except integrity.IntegrityFailure:
        pass
    metrics = Metrics(ctx.engine, {}, lambda: ctx.settings)             # no cached scrape
    series = _samples(metrics)
    status = series["strongroom_integrity_check_status"]
    assert status[(("check", "clients row checksums"),)] == 2          # the newest run: fail
    assert status[(("check", "therapy_sessions row checksums"),)] == 0
    assert status[(("check", "referential orphans"),)] == 0
    when = series["strongroom_integrity_check_last_run_timestamp_seconds"]
    assert set(when) == set(status) and all(v > 1.7e9 for v in when.values())
    assert str(ids[1]) not in generate_latest(metrics.registry).decode()
