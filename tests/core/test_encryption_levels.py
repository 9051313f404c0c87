"""Encryption levels: named levels mapped to requirements checked against the running
configuration, set only when met, never weaker than standard, shown with evidence in the
compliance report."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from strongroom.core import compliance, encryption_levels
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Practice
from strongroom.core.errors import ConflictError, ValidationError
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import create_practice, only_practice


@pytest.fixture(autouse=True)
def practice(ctx):
    with transaction(ctx.engine) as conn:
        return create_practice(conn, SYSTEM, "Level Practice")


def _set(ctx, level, settings=None):
    with transaction(ctx.engine) as conn:
        return encryption_levels.set_level(settings or ctx.settings, conn, only_practice(conn), level, actor="test")


def _status(ctx, settings=None):
    with transaction(ctx.engine, read_only=True) as conn:
        return encryption_levels.status(settings or ctx.settings, conn, only_practice(conn))


def _with_locked_backup(ctx):
    backup = ctx.settings.backup.model_copy(update={"target": "s3://vault/strongroom?object_lock_days=30"})
    return ctx.settings.model_copy(update={"backup": backup})


def test_standard_is_in_force_by_default_and_met(ctx):
    status = _status(ctx)
    assert status["level"] == "standard" and status["met"]
    assert {r["level"] for r in status["requirements"]} == {"standard"}
    assert status["requirements"][0]["evidence"]["cipher"] == "AES-256-GCM"


def test_none_is_refused_and_an_unknown_level_is_refused_without_echoing_it(ctx):
    with pytest.raises(ValidationError, match="no level may be weaker than standard"):
        _set(ctx, "none")
    with pytest.raises(ValidationError) as refused:
        _set(ctx, "ultra<script>")
    assert "<script>" not in str(refused.value)
    assert _status(ctx)["level"] == "standard"


def test_high_is_refused_without_an_immutable_copy_naming_it_and_nothing_changes(ctx):
    with transaction(ctx.engine, read_only=True) as conn:
        before = conn.execute(select(Practice.__table__)).mappings().one()
    with pytest.raises(ConflictError) as refused:
        _set(ctx, "high")
    assert "immutable copy (S3 Object Lock)" in str(refused.value) and "object_lock_days" in str(refused.value)
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(Practice.__table__)).mappings().one() == before


def test_high_is_set_when_a_backup_is_object_locked_and_travels_as_a_practice_change(ctx):
    settings = _with_locked_backup(ctx)
    with transaction(ctx.engine, read_only=True) as conn:
        version = conn.execute(select(Practice.__table__.c.sync_version)).scalar()
    status = _set(ctx, "high", settings)
    assert status["level"] == "high" and status["met"]
    with transaction(ctx.engine, read_only=True) as conn:
        row = conn.execute(select(Practice.__table__)).mappings().one()
    assert row["settings"]["encryption_level"] == "high" and row["sync_version"] > version


def test_military_needs_a_kms_kek_and_four_eyes_exports(ctx):
    with pytest.raises(ConflictError) as refused:
        _set(ctx, "military", _with_locked_backup(ctx))
    assert "key management service" in str(refused.value) and "four-eyes" in str(refused.value)


def test_the_compliance_report_shows_the_level_and_fails_when_the_configuration_falls_short(ctx):
    _set(ctx, "high", _with_locked_backup(ctx))
    checks = [c for c in compliance.report(ctx.settings, ctx.engine).checks if c.name.startswith("encryption level")]
    (check,) = checks
    assert check.name == "encryption level high in force and met" and check.passed is False
    assert check.evidence["unmet"] == ["backups kept on an immutable copy (S3 Object Lock)"]
    (check,) = [c for c in compliance.report(_with_locked_backup(ctx), ctx.engine).checks
                if c.name.startswith("encryption level")]
    assert check.passed is True
