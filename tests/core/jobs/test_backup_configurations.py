"""Backup configurations: named ones beside "default", synced into the database
(audited), recorded on every snapshot, each with its own repository and options."""
import uuid

import pytest
from sqlalchemy import select

from strongroom.core.backup import configurations
from strongroom.core.backup.repository import Repository, open_repository
from strongroom.core.config import BackupConfigurationSettings, load_settings
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Backup, BackupConfiguration
from strongroom.core.errors import ConfigError, NotFoundError
from strongroom.core.jobs import backup, verify
from strongroom.core.storage import open_target
from tests.core.conftest import seed_clients, with_backup_target

_cfg = BackupConfiguration.__table__


def _with_offsite(ctx, tmp_path, **options):
    with_backup_target(ctx, tmp_path)
    offsite = BackupConfigurationSettings(target=str(tmp_path / "offsite"), **options)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": offsite}})})


def _audit_events(ctx):
    with ctx.engine.connect() as conn:
        return [r for (r,) in conn.execute(select(AuditLog.__table__.c.details).where(
            AuditLog.__table__.c.table_name == "backup_configurations"))]


def test_sync_creates_updates_and_deactivates_rows_with_an_audit_entry_each(ctx, tmp_path):
    _with_offsite(ctx, tmp_path)
    ids = configurations.sync_configurations(ctx.engine, ctx.settings)
    assert set(ids) == {"default", "offsite"}
    assert configurations.sync_configurations(ctx.engine, ctx.settings) == ids  # idempotent
    assert len(_audit_events(ctx)) == 2
    changed = ctx.settings.backup.configurations["offsite"].model_copy(update={"compression_level": 9})
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {"offsite": changed}})})
    configurations.sync_configurations(ctx.engine, ctx.settings)
    assert '"fields":["compression_level"]' in _audit_events(ctx)[-1]
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"configurations": {}})})
    configurations.sync_configurations(ctx.engine, ctx.settings)
    with ctx.engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(select(_cfg))}
    assert rows["offsite"].is_active is False and rows["offsite"].compression_level == 9
    assert rows["default"].is_active is True and rows["default"].encryption_enabled is True
    assert "backup_configuration_deactivated" in _audit_events(ctx)[-1]


def test_each_configuration_backs_up_into_its_own_repository_and_is_recorded(ctx, tmp_path):
    _with_offsite(ctx, tmp_path, backup_type="full")
    seed_clients(ctx, n=5)
    default = backup.run(ctx, {}, lambda *a: None)
    first = backup.run(ctx, {"configuration": "offsite"}, lambda *a: None)
    second = backup.run(ctx, {"configuration": "offsite"}, lambda *a: None)
    assert first["configuration"] == "offsite" and second["kind"] == "full"  # backup_type full
    offsite = open_repository(open_target(str(tmp_path / "offsite")), ctx.keyring)
    assert [str(i) for i in offsite.list_snapshots()] == [first["snapshot_id"], second["snapshot_id"]]
    with ctx.engine.connect() as conn:
        names = dict(conn.execute(select(_cfg.c.id, _cfg.c.name)).all())
        recorded = {str(r.id): names[r.configuration_id] for r in conn.execute(select(Backup.__table__))}
    assert recorded == {default["snapshot_id"]: "default", first["snapshot_id"]: "offsite",
                        second["snapshot_id"]: "offsite"}
    assert verify.run(ctx, {"configuration": "offsite"}, lambda *a: None)["failed"] == 0


def test_an_unknown_configuration_is_a_clear_error(ctx, tmp_path):
    _with_offsite(ctx, tmp_path)
    with pytest.raises(NotFoundError, match="no backup configuration by that name .*default, offsite"):
        backup.run(ctx, {"configuration": "nope"}, lambda *a: None)


def test_verify_after_backup_fails_a_snapshot_whose_chunk_went_missing(ctx, tmp_path, monkeypatch):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    real = Repository.verify_fast

    def lossy_storage(self, manifest, progress=None):
        # The target acknowledged a write it did not keep (a flaky NAS).
        ref = next(iter(manifest.chunk_refs()))
        self.target.delete(f"chunks/{ref.address[:2]}/{ref.address}")
        return real(self, manifest, progress)
    monkeypatch.setattr(Repository, "verify_fast", lossy_storage)
    with pytest.raises(backup.BackupVerifyFailure, match="verify after backup found 1 problem"):
        backup.run(ctx, {}, lambda *a: None)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(Backup.__table__)).one()
    assert row.status == "failed" and "missing" in row.error
    monkeypatch.setattr(Repository, "verify_fast", real)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"verify_after": False})})
    assert backup.run(ctx, {}, lambda *a: None)["verified_after"] is False


def test_a_backup_with_verify_after_counts_its_progress_in_bytes_throughout(ctx, tmp_path):
    """One unit per run: the console draws a run's done/total as one bar and one count,
    so the verify that closes a backup counts plaintext bytes like the writing before it
    (it counted chunks: a bar in bytes jumped to "12/12")."""
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    seen: list[tuple[int, int | None, str]] = []
    result = backup.run(ctx, {}, lambda done, total, message: seen.append((done, total, message)))
    assert result["verified_after"] is True
    writing = [s for s in seen if not s[2].startswith("verifying")]
    checking = [s for s in seen if s[2].startswith("verifying")]
    assert writing and checking
    assert writing[-1][0] == result["plain_bytes"]                  # what was written, in bytes
    assert {total for _, total, _ in checking} == {result["plain_bytes"]}
    assert checking[-1][0] == result["plain_bytes"]                 # and all of it checked
    assert [done for done, _, _ in checking] == sorted(done for done, _, _ in checking)


@pytest.mark.parametrize("body, key", [
    ('[backup.configurations.offsite]\ncompression_level = 40\n', "backup.configurations.offsite.compression_level"),
    ('[backup.configurations.offsite.retention]\nkeep_last = 0\n', "backup.configurations.offsite.retention.keep_last"),
    ('[backup.configurations.offsite]\ntarget = "relative/dir"\n', "backup.configurations.offsite.target"),
    ('[backup.configurations.offsite]\nsurprise = 1\n', "backup.configurations.offsite.surprise"),
    ('[backup]\nrequire_approval = "maybe"\n', "backup.require_approval"),
    ('[backup]\ntarget = "/srv/b"\n[backup.configurations.two]\ntarget = "file:///srv/b"\n',
     "backup.configurations.two.target"),
    ('[backup.configurations."Off Site"]\n', "backup.configurations"),
])
def test_bad_configuration_values_name_the_dotted_key(tmp_path, body, key):
    path = tmp_path / "strongroom.toml"
    path.write_text('data_dir = "."\n[database]\nurl = "sqlite:///x"\n' + body)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert key in str(err.value) and str(path) in str(err.value)


def test_an_old_single_backup_section_is_the_default_configuration(tmp_path):
    path = tmp_path / "strongroom.toml"
    path.write_text('data_dir = "."\n[database]\nurl = "sqlite:///x"\n[backup]\ntarget = "/srv/old"\n'
                    'compression_level = 7\n[backup.retention]\nkeep_last = 3\n')
    cfg = configurations.resolve(load_settings(path))
    assert (cfg.name, cfg.target, cfg.compression_level, cfg.retention.keep_last) == ("default", "/srv/old", 7, 3)
    assert configurations.resolve(load_settings(path), "default").require_approval is False


def test_snapshot_rows_need_their_configuration(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=2)
    result = backup.run(ctx, {}, lambda *a: None)
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(Backup.__table__.c.configuration_id)
                           .where(Backup.__table__.c.id == uuid.UUID(result["snapshot_id"]))).scalar_one()
        assert conn.execute(select(_cfg.c.name).where(_cfg.c.id == row)).scalar_one() == "default"
