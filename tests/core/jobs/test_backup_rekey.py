"""A KEK rotation takes the backup repositories with it: old snapshots still restore and
new backups still run once the retired key file is gone."""
from __future__ import annotations

import uuid

import pytest

from strongroom.core.backup.repo_keys import CONFIG_KEY, PREVIOUS_CONFIG_KEY
from strongroom.core.backup.repository import open_repository
from strongroom.core.context import open_context
from strongroom.core.crypto import kek_rotation
from strongroom.core.crypto.kek import pending_path, read_kek_file
from strongroom.core.db.engine import transaction
from strongroom.core.demo import client_records
from strongroom.core import restore
from strongroom.core.jobs import backup
from strongroom.core.jobs.key_rotation import repository_holders
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.storage import open_target
from strongroom.core.storage.base import StorageError

ACTOR = "test:rekey"


class Crash(Exception):
    """Stands in for the process dying at a chosen instant."""


@pytest.fixture
def backed_up(ctx, tmp_path):
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"target": str(tmp_path / "repo")})})
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Rekey Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(12))
    first = backup.run(ctx, {"actor": "test"}, lambda *a: None)
    return ctx, uuid.UUID(first["snapshot_id"])


def _repo_kek(ctx) -> str:
    return open_repository(open_target(ctx.settings.backup.target), ctx.keyring).config.kek_id


def test_rotation_rewraps_the_repository_so_the_retired_key_is_not_needed(backed_up, tmp_path):
    ctx, first = backed_up
    old_id = ctx.keyring.kek_id
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR, holders=repository_holders(ctx))

    assert result.holders_rewrapped == [open_target(ctx.settings.backup.target).describe()]
    target = open_target(ctx.settings.backup.target)
    assert target.exists(CONFIG_KEY) and not target.exists(PREVIOUS_CONFIG_KEY)
    # Move the retired key offline: only the new key file remains.
    kek_rotation.retired_path(ctx.settings.keys.kek_file, old_id).unlink()
    fresh = open_context(ctx.settings)
    try:
        assert fresh.keyring.kek_ids() == [result.new_kek_id]
        assert _repo_kek(fresh) == result.new_kek_id
        second = backup.run(fresh, {"actor": "test"}, lambda *a: None)
        repo = open_repository(target, fresh.keyring)
        for snapshot in (first, uuid.UUID(second["snapshot_id"])):
            restored = restore.restore(repo, snapshot, f"sqlite:///{tmp_path / f'{snapshot}.db'}")
            assert restored.rows > 12
    finally:
        fresh.close()


def test_an_unreachable_repository_stops_the_rotation_before_the_database(backed_up, monkeypatch):
    ctx, _ = backed_up
    old_id = ctx.keyring.kek_id
    holders = repository_holders(ctx)

    def unreachable(keyring):
        raise StorageError("target unreachable")

    monkeypatch.setattr(holders[0], "rewrap", unreachable)
    with pytest.raises(StorageError):
        kek_rotation.rotate_kek(ctx, actor=ACTOR, holders=holders)
    kek_file = ctx.settings.keys.kek_file
    assert read_kek_file(kek_file).kek_id == old_id and pending_path(kek_file).exists()
    assert _repo_kek(ctx) == old_id

    monkeypatch.undo()
    survivor = open_context(ctx.settings)
    try:
        result = kek_rotation.finish_kek_rotation(survivor, actor=ACTOR, holders=repository_holders(survivor))
        assert result.resumed and _repo_kek(survivor) == result.new_kek_id
    finally:
        survivor.close()


def test_a_crash_after_the_repository_rewrap_opens_with_either_key_and_rerun_converges(
        backed_up, monkeypatch):
    ctx, first = backed_up
    old_id = ctx.keyring.kek_id

    def crash(*_args):
        raise Crash

    monkeypatch.setattr(kek_rotation, "_install_pending", crash)
    with pytest.raises(Crash):
        kek_rotation.rotate_kek(ctx, actor=ACTOR, holders=repository_holders(ctx))
    monkeypatch.undo()
    target = open_target(ctx.settings.backup.target)
    assert target.exists(PREVIOUS_CONFIG_KEY)         # the old-KEK copy is kept until installed
    survivor = open_context(ctx.settings)             # key file + pending: both load
    try:
        assert open_repository(target, survivor.keyring).read_manifest(first).snapshot_id == first
        result = kek_rotation.rotate_kek(survivor, actor=ACTOR, holders=repository_holders(survivor))
        assert result.resumed and result.new_kek_id != old_id
        assert not target.exists(PREVIOUS_CONFIG_KEY) and _repo_kek(survivor) == result.new_kek_id
    finally:
        survivor.close()


def test_a_leftover_previous_config_from_an_earlier_rotation_does_not_block_the_next(backed_up):
    ctx, _ = backed_up
    target = open_target(ctx.settings.backup.target)
    stale = target.get(CONFIG_KEY) + b"\n"      # an earlier rotation's unconfirmed copy
    target.put(PREVIOUS_CONFIG_KEY, stale)
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR, holders=repository_holders(ctx))
    assert _repo_kek(ctx) == result.new_kek_id
    assert not target.exists(PREVIOUS_CONFIG_KEY) or target.get(PREVIOUS_CONFIG_KEY) != stale


def test_every_configurations_repository_is_rewrapped(backed_up, tmp_path):
    from strongroom.core.config import BackupConfigurationSettings

    ctx, _ = backed_up
    offsite = BackupConfigurationSettings(target=str(tmp_path / "offsite"))
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": offsite}})})
    backup.run(ctx, {"actor": "test", "configuration": "offsite"}, lambda *a: None)
    result = kek_rotation.rotate_kek(ctx, actor=ACTOR, holders=repository_holders(ctx))
    assert len(result.holders_rewrapped) == 2
    for url in (ctx.settings.backup.target, offsite.target):
        assert open_repository(open_target(url), ctx.keyring).config.kek_id == result.new_kek_id
