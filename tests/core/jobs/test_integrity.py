"""Integrity checks: each named, with a status (ok/warn/fail) and evidence of counts and
row ids, never values. Each test plants the fault its check guards against and sees it
fail; a clean database passes every check."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update
from strongroom.core.context import Context
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, Client, IntegrityCheck, TherapySession
from strongroom.core.db.types import utcnow
from strongroom.core.demo import client_records
from strongroom.core.errors import ValidationError
from strongroom.core.ids import new_id
from strongroom.core.jobs import integrity
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import insert_sessions

_clients, _sessions = Client.__table__, TherapySession.__table__
PLANTED_SSN = "078-05-1120"


def _quiet(*_):
    pass


def _seed(ctx: Context, n: int = 4) -> list:
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "P")
        ids: list = []
        insert_clients(conn, ctx.keyring, SYSTEM, practice, client_records(n), created=ids)
        insert_sessions(conn, ctx.keyring, SYSTEM, [
            {"client_id": cid, "starts_at": utcnow(), "notes": "talked"} for cid in ids])
    return ids


@contextlib.contextmanager
def _unguarded(ctx: Context):
    """A write that bypasses foreign keys and triggers, as a careless restore or a DBA
    would: the faults the checks exist to find."""
    if ctx.engine.dialect.name == "sqlite":
        with ctx.engine.connect() as conn:
            raw = conn.connection.driver_connection
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    yield conn
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
    else:
        with transaction(ctx.engine) as conn:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn


def _run(ctx: Context, **params) -> dict[str, dict]:
    try:
        result = integrity.run(ctx, params, _quiet)
    except integrity.IntegrityFailure as failure:
        result = failure.result
    return {c["name"]: c for c in result["checks"]}


def _no_values(check: dict) -> None:
    assert PLANTED_SSN not in json.dumps(check, default=str)


def test_clean_database_passes_every_check_but_warns_of_no_backup(ctx: Context):
    _seed(ctx)
    checks = _run(ctx, full=True)
    assert {n for n, c in checks.items() if c["status"] == "fail"} == set()
    assert checks["backups verified and drilled"]["status"] == "warn"
    assert checks["clients ciphertext"]["evidence"]["opened"] > 0
    assert checks["clients ciphertext"]["evidence"]["opened_mode"] == "full"
    rows = ctx.engine.connect().execute(select(IntegrityCheck.__table__.c.status)).scalars().all()
    assert set(rows) <= {"ok", "warn"}


def test_null_checksum_fails_the_checksum_check(ctx: Context):
    ids = _seed(ctx)
    with _unguarded(ctx) as conn:
        conn.execute(update(_clients).where(_clients.c.id == ids[1]).values(data_checksum=None))
    check = _run(ctx)["clients row checksums"]
    assert check["status"] == "fail"
    assert check["evidence"]["missing"] == 1 and check["evidence"]["ids"] == [str(ids[1])]


def test_session_pointing_at_a_missing_client_is_an_orphan(ctx: Context):
    ids = _seed(ctx)
    ghost = new_id()
    with _unguarded(ctx) as conn:
        conn.execute(update(_sessions).where(_sessions.c.client_id == ids[0]).values(client_id=ghost))
    check = _run(ctx)["referential orphans"]
    assert check["status"] == "fail"
    finding = check["evidence"]["findings"]["therapy_sessions.client_id"]
    assert finding["missing_parent"] == 1 and finding["status"] == "fail"
    assert str(ghost) not in json.dumps(check)   # row ids of the orphans, not where they point


def test_plaintext_ssn_in_ciphertext_column_fails_and_is_not_echoed(ctx: Context):
    ids = _seed(ctx)
    with _unguarded(ctx) as conn:
        conn.execute(update(_clients).where(_clients.c.id == ids[2]).values(ssn_enc=PLANTED_SSN.encode()))
    check = _run(ctx)["clients ciphertext"]
    assert check["status"] == "fail"
    assert check["evidence"]["malformed"] == {"ssn_enc:short": 1}
    assert check["evidence"]["ids"] == [str(ids[2])]
    _no_values(check)
    stored = ctx.engine.connect().execute(select(IntegrityCheck.__table__.c.evidence).where(
        IntegrityCheck.__table__.c.name == "clients ciphertext")).scalar_one()
    assert PLANTED_SSN not in json.dumps(stored)


def test_ciphertext_moved_to_another_row_fails_to_open(ctx: Context):
    ids = _seed(ctx)
    with ctx.engine.connect() as conn:
        foreign = conn.execute(select(_clients.c.ssn_enc).where(_clients.c.id == ids[0])).scalar_one()
    with _unguarded(ctx) as conn:
        conn.execute(update(_clients).where(_clients.c.id == ids[3]).values(ssn_enc=foreign))
    check = _run(ctx, full=True)["clients ciphertext"]
    assert check["status"] == "fail"
    assert check["evidence"]["malformed_rows"] == 0 and check["evidence"]["failed_to_open"] == 1
    assert check["evidence"]["ids"] == [str(ids[3])]


def test_live_row_on_a_destroyed_key_fails_the_keys_check(ctx: Context):
    ids = _seed(ctx)
    with transaction(ctx.engine) as conn:
        ctx.keyring.destroy_client_keys(conn, ids[0])
    check = _run(ctx)["data keys of live rows"]
    assert check["status"] == "fail"
    assert check["evidence"]["live_rows_on_destroyed_keys"] == 2   # the client and its session
    assert str(ids[0]) in check["evidence"]["ids"]


def test_stale_snapshot_fails_the_backup_check(ctx: Context):
    _seed(ctx, 1)
    old = utcnow() - timedelta(days=30)
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [{"id": new_id(), "kind": "full", "status": "succeeded",
                                                 "proof": "drilled", "started_at": old, "finished_at": old,
                                                 "verified_at": old, "drilled_at": old}])
    check = _run(ctx)["backups verified and drilled"]
    assert check["status"] == "fail"
    (finding,) = check["evidence"]["findings"].values()
    assert "newest snapshot is stale" in finding["problems"] and "not verified recently" in finding["problems"]


def test_fresh_verified_and_drilled_snapshot_passes_the_backup_check(ctx: Context):
    now = utcnow()
    with transaction(ctx.engine) as conn:
        conn.execute(insert(Backup.__table__), [{"id": new_id(), "kind": "full", "status": "succeeded",
                                                 "proof": "drilled", "started_at": now, "finished_at": now,
                                                 "verified_at": now, "drilled_at": now}])
    assert _run(ctx)["backups verified and drilled"]["status"] == "ok"


def test_failed_check_fails_the_job_and_names_it(ctx: Context):
    ids = _seed(ctx)
    with _unguarded(ctx) as conn:
        conn.execute(update(_clients).where(_clients.c.id == ids[0]).values(ssn_enc=PLANTED_SSN.encode()))
    with pytest.raises(integrity.IntegrityFailure) as caught:
        integrity.run(ctx, {}, _quiet)
    assert "clients ciphertext" in caught.value.result["failed"]
    assert PLANTED_SSN not in str(caught.value)


def test_new_configuration_without_a_snapshot_warns_then_fails_when_old(ctx: Context):
    from strongroom.core.db.models import BackupConfiguration
    configs = BackupConfiguration.__table__
    with transaction(ctx.engine) as conn:
        conn.execute(insert(configs), [{"id": new_id(), "name": "nightly", "target": "file:///nowhere"}])
    assert _run(ctx)["backups verified and drilled"]["status"] == "warn"
    with transaction(ctx.engine) as conn:
        conn.execute(update(configs).values(created_at=utcnow() - timedelta(days=20)))
    check = _run(ctx)["backups verified and drilled"]
    assert check["status"] == "fail" and check["evidence"]["findings"]["nightly"]["problems"] == ["no snapshot"]


def test_full_param_from_a_command_line_is_read_as_a_flag(ctx: Context):
    _seed(ctx, 2)
    one_row = ctx.settings.integrity.model_copy(update={"open_sample_rows": 1})
    sampled = dataclasses.replace(ctx, settings=ctx.settings.model_copy(update={"integrity": one_row}))
    assert _run(sampled, full="false")["clients ciphertext"]["evidence"]["opened_mode"] == "sample of 1 rows"
    assert _run(sampled, full="true")["clients ciphertext"]["evidence"]["opened_mode"] == "full"
    with pytest.raises(ValidationError, match="integrity params") as refused:
        integrity.run(ctx, {"full": "maybe"}, _quiet)
    assert "maybe" not in str(refused.value)


def test_checks_can_be_chosen_by_name_and_an_unknown_name_is_refused_unrepeated(ctx: Context):
    _seed(ctx)
    checks = _run(ctx, checks="keys,orphans")
    assert set(checks) == {"data keys of live rows", "referential orphans"}
    with pytest.raises(ValidationError) as refused:
        integrity.run(ctx, {"checks": ["jane.doe@example.org"]}, _quiet)
    assert "integrity params: checks[0]" in str(refused.value) and "jane" not in str(refused.value)


def test_a_row_changed_without_its_checksum_fails_and_the_database_hashes_as_python_does(ctx: Context):
    from sqlalchemy import text
    from strongroom.core.db.models import ClientFile
    from strongroom.core.repository.changes import row_checksum
    ids = _seed(ctx)
    if ctx.engine.dialect.name == "postgresql":      # the in-database rendering is Python's, row for row
        for model in (Client, TherapySession, ClientFile):
            expression = integrity.pg_checksum_sql(model.__table__)
            assert expression is not None
            with transaction(ctx.engine, read_only=True) as conn:
                rows = conn.execute(select(model.__table__)).mappings().all()
                computed = dict(conn.execute(text(f"SELECT id, {expression} FROM {model.__tablename__}")).all())
            assert {r["id"]: row_checksum(dict(r)) for r in rows} == computed
    with _unguarded(ctx) as conn:
        conn.execute(update(_sessions).where(_sessions.c.client_id == ids[2]).values(duration_minutes=5))
    check = _run(ctx, checks="row_checksums")["therapy_sessions row checksums"]
    assert check["status"] == "fail"
    assert check["evidence"]["mismatched"] == 1 and check["evidence"]["missing"] == 0
    with ctx.engine.connect() as conn:
        session_id = conn.execute(select(_sessions.c.id).where(_sessions.c.client_id == ids[2])).scalar_one()
    assert check["evidence"]["ids"] == [str(session_id)]


def test_a_run_counts_its_progress_in_checks_from_first_report_to_last(ctx: Context):
    """One unit per run (the console shows "3 / 9 checks"): every report counts the
    checks done out of the checks asked for, never the audit entries or rows a check
    walks (those are in the message), so the count never falls back or changes scale."""
    _seed(ctx)
    seen: list[tuple[int, int | None, str]] = []
    try:
        integrity.run(ctx, {}, lambda done, total, message: seen.append((done, total, message)))
    except integrity.IntegrityFailure:
        pass
    assert {total for _, total, _ in seen} == {len(integrity.INTEGRITY_CHECKS)}
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert seen[-1][0] == len(integrity.INTEGRITY_CHECKS)
    assert any("checksums of clients" in message for _, _, message in seen)   # the detail, in words
    picked: list[tuple[int, int | None, str]] = []
    integrity.run(ctx, {"checks": ["orphans", "keys"]}, lambda d, t, m: picked.append((d, t, m)))
    assert {total for _, total, _ in picked} == {2} and picked[-1][0] == 2
