"""The `restore` job (what the console's restore action runs): audited, never into the
daemon's own database, never scheduled."""
from __future__ import annotations

import pytest

from strongroom.core.config import parse_settings
from strongroom.core.errors import ConfigError, ConflictError, ValidationError
from strongroom.core.jobs import backup, restore
from tests.core.conftest import seed_clients, with_backup_target
from tests.core.jobs.conftest import last_audit


@pytest.fixture
def snapshot(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=6)
    return ctx, backup.run(ctx, {"actor": "test"}, lambda *a: None)["snapshot_id"]


def test_restores_into_an_empty_database_and_audits_it(snapshot, tmp_path):
    ctx, snapshot_id = snapshot
    result = restore.run(ctx, {"snapshot_id": snapshot_id, "dest": f"sqlite:///{tmp_path / 'copy.db'}",
                               "actor": "user:alice"}, lambda *a: None)
    assert result["rows"] > 6
    entry = last_audit(ctx)
    assert (entry["action"], entry["actor"], entry["outcome"]) == ("RESTORE", "user:alice", "success")


def test_a_non_empty_target_is_refused_and_the_refusal_audited(snapshot, tmp_path):
    ctx, snapshot_id = snapshot
    dest = f"sqlite:///{tmp_path / 'copy.db'}"
    restore.run(ctx, {"snapshot_id": snapshot_id, "dest": dest}, lambda *a: None)
    with pytest.raises(ConflictError, match="not empty"):
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": dest, "actor": "user:bob"}, lambda *a: None)
    entry = last_audit(ctx)
    assert (entry["action"], entry["actor"], entry["outcome"]) == ("RESTORE", "user:bob", "failure")


@pytest.mark.parametrize("params, message", [
    ({}, "snapshot_id: Field required; dest: Field required"),
    ({"snapshot_id": "nope", "dest": "sqlite:////tmp/x.db"}, "snapshot_id: must be a UUID"),
])
def test_bad_arguments_are_refused_clearly(snapshot, params, message):
    ctx, _ = snapshot
    with pytest.raises(ValidationError, match=message):
        restore.run(ctx, params, lambda *a: None)


def test_the_daemons_own_database_is_never_a_target(snapshot):
    ctx, snapshot_id = snapshot
    with pytest.raises(ConflictError, match="own live database"):
        restore.run(ctx, {"snapshot_id": snapshot_id, "dest": ctx.settings.database.url, "force": True},
                    lambda *a: None)


def test_restore_cannot_be_scheduled(tmp_path):
    with pytest.raises(ConfigError, match="cannot be scheduled"):
        parse_settings({"data_dir": str(tmp_path), "database": {"url": "sqlite:///x"},
                        "schedules": {"restore": "0 2 * * *"}}, tmp_path / "strongroom.toml")
