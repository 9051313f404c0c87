"""Full backups restore on their own, into either engine, proven row for row."""
import uuid

import pytest
from sqlalchemy import select, text

from strongroom.core.backup.repository import open_repository
from strongroom.core.config import KeySettings
from strongroom.core.crypto.kek import generate_kek, write_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.crypto.kek import load_keks
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import AuditLog, Backup, Client, DataKey, TherapySession
from strongroom.core.demo import client_records
from strongroom.core.errors import ConflictError, IntegrityError, KeyUnavailableError
from tests.core.conftest import clients_of, seed_clients, with_backup_target
from strongroom.core import restore
from strongroom.core.jobs import backup, verify
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.storage import open_target
from tests.conftest import PG_AVAILABLE, pg_admin, pg_url

@pytest.fixture
def backed_up(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx)
    result = backup.run(ctx, {"actor": "test"}, lambda *a: None)
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    return ctx, repo, uuid.UUID(result["snapshot_id"]), result


def test_backup_records_snapshot_and_audits_it(backed_up):
    ctx, repo, snapshot_id, result = backed_up
    assert result["rows"] > 40 and result["added_bytes"] > 0
    with ctx.engine.connect() as conn:
        row = conn.execute(select(Backup.__table__).where(Backup.__table__.c.id == snapshot_id)).mappings().one()
        entry = conn.execute(select(AuditLog.__table__).order_by(AuditLog.__table__.c.id.desc()).limit(1)).mappings().one()
    assert row["proof"] == "written" and row["status"] == "succeeded"
    assert entry["action"] == "BACKUP" and entry["record_id"] == str(snapshot_id)
    assert repo.list_snapshots() == [snapshot_id]


def test_second_backup_stores_no_new_chunk_data_for_unchanged_tables(backed_up):
    ctx, repo, _, first = backed_up
    second = backup.run(ctx, {}, lambda *a: None)
    assert second["added_bytes"] < first["added_bytes"] / 2


@pytest.mark.parametrize("dest", ["sqlite", "postgresql"])
def test_restore_into_a_fresh_database_equals_the_source_row_for_row(backed_up, tmp_path, dest):
    ctx, repo, snapshot_id, _ = backed_up
    if dest == "sqlite":
        url = f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        if not PG_AVAILABLE:
            pytest.skip("PostgreSQL not answering")
        name = f"sr_restore_{uuid.uuid4().hex[:8]}"
        pg_admin(f'CREATE DATABASE "{name}"')
        url = pg_url(name)
    try:
        result = restore.restore(repo, snapshot_id, url)
        assert result.rows > 40 and result.audit_entries > 0
        target = make_engine(url)
        assert clients_of(target, ctx.keyring) == clients_of(ctx.engine, ctx.keyring)
        with target.connect() as conn:
            notes = conn.execute(select(TherapySession.__table__.c.notes_enc)).scalars().all()
        assert len(notes) == 10
        target.dispose()
    finally:
        if dest == "postgresql":
            pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_restore_refuses_a_non_empty_target_unless_forced(backed_up, tmp_path):
    ctx, repo, snapshot_id, _ = backed_up
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    restore.restore(repo, snapshot_id, url)
    with pytest.raises(ConflictError, match="not empty"):
        restore.restore(repo, snapshot_id, url)
    assert restore.restore(repo, snapshot_id, url, force=True).rows > 40


def test_restore_with_a_different_kek_is_refused_clearly(backed_up, tmp_path):
    ctx, repo, snapshot_id, _ = backed_up
    other = Keyring([load_keks(KeySettings(kek_file=_new_key(tmp_path), kek_env=None, kek_credential=None))[0]])
    with pytest.raises(KeyUnavailableError, match="KEK"):
        open_repository(open_target(ctx.settings.backup.target), other)


def _new_key(tmp_path):
    path = tmp_path / "other.key"
    write_kek_file(path, generate_kek())
    return path


def test_flipped_bit_in_a_chunk_is_named_by_read_data_verify_and_fails_restore(backed_up, tmp_path):
    ctx, repo, snapshot_id, _ = backed_up
    assert verify.run(ctx, {"read_data": True}, lambda *a: None)["failed"] == 0
    chunk = next(p for p in (tmp_path / "repo" / "chunks").rglob("*") if p.is_file())
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    assert verify.run(ctx, {}, lambda *a: None)["failed"] == 0  # fast verify: present, same size
    with pytest.raises(IntegrityError) as err:
        verify.run(ctx, {"read_data": True}, lambda *a: None)
    assert chunk.name in str(err.value)
    with pytest.raises(IntegrityError):
        restore.restore(repo, snapshot_id, f"sqlite:///{tmp_path / 'bad.db'}")


def test_missing_chunk_is_reported_by_fast_verify(backed_up, tmp_path):
    ctx, repo, snapshot_id, _ = backed_up
    chunk = next(p for p in (tmp_path / "repo" / "chunks").rglob("*") if p.is_file())
    chunk.unlink()
    with pytest.raises(IntegrityError) as err:
        verify.run(ctx, {}, lambda *a: None)
    assert chunk.name in str(err.value)


def test_read_data_verify_raises_the_proof_to_verified(backed_up):
    ctx, repo, snapshot_id, _ = backed_up
    verify.run(ctx, {"read_data": "true", "snapshot_id": str(snapshot_id)}, lambda *a: None)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(Backup.__table__).where(Backup.__table__.c.id == snapshot_id)).mappings().one()
    assert row["proof"] == "verified" and row["verified_at"] is not None


# --- incremental snapshots ---------------------------------------------------------------

def _change_some(ctx, ids):
    from strongroom.core.repository.clients import delete_client, update_client
    with transaction(ctx.engine) as conn:
        update_client(conn, ctx.keyring, SYSTEM, ids[0], {"phone": "555-0177", "status": "VIP"})
        update_client(conn, ctx.keyring, SYSTEM, ids[1], {"notes": "moved\tto\\nthe east wing"})
        delete_client(conn, SYSTEM, ids[2])
        practice = conn.execute(select(Client.__table__.c.practice_id).limit(1)).scalar_one()
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(3, seed=99))


@pytest.mark.parametrize("dest", ["sqlite", "postgresql"])
def test_incremental_snapshot_carries_only_changes_and_restores_on_its_own(ctx, tmp_path, dest):
    with_backup_target(ctx, tmp_path)
    ids = seed_clients(ctx, n=60)
    full = backup.run(ctx, {}, lambda *a: None)
    before = clients_of(ctx.engine, ctx.keyring)
    _change_some(ctx, ids)
    inc = backup.run(ctx, {}, lambda *a: None)
    assert full["kind"] == "full" and inc["kind"] == "incremental"
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    manifest = repo.read_manifest(uuid.UUID(inc["snapshot_id"]))
    clients_entry = next(t for t in manifest.tables if t.name == "clients")
    assert clients_entry.mode == "changes" and clients_entry.row_count == 6 and clients_entry.tombstone_count == 1
    assert next(t for t in manifest.tables if t.name == "audit_logs").mode == "append"
    keys_entry = next(t for t in manifest.tables if t.name == "data_keys")
    assert keys_entry.mode == "changes" and keys_entry.row_count == 3      # the new clients' keys only
    assert inc["added_bytes"] < full["added_bytes"] / 3

    if dest == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'inc.db'}", f"sqlite:///{tmp_path / 'base.db'}"]
    else:
        if not PG_AVAILABLE:
            pytest.skip("PostgreSQL not answering")
        names = [f"sr_inc_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        for name in names:
            pg_admin(f'CREATE DATABASE "{name}"')
        urls = [pg_url(n) for n in names]
    try:
        restore.restore(repo, uuid.UUID(inc["snapshot_id"]), urls[0])
        restore.restore(repo, uuid.UUID(full["snapshot_id"]), urls[1])
        now_engine, base_engine = make_engine(urls[0]), make_engine(urls[1])
        assert clients_of(now_engine, ctx.keyring) == clients_of(ctx.engine, ctx.keyring)
        assert clients_of(base_engine, ctx.keyring) == before
        assert _key_records(now_engine, ctx.keyring) == _key_records(ctx.engine, ctx.keyring)
        now_engine.dispose()
        base_engine.dispose()
    finally:
        if dest == "postgresql":
            for name in names:
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _key_records(engine, keyring) -> list:
    """Every key record, the key itself unwrapped: a restore wraps the keys from the key
    bag afresh (a new nonce), so the wrapped bytes differ while the keys are the same."""
    table = DataKey.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id)).mappings().all()
    return [{**r, "wrapped_key": r["wrapped_key"] and keyring.unwrap(r["id"], r["purpose"], r["wrapped_key"],
                                                                     r["kek_id"])} for r in rows]


def test_a_schema_upgrade_starts_a_new_chain(backed_up):
    ctx, repo, _, _ = backed_up
    with transaction(ctx.engine) as conn:      # as if the database had moved to a newer schema
        conn.execute(text("UPDATE alembic_version SET version_num = 'newer'"))
    assert backup.run(ctx, {}, lambda *a: None)["kind"] == "full"


def test_full_flag_starts_a_new_chain(backed_up):
    ctx, repo, _, _ = backed_up
    assert backup.run(ctx, {"full": "true"}, lambda *a: None)["kind"] == "full"


def test_restore_drill_proves_the_newest_snapshot_and_leaves_no_scratch(backed_up):
    from strongroom.core.jobs import restore_drill
    ctx, repo, snapshot_id, _ = backed_up
    result = restore_drill.run(ctx, {}, lambda *a: None)
    assert result["snapshot_id"] == str(snapshot_id) and result["rows"] > 40
    with ctx.engine.connect() as conn:
        row = conn.execute(select(Backup.__table__).where(Backup.__table__.c.id == snapshot_id)).mappings().one()
    assert row["proof"] == "drilled" and row["drilled_at"] is not None
    assert not list(ctx.settings.data_dir.glob(".drill-*"))
