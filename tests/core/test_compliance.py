"""Compliance: each check looks at the live system, shows its evidence, and the score
follows the source's weights (encryption 20, backups 25, exports 20, sync 20, audit 15)."""
import os
from datetime import timedelta

import pytest
from sqlalchemy import insert, update
from strongroom.core import audit, compliance
from strongroom.core.auth.users import create_user
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (
    Backup,
    Client,
    JobRun,
    JobStatus,
    Role,
    SyncConflict,
    SyncPeer,
    SyncQuarantine,
    User,
)
from strongroom.core.db.types import utcnow
from strongroom.core.demo import client_records
from strongroom.core.ids import new_id
from strongroom.core.jobs import integrity
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice


def _by_name(report):
    return {c.name: c for c in report.checks}


def test_weights_are_the_sources_and_sum_to_100():
    assert compliance.WEIGHTS == {"encryption": 20, "backups": 25, "exports": 20, "sync": 20, "audit": 15}
    assert sum(compliance.WEIGHTS.values()) == 100


def test_fresh_install_earns_nothing_it_has_not_proven(ctx: Context):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(5))
    report = compliance.report(ctx.settings, ctx.engine)
    assert report.areas["encryption"]["points"] < 20      # no integrity scan has looked yet
    assert report.areas["backups"]["points"] == 0
    for area in ("exports", "sync"):
        assert report.areas[area] == {"weight": 20, "points": 0, "passed": 0, "checks": 0,
                                      "status": "not configured", "forgone": 20, "failed_or_missed_jobs": 0}
    assert report.as_dict()["not_evidenced"] == {"exports": 20, "sync": 20}
    assert not [c for c in report.checks if c.area in ("exports", "sync")]
    checks = _by_name(report)
    assert checks["audit chain verified intact in the last 7 days"].passed is False
    assert "schedule the integrity job" in checks["audit chain verified intact in the last 7 days"].remediation
    assert 0 <= report.score < 40


def test_integrity_run_makes_the_audit_check_pass(ctx: Context):
    integrity.run(ctx, {}, lambda *a: None)
    checks = _by_name(compliance.report(ctx.settings, ctx.engine))
    assert checks["audit chain verified intact in the last 7 days"].passed
    assert checks["audit chain verified intact in the last 7 days"].evidence["result"] == "ok"


def test_a_readable_key_file_fails_the_encryption_check(ctx: Context):
    os.chmod(ctx.settings.keys.kek_file, 0o644)
    check = _by_name(compliance.report(ctx.settings, ctx.engine))["key-encryption key kept private"]
    assert not check.passed and check.evidence["kek_file_mode"] == "0644"


def test_admin_without_two_factors_fails_the_authentication_check(ctx: Context):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        user, _ = create_user(conn, ctx.keyring, ctx.settings, practice, "boss", "correct horse battery 9",
                              Role.OP_ADMIN, actor="test")
        conn.execute(update(User.__table__).where(User.__table__.c.id == user.id).values(totp_enabled=False))
    check = _by_name(compliance.report(ctx.settings, ctx.engine))["accounts that must use two factors do"]
    assert not check.passed and check.evidence["accounts_missing_2fa"] == 1
    assert check.safeguard.startswith("164.312(d)")


def test_an_account_waiting_to_enrol_after_a_2fa_reset_has_no_second_factor_yet(ctx: Context):
    from strongroom.core.auth import management, rbac
    from strongroom.core.principal import Principal

    operator = Principal(actor="local:0", permissions=rbac.role_permissions(Role.OP_ADMIN))
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        create_user(conn, ctx.keyring, ctx.settings, practice, "boss", "correct horse battery 9",
                    Role.OP_ADMIN, actor="test")
    check = _by_name(compliance.report(ctx.settings, ctx.engine))["accounts that must use two factors do"]
    assert check.passed
    with transaction(ctx.engine) as conn:
        management.reset_second_factor(conn, ctx.keyring, ctx.settings, operator, "boss")
    check = _by_name(compliance.report(ctx.settings, ctx.engine))["accounts that must use two factors do"]
    assert not check.passed and check.evidence["accounts_missing_2fa"] == 1


def test_recent_verified_and_drilled_backup_earns_the_backup_points(ctx: Context):
    now = utcnow()
    settings = ctx.settings.model_copy(update={"schedules": {"backup": "0 2 * * *"}})
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [{"id": new_id(), "kind": "full", "status": "succeeded",
                                                 "proof": "drilled", "started_at": now - timedelta(hours=1),
                                                 "finished_at": now, "verified_at": now, "drilled_at": now}])
    assert compliance.report(settings, ctx.engine).areas["backups"]["points"] == 25


def test_stale_sync_conflict_costs_sync_points(ctx: Context):
    with transaction(ctx.engine) as conn:
        peer = new_id()
        conn.execute(insert(SyncPeer.__table__), [{"id": peer, "name": "clinic", "url": "sqlite:///x"}])
        conn.execute(insert(SyncConflict.__table__), [{"id": new_id(), "peer_id": peer, "table_name": "clients",
                                                       "row_id": new_id(), "local": {}, "remote": {},
                                                       "created_at": utcnow() - timedelta(days=3)}])
    report = compliance.report(ctx.settings, ctx.engine)
    assert report.areas["sync"]["status"] == "evidenced"
    assert not _by_name(report)["no sync conflict waits longer than 24 hours"].passed
    assert report.areas["sync"]["points"] < 20
    assert report.as_dict()["checks"][0]["area"] == "encryption"


def test_records_retention_counts_once_policies_are_scheduled(ctx: Context):
    from strongroom.core.retention import policies

    name = "records retention policies are enforced on a schedule"
    check = _by_name(compliance.report(ctx.settings, ctx.engine))[name]
    assert not check.passed and check.evidence["active_policies"] == 0 and "[schedules] retention" in check.remediation
    with transaction(ctx.engine) as conn:
        policies.set_policy(conn, table_name="therapy_sessions", archive_after_days=540, delete_after_days=2190,
                            actor="test")
    assert not _by_name(compliance.report(ctx.settings, ctx.engine))[name].passed   # not scheduled yet
    settings = ctx.settings.model_copy(update={"schedules": {"retention": "0 4 * * *"}})
    check = _by_name(compliance.report(settings, ctx.engine))[name]
    assert check.passed and check.evidence["active_policies"] == 1 and check.safeguard.startswith("164.316")


# --- rules that must lower the score ------------------------------------------------------

def _backup_row(finished, verified=None, drilled=None) -> dict:
    return {"id": new_id(), "kind": "full", "status": "succeeded", "proof": "none",
            "started_at": finished - timedelta(minutes=5), "finished_at": finished,
            "verified_at": verified, "drilled_at": drilled}


def _run_row(kind: str, status: JobStatus, queued, trigger: str = "schedule") -> dict:
    return {"id": new_id(), "job_kind": kind, "trigger": trigger, "status": status, "params": {},
            "progress_done": 0, "queued_at": queued, "started_at": queued, "finished_at": queued}


def _proven_backups(ctx: Context, now) -> None:
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [_backup_row(now, now, now)])


def test_an_unverified_newest_snapshot_costs_backup_points(ctx: Context):
    now = utcnow()
    settings = ctx.settings.model_copy(update={"schedules": {"backup": "0 2 * * *"}})
    _proven_backups(ctx, now - timedelta(hours=2))
    before = compliance.report(settings, ctx.engine, now=now)
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [_backup_row(now - timedelta(minutes=10))])
    after = compliance.report(settings, ctx.engine, now=now)
    assert after.areas["backups"]["points"] < before.areas["backups"]["points"]
    check = _by_name(after)["the newest backups are verified"]
    assert not check.passed and check.evidence["unverified_recent_snapshots"] == 1


def test_a_skipped_scheduled_backup_costs_points(ctx: Context):
    now = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    settings = ctx.settings.model_copy(update={"schedules": {"backup": "0 2 * * *"}})
    _proven_backups(ctx, now - timedelta(hours=10))
    with transaction(ctx.engine) as conn:   # the 02:00 run happened today
        conn.execute(insert(JobRun.__table__), [_run_row("backup", JobStatus.SUCCEEDED,
                                                         now - timedelta(hours=10) + timedelta(seconds=1))])
    before = compliance.report(settings, ctx.engine, now=now)
    assert _by_name(before)["no failed or missed scheduled backups job in the last 7 days"].passed
    later = now + timedelta(days=2)   # two 02:00 fire times pass with no run
    after = compliance.report(settings, ctx.engine, now=later)
    check = _by_name(after)["no failed or missed scheduled backups job in the last 7 days"]
    assert not check.passed and check.evidence["missed"] == {"backup": 2}
    assert after.areas["backups"]["failed_or_missed_jobs"] == 2


def test_every_failing_scheduled_job_costs_points(ctx: Context):
    now = utcnow()
    settings = ctx.settings.model_copy(update={"schedules": {"backup": "0 2 * * *"}})
    _proven_backups(ctx, now - timedelta(hours=1))
    with transaction(ctx.engine) as conn:
        conn.execute(insert(JobRun.__table__), [_run_row("backup", JobStatus.SUCCEEDED, now - timedelta(hours=1))])
    base = compliance.report(settings, ctx.engine, now=now).areas["backups"]["points"]
    with transaction(ctx.engine) as conn:
        conn.execute(insert(JobRun.__table__), [_run_row("verify", JobStatus.FAILED, now - timedelta(days=d))
                                                for d in (1, 2)])
        conn.execute(insert(JobRun.__table__), [_run_row("verify", JobStatus.FAILED, now - timedelta(days=1),
                                                         trigger="manual")])   # a person's try is not a schedule
    area = compliance.report(settings, ctx.engine, now=now).areas["backups"]
    assert area["failed_or_missed_jobs"] == 2
    assert area["points"] < base - 2 * compliance.JOB_PENALTY + 0.01


def test_a_failing_scheduled_sync_keeps_sync_from_full_points(ctx: Context):
    now = utcnow()
    settings = ctx.settings.model_copy(update={"schedules": {"sync": "* * * * *"}})
    with transaction(ctx.engine) as conn:
        conn.execute(insert(SyncPeer.__table__), [{"id": new_id(), "name": "clinic", "url": "sqlite:///x",
                                                   "last_sync_at": now}])
        conn.execute(insert(JobRun.__table__), [_run_row("sync", JobStatus.FAILED, now - timedelta(minutes=m))
                                                for m in range(1, 4)])
    report = compliance.report(settings, ctx.engine, now=now)
    assert report.areas["sync"]["status"] == "evidenced"   # a peer: configured, so it must prove itself
    assert report.areas["sync"]["failed_or_missed_jobs"] >= 3 and report.areas["sync"]["points"] < 20


def test_a_planted_plaintext_ssn_found_by_the_integrity_check_costs_encryption_points(ctx: Context):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        ids: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(3), created=ids)
    integrity.run(ctx, {}, lambda *a: None)
    clean = compliance.report(ctx.settings, ctx.engine)
    name = "the newest integrity scan found no plaintext and no live row on a lost key"
    assert _by_name(clean)[name].passed
    with transaction(ctx.engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == ids[0]).values(ssn_enc=b"078-05-1120"))
    with pytest.raises(integrity.IntegrityFailure):
        integrity.run(ctx, {}, lambda *a: None)
    planted = compliance.report(ctx.settings, ctx.engine)
    assert not _by_name(planted)[name].passed
    assert _by_name(planted)[name].evidence["failed"] == ["clients ciphertext"]
    assert planted.areas["encryption"]["points"] < clean.areas["encryption"]["points"]
    assert "078-05-1120" not in str(planted.as_dict())


def test_a_broken_audit_link_costs_audit_points(ctx: Context):
    with transaction(ctx.engine) as conn:
        for i in range(3):
            audit.append(conn, actor="user:alice", action="READ", table_name="clients", record_id=f"r{i}")
    integrity.run(ctx, {}, lambda *a: None)
    clean = compliance.report(ctx.settings, ctx.engine)
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_logs_append_only_update")
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("UPDATE audit_logs SET actor = 'mallory' WHERE id = 2")
    with pytest.raises(integrity.IntegrityFailure):
        integrity.run(ctx, {}, lambda *a: None)
    broken = compliance.report(ctx.settings, ctx.engine)
    assert not _by_name(broken)["audit chain verified intact in the last 7 days"].passed
    assert broken.areas["audit"]["points"] < clean.areas["audit"]["points"]


def test_score_history_keeps_one_row_per_day(ctx: Context):
    from strongroom.core.db.models import ComplianceScore

    first = compliance.report(ctx.settings, ctx.engine)
    compliance.record_history(ctx.engine, first)
    compliance.record_history(ctx.engine, compliance.Report(first.score - 7, first.areas, [], first.generated_at))
    yesterday = compliance.Report(90, first.areas, [], first.generated_at - timedelta(days=1))
    compliance.record_history(ctx.engine, yesterday)
    assert [h["score"] for h in compliance.history(ctx.engine)] == [90, first.score - 7]
    with ctx.engine.connect() as conn:
        assert len(conn.execute(ComplianceScore.__table__.select()).all()) == 2


def test_score_trend_draws_one_bar_per_day():
    from strongroom.console.tabs.compliance import score_trend

    assert score_trend([0, 50, 100]) == "▁▄█ 100"
    assert score_trend([]) == ""


def _export_row(created, filters: dict, location: str | None = None) -> dict:
    return {"id": new_id(), "requested_by": "user:alice", "format": "csv", "filters": filters,
            "status": "succeeded", "sha256": "0" * 64, "location": location, "created_at": created,
            "finished_at": created}


def test_an_unmasked_unencrypted_export_costs_export_points(ctx: Context):
    from strongroom.core.db.models import Export

    now = utcnow()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Export.__table__), [_export_row(now, {"masking_profile": "masked", "encrypted": False})])
    clean = compliance.report(ctx.settings, ctx.engine, now=now)
    assert clean.areas["exports"]["status"] == "evidenced" and clean.areas["exports"]["points"] == 20
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Export.__table__), [_export_row(now, {"masking_profile": "full", "encrypted": False})])
    report = compliance.report(ctx.settings, ctx.engine, now=now)
    check = _by_name(report)["exports are masked by default, or encrypted when they are not"]
    assert not check.passed and check.evidence["unmasked_unencrypted_last_90_days"] == 1
    assert report.areas["exports"]["points"] < 20


def test_an_export_left_on_disk_past_its_retention_costs_export_points(ctx: Context, tmp_path):
    from strongroom.core.db.models import Export

    now = utcnow()
    left = tmp_path / "old-export"
    left.mkdir()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Export.__table__), [_export_row(now - timedelta(days=45),
                                                            {"masking_profile": "masked"}, str(left))])
    name = "no export left on disk past its retention (30 days by default)"
    check = _by_name(compliance.report(ctx.settings, ctx.engine, now=now))[name]
    assert not check.passed and check.evidence["expired_exports_still_on_disk"] == 1
    left.rmdir()
    assert _by_name(compliance.report(ctx.settings, ctx.engine, now=now))[name].passed


def _peer(conn, name: str, **values) -> None:
    conn.execute(insert(SyncPeer.__table__), [{"id": new_id(), "name": name, "url": f"sqlite:///{name}.db",
                                               **values}])


def test_sync_without_a_peer_is_not_configured_even_when_scheduled(ctx: Context):
    settings = ctx.settings.model_copy(update={"schedules": {"sync": "*/15 * * * *"}})
    with transaction(ctx.engine) as conn:
        # a site that syncs with us, and a peer since removed: neither is one we reach
        _peer(conn, "site-0190d6c1", url="inbound:0190d6c1-0000-7000-8000-000000000001", is_active=False)
        _peer(conn, "removed-0190d6c1", url="removed:0190d6c1-0000-7000-8000-000000000002", is_active=False)
    report = compliance.report(settings, ctx.engine)
    assert report.areas["sync"]["status"] == "not configured"
    assert report.as_dict()["not_evidenced"]["sync"] == 20


def test_sync_earns_its_points_from_passes_that_succeed_in_time(ctx: Context):
    now = utcnow()
    with transaction(ctx.engine) as conn:
        _peer(conn, "central", last_sync_at=now - timedelta(minutes=5))
        _peer(conn, "laptop", last_sync_at=now - timedelta(minutes=30))
    report = compliance.report(ctx.settings, ctx.engine, now=now)
    assert report.areas["sync"]["points"] == 20 and report.areas["sync"]["checks"] == 4

    strict = ctx.settings.model_copy(update={"sync": ctx.settings.sync.model_copy(update={"max_lag_minutes": 10})})
    report = compliance.report(strict, ctx.engine, now=now)
    check = _by_name(report)["the last pass with every active peer succeeded within 10 minutes"]
    assert not check.passed and check.evidence["peers_behind"] == ["laptop"]
    assert report.areas["sync"]["points"] == 15


def test_a_failing_paused_or_never_synced_peer_and_a_quarantined_row_cost_sync_points(ctx: Context):
    now = utcnow()
    with transaction(ctx.engine) as conn:
        _peer(conn, "central", last_sync_at=now - timedelta(minutes=5), failures=2)
        _peer(conn, "north")                                   # never synced
        _peer(conn, "south", is_active=False)                  # paused: not counted as behind
        conn.execute(insert(SyncQuarantine.__table__), [{
            "id": new_id(), "peer_id": None, "table_name": "clients", "row_id": str(new_id()),
            "reason": "checksum_mismatch", "detail": "clients row's checksum does not match its content",
            "image": {}, "status": "open", "received_at": now}])
    checks = _by_name(compliance.report(ctx.settings, ctx.engine, now=now))
    assert checks["at least one sync peer is active"].passed
    behind = checks["the last pass with every active peer succeeded within 1440 minutes"]
    assert not behind.passed and behind.evidence["peers_behind"] == ["central", "north"]
    assert not checks["no row from a peer waits in quarantine"].passed

    with transaction(ctx.engine) as conn:
        conn.execute(update(SyncPeer.__table__).values(is_active=False))
    report = compliance.report(ctx.settings, ctx.engine, now=now)
    assert report.areas["sync"]["status"] == "evidenced"       # paused peers: still configured, proving nothing
    assert not _by_name(report)["at least one sync peer is active"].passed


def test_two_writers_of_the_same_days_score_both_succeed(ctx: Context):
    """The daemon's periodic look and a `strongroom compliance` both keep today's score,
    at the same moment: neither may fail (on PostgreSQL an UPDATE that finds no row and
    then an INSERT raced to a duplicate key, and the CLI got an `internal` error)."""
    import threading

    from strongroom.core.db.models import ComplianceScore

    first = compliance.report(ctx.settings, ctx.engine)
    failures: list[BaseException] = []
    for round_ in range(15):
        day = first.generated_at - timedelta(days=round_)
        start = threading.Barrier(4)

        def write(score: int, day=day, start=start) -> None:
            start.wait()
            try:
                compliance.record_history(ctx.engine, compliance.Report(score, first.areas, [], day))
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(exc)

        threads = [threading.Thread(target=write, args=(s,)) for s in (60, 61, 62, 63)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    with ctx.engine.connect() as conn:
        rows = conn.execute(ComplianceScore.__table__.select()).all()
    assert len(rows) == 15 and {r.score for r in rows} <= {60, 61, 62, 63}
