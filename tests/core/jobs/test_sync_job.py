"""The sync job: one pass per active peer, outcome on the peer's record, one audit entry per pass."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, SyncPeer
from strongroom.core.errors import NotFoundError
from strongroom.core.jobs import sync as sync_job
from strongroom.core.sync import passes
from strongroom.core.sync.peers import add_peer
from tests.core.conftest import client_ids, seed_clients



def _progress(*_args):
    pass


def _laptop_ctx(ctx, laptop) -> Context:
    settings = ctx.settings.model_copy(update={"database": ctx.settings.database.model_copy(update={"url": laptop.url})})
    return Context(settings, laptop.engine, laptop.keyring)


def test_a_pass_per_peer_records_success_and_audits_its_counts(ctx, first_site, join_site):
    laptop = join_site("laptop")
    result = sync_job.run(_laptop_ctx(ctx, laptop), {}, _progress)
    (peer,) = result["peers"]
    # 12 clients and 10 sessions; the practice came with the join, nothing to send back.
    assert (peer["peer"], peer["received"], peer["sent"], result["failed"]) == ("central", 22, 0, [])
    assert client_ids(laptop) == client_ids(first_site)
    with transaction(laptop.engine, read_only=True) as conn:
        record = conn.execute(select(SyncPeer.__table__).where(SyncPeer.__table__.c.name == "central")).mappings().one()
        assert record["last_sync_at"] is not None and record["failures"] == 0 and record["site_id"]
        logs = AuditLog.__table__
        entry = conn.execute(select(logs.c.details).where(logs.c.action == "SYNC", logs.c.table_name == "sync_peers")
                             .order_by(logs.c.id.desc())).scalars().first()
        assert '"event":"pass"' in entry.replace(" ", "") and '"received":22' in entry.replace(" ", "")


def test_a_pass_with_default_settings_moves_up_to_2000_rows_a_batch(ctx, first_site, join_site, monkeypatch):
    """The default batch is the one bench/sync.py measures: at the 500 rows it once was,
    the same pass made four times the commits and queries and took 1.6 times as long."""
    seed_clients(ctx, 600)        # with the site's 12: more than 500, fewer than 2,000
    laptop = join_site("laptop")
    batches: list[tuple[str, int]] = []
    apply_batch = passes.apply_batch

    def counted(conn, keyring, spec, batch, **kwargs):
        batches.append((spec.name, len(batch)))
        return apply_batch(conn, keyring, spec, batch, **kwargs)
    monkeypatch.setattr(passes, "apply_batch", counted)
    result = sync_job.run(_laptop_ctx(ctx, laptop), {}, _progress)
    assert result["failed"] == [] and client_ids(laptop) == client_ids(first_site)
    assert [size for table, size in batches if table == "clients"] == [612]


def test_a_run_counts_its_progress_in_peers(ctx, first_site, join_site):
    """One unit per run (the console shows "0 / 1 peers" then "1 / 1 peers"): what a pass
    is doing with a peer is told in the message; the count stays at the peers done, out
    of the peers to sync, from the first report to the last."""
    laptop = join_site("laptop")
    seen: list[tuple[int, int | None, str]] = []
    sync_job.run(_laptop_ctx(ctx, laptop), {}, lambda done, total, message: seen.append((done, total, message)))
    assert len(seen) > 2 and {total for _, total, _ in seen} == {1}
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen) and seen[-1][0] == 1
    assert any(message.startswith("central: ") for _, _, message in seen)


def test_an_unreachable_peer_fails_and_is_counted_with_backoff(ctx, first_site, join_site, tmp_path):
    laptop = join_site("laptop")
    with transaction(laptop.engine) as conn:
        add_peer(conn, "gone", f"sqlite:///{tmp_path}/missing/dir/none.db")
    lctx = _laptop_ctx(ctx, laptop)
    lctx.settings = lctx.settings.model_copy(update={"sync": lctx.settings.sync.model_copy(
        update={"tables": {}})})
    with pytest.raises(sync_job.SyncFailure) as failure:
        sync_job.run(lctx, {}, _progress)
    assert failure.value.result["failed"] == ["gone"]
    with transaction(laptop.engine, read_only=True) as conn:
        gone = conn.execute(select(SyncPeer.__table__).where(SyncPeer.__table__.c.name == "gone")).mappings().one()
        assert gone["failures"] == 1 and gone["next_attempt_at"] is not None and gone["last_error"]
        assert "missing" not in gone["last_error"]     # no path or URL in the error


def test_an_unknown_peer_is_not_found(ctx, first_site, join_site):
    laptop = join_site("laptop")
    with pytest.raises(NotFoundError):
        sync_job.run(_laptop_ctx(ctx, laptop), {"peer": "nobody"}, _progress)


def test_the_integrity_job_compares_each_peer_and_warns_of_rows_that_differ(ctx, first_site, join_site):
    from strongroom.core.jobs import integrity
    from strongroom.core.repository.clients import update_client
    from tests.core.conftest import WRITER
    laptop = join_site("laptop")
    lctx = _laptop_ctx(ctx, laptop)
    sync_job.run(lctx, {}, _progress)
    checks = integrity.run(lctx, {"checks": ["sync"]}, _progress)["checks"]
    assert [(c["name"], c["status"], c["actual"]) for c in checks] == [
        ("sync consistency with central", "ok", "identical")]
    cid = client_ids(first_site)[0]
    with transaction(first_site.engine) as conn:
        update_client(conn, first_site.keyring, WRITER, cid, {"phone": "555-0001"})
    (check,) = integrity.run(lctx, {"checks": ["sync"]}, _progress)["checks"]
    assert check["status"] == "warn" and check["evidence"]["ids"] == [str(cid)]
    assert check["evidence"]["differing_by_table"] == {"clients": {"missing_here": 0, "missing_there": 0,
                                                                   "differing": 1}}


def test_without_peers_the_integrity_job_has_no_sync_check(ctx):
    from strongroom.core.jobs import integrity
    assert integrity.run(ctx, {"checks": ["sync"]}, _progress)["checks"] == []
