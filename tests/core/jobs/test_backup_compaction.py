"""Chain compaction: a kept incremental survives its base being forgotten, restoring
exactly as before, and nothing a remaining snapshot needs is ever deleted."""
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from strongroom.core.backup.manifest import Manifest
from strongroom.core.backup.repository import open_repository
from strongroom.core.config import KeepPolicy
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.db.models import AuditLog, Backup
from strongroom.core.errors import ConflictError
from strongroom.core.ids import new_id
from strongroom.core import restore
from strongroom.core.jobs import backup, prune
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import update_client
from strongroom.core.storage import open_target
from tests.core.conftest import clients_of, seed_clients, with_backup_target

NOW = datetime.now(timezone.utc)
KEEP_TWO = KeepPolicy(keep_last=2, keep_daily=0, keep_weekly=0, keep_monthly=0)


def _chain_of_four(ctx, tmp_path):
    """s0 (full), s1, s2, s3 (incrementals), a client changed between each; s0 and s1 old."""
    with_backup_target(ctx, tmp_path)
    ids = seed_clients(ctx, n=20)
    snaps = []
    for i in range(4):
        snaps.append(uuid.UUID(backup.run(ctx, {}, lambda *a: None)["snapshot_id"]))
        with transaction(ctx.engine) as conn:
            update_client(conn, ctx.keyring, SYSTEM, ids[i], {"phone": f"555-02{i:02d}"})
    with transaction(ctx.engine) as conn:
        for n, days in ((0, 40), (1, 39), (2, 1), (3, 0.5)):
            conn.execute(update(Backup.__table__).where(Backup.__table__.c.id == snaps[n])
                         .values(started_at=NOW - timedelta(days=days)))
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"retention": KEEP_TWO})})
    return snaps, open_repository(open_target(ctx.settings.backup.target), ctx.keyring)


def _restored_clients(ctx, repo, snapshot_id, path):
    url = f"sqlite:///{path}"
    restore.restore(repo, snapshot_id, url)
    engine = make_engine(url)
    try:
        return clients_of(engine, ctx.keyring)
    finally:
        engine.dispose()


def test_compaction_moves_kept_links_onto_a_new_full_base(ctx, tmp_path):
    snaps, repo = _chain_of_four(ctx, tmp_path)
    assert [m.kind for m in map(repo.read_manifest, snaps)] == ["full", "incremental", "incremental", "incremental"]
    before = {n: _restored_clients(ctx, repo, snaps[n], tmp_path / f"before{n}.db") for n in (2, 3)}

    result = prune.run(ctx, {"actor": "test"}, lambda *a: None)

    assert set(result["forgotten"]) == {str(snaps[0]), str(snaps[1])}
    assert set(result["superseded"]) == {str(snaps[2]), str(snaps[3])}
    assert result["chunks_deleted"] > 0
    mapping = {uuid.UUID(c["from"]): uuid.UUID(c["to"]) for c in result["compacted"]}
    new_base, new_tip = mapping[snaps[2]], mapping[snaps[3]]
    assert repo.list_snapshots() == sorted([new_base, new_tip])
    base, tip = repo.read_manifest(new_base), repo.read_manifest(new_tip)
    assert base.kind == "full" and base.parent_id is None
    assert tip.kind == "incremental" and tip.parent_id == new_base
    assert tip.totals.added_bytes == 0  # the moved link reuses its chunks
    # Each replacement restores to exactly what its original did.
    assert _restored_clients(ctx, repo, new_base, tmp_path / "after2.db") == before[2]
    assert _restored_clients(ctx, repo, new_tip, tmp_path / "after3.db") == before[3]

    table = Backup.__table__
    with ctx.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(table))}
        deletes = conn.execute(select(AuditLog.__table__.c.record_id).where(
            AuditLog.__table__.c.action == "DELETE", AuditLog.__table__.c.table_name == "backups")).scalars().all()
        compacted = conn.execute(select(AuditLog.__table__.c.details).where(
            AuditLog.__table__.c.action == "BACKUP", AuditLog.__table__.c.details.like("%compacted_from%"))).all()
    assert rows[snaps[0]].status == rows[snaps[1]].status == "forgotten"
    assert rows[snaps[2]].status == "superseded" and rows[snaps[2]].superseded_by == new_base
    assert rows[snaps[3]].superseded_by == new_tip
    assert rows[new_base].proof == rows[new_tip].proof == "verified"
    assert rows[new_base].started_at == rows[snaps[2]].started_at  # the data point keeps its time
    assert rows[new_base].configuration_id == rows[snaps[0]].configuration_id is not None
    assert set(deletes) == {str(s) for s in snaps} and len(compacted) == 2

    # The next backup continues the new chain, incrementally.
    nxt = backup.run(ctx, {}, lambda *a: None)
    assert nxt["kind"] == "incremental" and repo.read_manifest(uuid.UUID(nxt["snapshot_id"])).parent_id == new_tip


def test_a_prune_that_compacts_counts_its_progress_in_snapshots(ctx, tmp_path):
    """One unit per run (the console shows "2 / 4 snapshots"): compacting a chain reads
    records and writes and reads back bytes, but a prune's count is the snapshots it has
    forgotten; what compaction is doing is told in the message, with no count of its own."""
    snaps, repo = _chain_of_four(ctx, tmp_path)
    seen: list[tuple[int, int | None, str]] = []
    result = prune.run(ctx, {"actor": "test"}, lambda done, total, message: seen.append((done, total, message)))
    gone = len(result["forgotten"]) + len(result["superseded"])
    compacting = [s for s in seen if s[2].startswith("compacting")]
    assert compacting and {(done, total) for done, total, _ in compacting} == {(0, None)}
    assert any("writing new base" in m for _, _, m in compacting) and any("reading back" in m for _, _, m in compacting)
    assert {total for _, total, _ in seen} <= {None, gone} and seen[-1][:2] == (gone, gone)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)


def test_without_compaction_the_whole_chain_is_kept(ctx, tmp_path):
    snaps, repo = _chain_of_four(ctx, tmp_path)
    ctx.settings = ctx.settings.model_copy(update={"backup": ctx.settings.backup.model_copy(
        update={"retention": KEEP_TWO.model_copy(update={"compact": False})})})
    result = prune.run(ctx, {}, lambda *a: None)
    assert result["forgotten"] == [] and result["compacted"] == []
    assert repo.list_snapshots() == snaps


def test_a_snapshot_that_arrived_on_a_superseded_link_keeps_its_chain(ctx, tmp_path, monkeypatch):
    """A backup that chained onto an original while compaction ran: the check under the
    exclusive lock keeps every link it restores through."""
    snaps, repo = _chain_of_four(ctx, tmp_path)
    real_compact = prune.compaction.compact
    late: list[uuid.UUID] = []

    def compact_then_late_backup(*args, **kwargs):
        mapping = real_compact(*args, **kwargs)
        tip = repo.read_manifest(snaps[3])
        arrived = Manifest.build(repository_id=repo.id, snapshot_id=new_id(), kind="incremental",
                                 parent_id=snaps[3], created_at=tip.created_at, schema_revision=tip.schema_revision,
                                 change_watermark=tip.change_watermark, tables=tip.tables, audit=tip.audit)
        repo.write_manifest(arrived)
        late.append(arrived.snapshot_id)
        return mapping

    monkeypatch.setattr(prune.compaction, "compact", compact_then_late_backup)
    result = prune.run(ctx, {}, lambda *a: None)
    present = set(repo.list_snapshots())
    assert set(snaps) <= present and late[0] in present
    assert result["forgotten"] == [] and result["superseded"] == []
    with ctx.engine.connect() as conn:
        statuses = dict(conn.execute(select(Backup.__table__.c.id, Backup.__table__.c.status)).all())
    assert statuses[snaps[0]] == statuses[snaps[1]] == "succeeded"  # not marked gone: still there


def test_prune_beside_a_running_backup_deletes_nothing(ctx, tmp_path):
    snaps, repo = _chain_of_four(ctx, tmp_path)
    running = repo.acquire_lock("shared", "backup")  # a backup mid-way in another process
    try:
        with pytest.raises(ConflictError, match="exclusive lock"):
            prune.run(ctx, {}, lambda *a: None)
        assert set(snaps) <= set(repo.list_snapshots())
    finally:
        running.release()
    # Compaction already recorded its replacements; the next prune finishes the job.
    result = prune.run(ctx, {}, lambda *a: None)
    assert len(repo.list_snapshots()) == 2
    assert set(result["forgotten"]) == {str(snaps[0]), str(snaps[1])}
    assert set(result["superseded"]) == {str(snaps[2]), str(snaps[3])}
    restore.restore(repo, repo.list_snapshots()[-1], f"sqlite:///{tmp_path / 'final.db'}")


def test_a_chain_at_its_limit_is_rebased_so_backups_stay_incremental(ctx, tmp_path, monkeypatch):
    monkeypatch.setattr(prune, "MAX_CHAIN", 3)
    monkeypatch.setattr(backup, "MAX_CHAIN", 3)
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=5)
    snaps = [uuid.UUID(backup.run(ctx, {}, lambda *a: None)["snapshot_id"]) for _ in range(3)]
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    result = prune.run(ctx, {}, lambda *a: None)
    assert result["superseded"] == [str(snaps[2])] and result["forgotten"] == []
    new_tip = uuid.UUID(result["compacted"][0]["to"])
    assert repo.read_manifest(new_tip).kind == "full"
    nxt = backup.run(ctx, {}, lambda *a: None)
    assert nxt["kind"] == "incremental" and repo.read_manifest(uuid.UUID(nxt["snapshot_id"])).parent_id == new_tip
