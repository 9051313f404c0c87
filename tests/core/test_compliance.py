"""Compliance: each check looks at the live system, shows its evidence, and the score
follows the source's weights (encryption 20, backups 25, exports 20, sync 20, audit 15)."""
import os
from datetime import timedelta

from sqlalchemy import insert, update

from strongroom.core import compliance
from strongroom.core.auth.users import create_user
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, Role, SyncConflict, SyncPeer, User
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


def test_fresh_install_scores_encryption_but_not_unproven_backups(ctx: Context):
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(5))
    report = compliance.report(ctx.settings, ctx.engine)
    assert report.areas["encryption"]["points"] == 20
    assert report.areas["backups"]["points"] == 0
    assert report.areas["exports"]["points"] == 20 and report.areas["sync"]["points"] == 20
    checks = _by_name(report)
    assert checks["audit chain verified intact in the last 7 days"].passed is False
    assert "schedule the integrity job" in checks["audit chain verified intact in the last 7 days"].remediation
    assert 0 <= report.score < 80


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
    assert report.areas["sync"]["points"] == 0
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
