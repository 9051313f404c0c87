"""Unaudited changes: a row that changed between the two newest snapshots must have an
audit entry in between. A change through the application passes; the same change made
behind its back fails, naming the row; manifests that cannot be read are a clear
failure, never an exception."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select, text, update
from strongroom.core.backup.layout import manifest_key
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Client, IntegrityCheck, TherapySession
from strongroom.core.integrity.unaudited import check_unaudited
from strongroom.core.jobs import backup, integrity
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import delete_client, update_client
from strongroom.core.repository.sessions import insert_sessions
from tests.core.conftest import seed_clients, with_backup_target

_clients, _sessions = Client.__table__, TherapySession.__table__
SECRET = "Zéllér secret note"


def _quiet(*_):
    pass


@pytest.fixture
def seeded(ctx: Context, tmp_path):
    """A practice with clients and sessions and one full snapshot of it."""
    repo = with_backup_target(ctx, tmp_path)
    ids = seed_clients(ctx, n=12)
    first = backup.run(ctx, {"actor": "test"}, _quiet)
    return ctx, repo, ids, uuid.UUID(first["snapshot_id"])


def _snapshot(ctx: Context, **params) -> uuid.UUID:
    return uuid.UUID(backup.run(ctx, {"actor": "test", **params}, _quiet)["snapshot_id"])


def _behind_the_back(ctx: Context, statement, *params) -> None:
    """A write with no audit entry: the application's transaction marker on PostgreSQL
    (so the bypass trigger stands aside) without the application's audit call; a plain
    write on SQLite, which has no trigger."""
    with transaction(ctx.engine) as conn:
        conn.execute(statement, *params)


def _check(ctx: Context) -> dict:
    return check_unaudited(ctx, _quiet)


def _finding(check: dict) -> dict:
    (finding,) = check["evidence"]["findings"].values()
    return finding


def test_fewer_than_two_snapshots_warns_nothing_to_compare(seeded):
    ctx, *_ = seeded
    check = _check(ctx)
    assert check["status"] == "warn"
    assert "nothing to compare" in _finding(check)["problem"]


def test_no_backup_configured_warns(ctx: Context):
    check = _check(ctx)
    assert check["status"] == "warn" and check["actual"] == "no backup configured"


def test_changes_made_through_the_application_pass(seeded):
    ctx, _, ids, _ = seeded
    with transaction(ctx.engine) as conn:
        update_client(conn, ctx.keyring, SYSTEM, ids[0], {"phone": "555-0100"})
        delete_client(conn, SYSTEM, ids[1])
        insert_sessions(conn, ctx.keyring, SYSTEM, [{"client_id": ids[2], "starts_at": datetime.now(timezone.utc),
                                                     "notes": SECRET}] * 3)
    _snapshot(ctx)
    check = _check(ctx)
    finding = _finding(check)
    assert check["status"] == "ok", finding
    assert finding["changed"] == 5 and finding["unaudited"] == 0
    assert finding["audited"] == 2 and finding["by_bulk_entry"] == 3
    assert finding["tables"]["therapy_sessions"]["changed"] == 3


@pytest.mark.parametrize("full", [True, False], ids=["full", "incremental"])
def test_update_behind_the_applications_back_fails_naming_the_row(seeded, full):
    ctx, _, ids, _ = seeded
    with transaction(ctx.engine) as conn:
        update_client(conn, ctx.keyring, SYSTEM, ids[0], {"phone": "555-0100"})   # audited: not reported
    values = {"data_sensitivity": "restricted", "updated_at": datetime.now(timezone.utc)}
    if not full:
        values["sync_version"] = 10**12     # carried by an incremental snapshot as a changed row
    _behind_the_back(ctx, update(_clients).where(_clients.c.id == ids[5]).values(**values))
    _snapshot(ctx, full=full)
    check = _check(ctx)
    finding = _finding(check)
    assert check["status"] == "fail", finding
    assert finding["unaudited"] == 1 and finding["audited"] == 1
    assert finding["ids"] == {"clients": [str(ids[5])]}
    assert finding["newer_kind"] == ("full" if full else "incremental")
    stored = ctx.engine.connect().execute(select(IntegrityCheck.__table__.c.status).where(
        IntegrityCheck.__table__.c.check_type == "unaudited")).scalars().all()
    assert stored == ["fail"]


def test_a_session_changed_behind_the_back_is_reported_by_its_id_never_its_value(seeded):
    ctx, _, _, _ = seeded
    with ctx.engine.connect() as conn:
        session_id, notes = conn.execute(select(_sessions.c.id, _sessions.c.notes_enc).limit(1)).one()
    _behind_the_back(ctx, update(_sessions).where(_sessions.c.id == session_id).values(
        notes_enc=SECRET.encode(), sync_version=10**12))
    _snapshot(ctx)
    check = _check(ctx)
    assert check["status"] == "fail"
    assert _finding(check)["ids"] == {"therapy_sessions": [str(session_id)]}
    assert SECRET not in json.dumps(check, default=str)
    assert notes.hex() not in json.dumps(check, default=str)


def test_a_row_inserted_behind_the_back_is_reported(seeded):
    ctx, _, ids, _ = seeded
    with ctx.engine.connect() as conn:
        row = dict(conn.execute(select(_clients).where(_clients.c.id == ids[3])).mappings().one())
    ghost = uuid.UUID(int=uuid.UUID(str(ids[3])).int + 1)
    row.update(id=ghost, sync_version=10**12)
    _behind_the_back(ctx, insert(_clients), [row])
    _snapshot(ctx)
    finding = _finding(_check(ctx))
    assert finding["status"] == "fail" and finding["ids"] == {"clients": [str(ghost)]}


def test_a_direct_write_the_database_trigger_audits_is_accounted_for(seeded):
    ctx, _, ids, _ = seeded
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL audits writes that bypass the application")
    with ctx.engine.begin() as conn:       # no application marker: the trigger audits it
        conn.execute(text("SET LOCAL strongroom.scope = 'system'"))
        conn.execute(update(_clients).where(_clients.c.id == ids[4]).values(data_sensitivity="restricted"))
    _snapshot(ctx, full=True)
    finding = _finding(_check(ctx))
    assert finding["status"] == "ok" and finding["audited"] == 1


def test_a_tampered_manifest_fails_clearly_and_raises_nothing(seeded):
    ctx, repo, ids, _ = seeded
    newer = _snapshot(ctx)
    path = repo / manifest_key(newer)
    document = json.loads(path.read_bytes())
    document["change_watermark"] += 1          # an edit only the HMAC can tell
    path.write_bytes(json.dumps(document).encode())
    finding = _finding(_check(ctx))
    assert finding["status"] == "fail"
    assert "cannot compare" in finding["problem"] and "HMAC" in finding["problem"]


def test_a_missing_manifest_fails_clearly_and_the_job_names_the_check(seeded):
    ctx, repo, _, first = seeded
    _snapshot(ctx)
    (repo / manifest_key(first)).unlink()
    with pytest.raises(integrity.IntegrityFailure) as caught:
        integrity.run(ctx, {"checks": "unaudited"}, _quiet)
    (check,) = caught.value.result["checks"]
    assert check["name"] == "unaudited changes" and check["status"] == "fail"
    assert "cannot compare" in _finding(check)["problem"]


def test_a_garbled_chunk_fails_clearly(seeded):
    ctx, repo, _, _ = seeded
    _snapshot(ctx, full=True)
    for chunk in (repo / "chunks").rglob("*"):
        if chunk.is_file():
            chunk.write_bytes(b"\x01" + b"\x00" * 64)
    finding = _finding(_check(ctx))
    assert finding["status"] == "fail" and "IntegrityError" in finding["problem"]
