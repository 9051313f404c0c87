"""Records retention: policies archive then delete on a controlled clock, legal holds
block both, erasure needs a second person and crypto-shreds the client, every action is
audited without PHI, and bad input is refused with nothing changed."""
import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from strongroom.core import audit
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (AuditLog, Client, DataKey, ErasureRequest, KeyState, LegalHold,
                                       RetentionArchive, RetentionPolicy, TherapySession)
from strongroom.core.errors import (ConflictError, KeyUnavailableError, NotFoundError, PermissionDenied,
                                    ValidationError)
from strongroom.core.jobs import retention as job
from strongroom.core.principal import Principal
from strongroom.core.repository import clients as clients_repo
from strongroom.core.repository import sessions as sessions_repo
from strongroom.core.repository.changes import row_checksum
from strongroom.core.repository.practices import create_practice
from strongroom.core.retention import erasure, holds, policies
from strongroom.core.files.store import open_files_target

CLINICIAN = Principal("user:clinician", frozenset({"table:*:*", "phi:read"}))
DAY = timedelta(days=1)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
_clients, _sessions, _ledger = Client.__table__, TherapySession.__table__, RetentionArchive.__table__
_keys, _log = DataKey.__table__, AuditLog.__table__


@pytest.fixture
def practice(ctx):
    with transaction(ctx.engine) as conn:
        return create_practice(conn, Principal("system", frozenset({"*"})), "Retention Practice")


def _client(ctx, practice, last_name="Ashford", **extra):
    with transaction(ctx.engine) as conn:
        return clients_repo.create_client(conn, ctx.keyring, CLINICIAN, practice,
                                          {"first_name": "Avery", "last_name": last_name,
                                           "ssn": "912-34-5678", **extra})


def _session(ctx, client_id, starts_at):
    with transaction(ctx.engine) as conn:
        return sessions_repo.create_session(conn, ctx.keyring, CLINICIAN, {
            "client_id": client_id, "starts_at": starts_at, "notes": "Client reported work stress."})


def _policy(ctx, table, archive, delete=None, actor="user:admin"):
    with transaction(ctx.engine) as conn:
        return policies.set_policy(conn, table_name=table, archive_after_days=archive,
                                   delete_after_days=delete, actor=actor)


def _row(ctx, table, row_id):
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(table).where(table.c.id == row_id)).mappings().one())


def _archived(ctx, row_id):
    with ctx.engine.connect() as conn:
        return conn.execute(select(_ledger).where(_ledger.c.row_id == row_id)).mappings().first()


def _actions(ctx, *names):
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(_log.c.action, _log.c.outcome, _log.c.details, _log.c.actor)
                                 .where(_log.c.action.in_(names)).order_by(_log.c.id)).all())


def _apply(ctx, now):
    return job.apply(ctx, now=now, actor="system")


# --- policies ----------------------------------------------------------------------------

@pytest.mark.parametrize("table, archive, delete, message", [
    ("audit_logs", 30, 60, "cannot have a retention policy"),
    ("therapy_sessions", 0, 60, "between 1 and"),
    ("therapy_sessions", -5, None, "between 1 and"),
    ("therapy_sessions", 30, 10, "must not be less than archive_after_days"),
    ("therapy_sessions", None, 60, "archive_after_days is required"),
    ("therapy_sessions", "30", None, "whole number"),
    ("therapy_sessions", 30, 40000, "between 1 and"),
])
def test_a_bad_policy_is_refused_and_nothing_is_written(ctx, table, archive, delete, message):
    with pytest.raises(ValidationError, match=message):
        _policy(ctx, table, archive, delete)
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RetentionPolicy.__table__)).scalar() == 0
    assert _actions(ctx, "RETENTION_POLICY") == []


def test_setting_a_policy_again_replaces_it_and_is_audited(ctx):
    first = _policy(ctx, "therapy_sessions", 30, 60)
    second = _policy(ctx, "therapy_sessions", 90, None)
    assert second.id == first.id and (second.archive_after_days, second.delete_after_days) == (90, None)
    entries = _actions(ctx, "RETENTION_POLICY")
    assert len(entries) == 2 and '"before":{"active":true,"archive_after_days":30' in entries[1].details


# --- archive and delete -------------------------------------------------------------------

def test_sessions_are_archived_then_deleted_no_sooner_than_the_policy_allows(ctx, practice):
    client = _client(ctx, practice)
    old = _session(ctx, client, NOW - 100 * DAY)
    recent = _session(ctx, client, NOW - 5 * DAY)
    _policy(ctx, "therapy_sessions", 30, 60)

    first = _apply(ctx, NOW)
    assert first["tables"]["therapy_sessions"]["archived"] == 1
    assert _archived(ctx, old)["archived_at"] == NOW and _archived(ctx, recent) is None
    # Already past 60 days, but archived only now: not deleted in the same run...
    assert _row(ctx, _sessions, old)["deleted_at"] is None
    # ...nor by a repeat run, nor before the 30-day archive-to-delete interval has passed.
    assert _apply(ctx, NOW)["tables"]["therapy_sessions"] == {"archived": 0, "deleted": 0,
                                                              "keys_destroyed": 0, "blocked": 0}
    assert _apply(ctx, NOW + 29 * DAY)["tables"]["therapy_sessions"]["deleted"] == 0

    before = _row(ctx, _sessions, old)
    done = _apply(ctx, NOW + 30 * DAY)
    assert done["tables"]["therapy_sessions"]["deleted"] == 1
    after = _row(ctx, _sessions, old)
    assert after["deleted_at"] == NOW + 30 * DAY and after["notes_enc"] is None
    assert after["sync_version"] > before["sync_version"]   # incremental backups and sync see it
    assert after["data_checksum"] == row_checksum(after)
    assert _archived(ctx, old)["deleted_at"] == NOW + 30 * DAY
    assert _row(ctx, _sessions, recent)["deleted_at"] is None   # archived meanwhile, not yet deleted
    assert _archived(ctx, recent) is not None

    archive_entries = _actions(ctx, "RETENTION_ARCHIVE")
    delete_entries = _actions(ctx, "RETENTION_DELETE")
    assert len(delete_entries) == 1 and str(old) in delete_entries[0].details
    assert all("work stress" not in e.details for e in archive_entries + delete_entries)
    assert audit.verify(ctx.engine).ok


def test_an_inactive_client_is_archived_then_deleted_by_crypto_shredding(ctx, practice):
    gone = _client(ctx, practice, "Ashford")
    _session(ctx, gone, NOW - 10 * DAY)
    active = _client(ctx, practice, "Brightwater")
    _session(ctx, active, NOW + 390 * DAY)   # a booked appointment keeps a client active
    _policy(ctx, "clients", 365, 730)

    _apply(ctx, NOW + 400 * DAY)
    assert _row(ctx, _clients, gone)["status"].value == "INACTIVE" and _archived(ctx, gone) is not None
    assert _archived(ctx, active) is None

    _apply(ctx, NOW + 800 * DAY)
    row = _row(ctx, _clients, gone)
    assert row["deleted_at"] is not None and row["data_checksum"] == row_checksum(row)
    with ctx.engine.connect() as conn:
        keys = conn.execute(select(_keys).where(_keys.c.client_id == gone)).mappings().all()
        sessions_left = conn.execute(select(func.count()).select_from(_sessions).where(
            _sessions.c.client_id == gone, _sessions.c.deleted_at.is_(None))).scalar()
    assert keys and all(k["state"] == KeyState.DESTROYED and k["wrapped_key"] is None and k["destroyed_at"]
                        for k in keys)
    assert sessions_left == 0
    with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
        with transaction(ctx.engine) as conn:
            clients_repo.get_client(conn, ctx.keyring, CLINICIAN, gone, include_deleted=True)
    with transaction(ctx.engine) as conn:
        assert clients_repo.get_client(conn, ctx.keyring, CLINICIAN, active)["last_name"] == "Brightwater"


def test_retention_expiry_date_brings_archiving_forward_and_holds_deletion_back(ctx, practice):
    expiry = (NOW + 1000 * DAY).date()
    client = _client(ctx, practice, retention_expiry_date=expiry)
    with transaction(ctx.engine) as conn:
        conn.execute(update(_clients).where(_clients.c.id == client).values(retention_expiry_date=(NOW - DAY).date()))
    _policy(ctx, "clients", 365, 366)
    _apply(ctx, NOW)
    assert _archived(ctx, client) is not None   # expired before 365 days of inactivity
    with transaction(ctx.engine) as conn:
        conn.execute(update(_clients).where(_clients.c.id == client).values(retention_expiry_date=expiry))
    _apply(ctx, NOW + 500 * DAY)
    assert _row(ctx, _clients, client)["deleted_at"] is None   # the expiry date has not come
    _apply(ctx, NOW + 1001 * DAY)
    assert _row(ctx, _clients, client)["deleted_at"] is not None


# --- legal holds ----------------------------------------------------------------------------

def test_a_legal_hold_blocks_archive_and_delete_until_released(ctx, practice):
    held = _client(ctx, practice, "Ashford")
    free = _client(ctx, practice, "Brightwater")
    held_session = _session(ctx, held, NOW - 100 * DAY)
    free_session = _session(ctx, free, NOW - 100 * DAY)
    _policy(ctx, "therapy_sessions", 30, 30)
    with transaction(ctx.engine) as conn:
        hold = holds.place_hold(conn, actor="user:counsel", reason="Matter 2026-114", client_id=held)
    assert hold.practice_id == practice and hold.scope == "client"

    result = _apply(ctx, NOW)
    assert result["tables"]["therapy_sessions"]["blocked"] == 1
    assert _archived(ctx, held_session) is None and _archived(ctx, free_session) is not None
    with ctx.engine.connect() as conn:
        upcoming = job.plan(conn, now=NOW + DAY, horizon_days=0)
    blocked = [a for a in upcoming["actions"] if a["row_id"] == held_session]
    assert blocked and blocked[0]["blocked_by"] == hold.id and blocked[0]["action"] == "archive"

    with transaction(ctx.engine) as conn:
        holds.release_hold(conn, hold.id, actor="user:counsel")
    _apply(ctx, NOW + DAY)
    assert _archived(ctx, held_session) is not None
    assert _row(ctx, _sessions, free_session)["deleted_at"] is not None

    # A hold on the whole practice blocks every row of it, deletes included.
    with transaction(ctx.engine) as conn:
        everything = holds.place_hold(conn, actor="user:counsel", reason="Regulator inquiry")
    assert everything.scope == "practice"
    assert _apply(ctx, NOW + 2 * DAY)["tables"]["therapy_sessions"]["blocked"] == 1
    assert _row(ctx, _sessions, held_session)["deleted_at"] is None
    names = [a.action for a in _actions(ctx, "LEGAL_HOLD", "LEGAL_HOLD_RELEASE")]
    assert names == ["LEGAL_HOLD", "LEGAL_HOLD_RELEASE", "LEGAL_HOLD"]
    assert all("Matter" not in a.details and "Regulator" not in a.details
               for a in _actions(ctx, "LEGAL_HOLD", "LEGAL_HOLD_RELEASE"))


def test_bad_hold_input_is_refused_and_nothing_is_written(ctx, practice):
    client = _client(ctx, practice)
    with pytest.raises(ValidationError, match="reason"):
        with transaction(ctx.engine) as conn:
            holds.place_hold(conn, actor="user:counsel", reason="   ", client_id=client)
    with pytest.raises(NotFoundError, match="client"):
        with transaction(ctx.engine) as conn:
            holds.place_hold(conn, actor="user:counsel", reason="x", client_id=uuid.uuid4())
    with pytest.raises(ValidationError, match="does not belong"):
        with transaction(ctx.engine) as conn:
            holds.place_hold(conn, actor="user:counsel", reason="x", client_id=client, practice_id=uuid.uuid4())
    with pytest.raises(NotFoundError):
        with transaction(ctx.engine) as conn:
            holds.release_hold(conn, uuid.uuid4(), actor="user:counsel")
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LegalHold.__table__)).scalar() == 0
    with transaction(ctx.engine) as conn:
        hold = holds.place_hold(conn, actor="user:counsel", reason="x", client_id=client)
    with transaction(ctx.engine) as conn:
        holds.release_hold(conn, hold.id, actor="user:counsel")
    with pytest.raises(ConflictError, match="already released"):
        with transaction(ctx.engine) as conn:
            holds.release_hold(conn, hold.id, actor="user:counsel")


# --- the plan ----------------------------------------------------------------------------------

def test_the_plan_lists_what_is_due_and_upcoming_and_changes_nothing(ctx, practice):
    client = _client(ctx, practice)
    due_now = _session(ctx, client, NOW - 40 * DAY)
    soon = _session(ctx, client, NOW - 20 * DAY)
    _session(ctx, client, NOW + 60 * DAY)
    _policy(ctx, "therapy_sessions", 30, 90)
    with ctx.engine.connect() as conn:
        result = job.plan(conn, now=NOW, horizon_days=15)
    assert result["summary"] == [{"table": "therapy_sessions", "action": "archive", "due_now": 1, "upcoming": 1,
                                  "blocked": 0},
                                 {"table": "therapy_sessions", "action": "delete", "due_now": 0, "upcoming": 0,
                                  "blocked": 0}]
    assert [a["row_id"] for a in result["actions"]] == [due_now, soon]
    assert result["actions"][1]["due_at"] == NOW + 10 * DAY
    assert _archived(ctx, due_now) is None
    with pytest.raises(ValidationError, match="horizon_days"):
        with ctx.engine.connect() as conn:
            job.plan(conn, now=NOW, horizon_days=-1)


def test_the_job_refuses_unknown_parameters_and_a_dry_run_changes_nothing(ctx, practice):
    client = _client(ctx, practice)
    old = _session(ctx, client, datetime(2020, 1, 6, 9, tzinfo=timezone.utc))
    _policy(ctx, "therapy_sessions", 30, 60)
    with pytest.raises(ValidationError, match="now"):
        job.run(ctx, {"now": "1999-01-01"}, lambda *a: None)
    planned = job.run(ctx, {"dry_run": True}, lambda *a: None)
    assert planned["dry_run"] and planned["actions"][0]["row_id"] == old and _archived(ctx, old) is None
    done = job.run(ctx, {"actor": "user:operator"}, lambda *a: None)
    assert done["tables"]["therapy_sessions"]["archived"] == 1
    assert _actions(ctx, "RETENTION_ARCHIVE")[0].actor == "user:operator"


# --- erasure --------------------------------------------------------------------------------------

def _request(ctx, client, actor="user:alice", reason="written request ref 77"):
    with transaction(ctx.engine) as conn:
        return erasure.request_erasure(conn, client_id=client, actor=actor, reason=reason)


def test_erasure_needs_a_second_person_and_crypto_shreds_only_that_client(ctx, practice):
    target = _client(ctx, practice, "Ashford")
    _session(ctx, target, NOW - DAY)
    other = _client(ctx, practice, "Brightwater")
    request = _request(ctx, target)
    assert request["status"] == "pending" and request["expires_at"] == request["created_at"] + erasure.APPROVAL_WINDOW

    for actor in ("user:alice", "system"):
        with pytest.raises(PermissionDenied, match="four-eyes"):
            erasure.approve(ctx.engine, ctx.keyring, request["id"], approver=actor,
                            files=open_files_target(ctx.settings))
        with pytest.raises(PermissionDenied, match="four-eyes"):
            erasure.reject(ctx.engine, request["id"], actor=actor)
    with transaction(ctx.engine) as conn:
        assert clients_repo.get_client(conn, ctx.keyring, CLINICIAN, target)["last_name"] == "Ashford"

    done = erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                           files=open_files_target(ctx.settings))
    assert done["status"] == "executed" and done["erased"]["keys_destroyed"] == 1
    assert done["erased"]["therapy_sessions"] == 1
    with ctx.engine.connect() as conn:
        key = conn.execute(select(_keys).where(_keys.c.client_id == target)).mappings().one()
        stored = conn.execute(select(ErasureRequest.__table__)).mappings().one()
    assert key["state"] == KeyState.DESTROYED and key["wrapped_key"] is None and key["destroyed_at"] is not None
    assert (stored["status"], stored["approved_by"], stored["executed_at"] is not None) == ("executed", "user:bob", True)
    with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
        with transaction(ctx.engine) as conn:
            clients_repo.get_client(conn, ctx.keyring, CLINICIAN, target, include_deleted=True)
    with transaction(ctx.engine) as conn:
        assert clients_repo.get_client(conn, ctx.keyring, CLINICIAN, other)["last_name"] == "Brightwater"

    entries = _actions(ctx, "ERASURE_REQUEST", "ERASURE_APPROVE", "ERASURE_REJECT", "ERASURE_EXECUTE")
    assert [(e.action, e.outcome) for e in entries] == [
        ("ERASURE_REQUEST", "success"), ("ERASURE_APPROVE", "denied"), ("ERASURE_REJECT", "denied"),
        ("ERASURE_APPROVE", "denied"), ("ERASURE_REJECT", "denied"), ("ERASURE_APPROVE", "success"),
        ("ERASURE_EXECUTE", "success")]
    assert all("Ashford" not in e.details and "ref 77" not in e.details for e in entries)
    assert audit.verify(ctx.engine).ok
    with pytest.raises(ConflictError, match="already erased"):
        _request(ctx, target, actor="user:carol")


def test_erasure_leaves_no_blind_index_to_test_a_guess_against(ctx, practice):
    """The practice's blind-index key outlives an erasure, so the erased client's keyed
    hashes of email, SSN and last name go with it: nobody holding the database and that
    key can still ask "was this person ever a client?"."""
    target = _client(ctx, practice, "Ashford", email="avery.ashford@example.org")
    with transaction(ctx.engine) as conn:
        before = conn.execute(select(_clients).where(_clients.c.id == target)).mappings().one()
    assert before["email_bidx"] and before["ssn_last4_bidx"] and before["last_name_bidx"]
    request = _request(ctx, target)
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob", files=open_files_target(ctx.settings))
    with transaction(ctx.engine) as conn:
        row = conn.execute(select(_clients).where(_clients.c.id == target)).mappings().one()
        indexer = ctx.keyring.blind_indexer(conn)
        guesses = [(column, indexer.index(field, value)) for column, field, value in (
            (_clients.c.email_bidx, "email", "avery.ashford@example.org"),
            (_clients.c.ssn_last4_bidx, "ssn_last4", "5678"), (_clients.c.last_name_bidx, "last_name", "Ashford"))]
        matches = [conn.execute(select(func.count()).select_from(_clients).where(column == digest)).scalar()
                   for column, digest in guesses]
    assert (row["email_bidx"], row["ssn_last4_bidx"], row["last_name_bidx"]) == (None, None, None)
    assert matches == [0, 0, 0]
    assert row["data_checksum"] == row_checksum(dict(row)) and row["sync_version"] > before["sync_version"]


def test_erasure_is_refused_under_a_legal_hold_and_after_its_window(ctx, practice):
    client = _client(ctx, practice)
    request = _request(ctx, client)
    with transaction(ctx.engine) as conn:
        hold = holds.place_hold(conn, actor="user:counsel", reason="Matter 9", client_id=client)
    with pytest.raises(ConflictError, match="legal hold"):
        erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                        files=open_files_target(ctx.settings))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(_keys.c.state).where(_keys.c.client_id == client)).scalar() == KeyState.ACTIVE
        listed = erasure.list_requests(conn)
    assert listed[0]["held_by"] == hold.id and listed[0]["status"] == "pending"

    late = request["expires_at"] + DAY
    with pytest.raises(ConflictError, match="expired"):
        erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob", now=late,
                        files=open_files_target(ctx.settings))
    with transaction(ctx.engine) as conn:
        holds.release_hold(conn, hold.id, actor="user:counsel")
    with transaction(ctx.engine) as conn:   # a new request may be filed once the old one expired
        again = erasure.request_erasure(conn, client_id=client, actor="user:alice", reason="ref 78", now=late)
    rejected = erasure.reject(ctx.engine, again["id"], actor="user:bob", now=late)
    assert rejected["status"] == "rejected"
    with pytest.raises(ConflictError, match="rejected"):
        erasure.approve(ctx.engine, ctx.keyring, again["id"], approver="user:carol", now=late,
                        files=open_files_target(ctx.settings))


def test_bad_erasure_requests_are_refused_and_nothing_is_written(ctx, practice):
    client = _client(ctx, practice)
    with pytest.raises(NotFoundError):
        _request(ctx, uuid.uuid4())
    with pytest.raises(ValidationError, match="reason"):
        _request(ctx, client, reason="")
    with pytest.raises(NotFoundError):
        erasure.approve(ctx.engine, ctx.keyring, uuid.uuid4(), approver="user:bob",
                        files=open_files_target(ctx.settings))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ErasureRequest.__table__)).scalar() == 0
    _request(ctx, client)
    with pytest.raises(ConflictError, match="already pending"):
        _request(ctx, client, actor="user:carol")


def test_a_client_with_an_expiry_date_in_the_future_is_not_touched(ctx, practice):
    client = _client(ctx, practice, retention_expiry_date=date(2099, 1, 1))
    _policy(ctx, "clients", 1, 2)
    _apply(ctx, NOW + 10 * DAY)
    assert _archived(ctx, client) is not None   # inactive for longer than a day: archived
    _apply(ctx, NOW + 100 * DAY)
    assert _row(ctx, _clients, client)["deleted_at"] is None


def test_an_incremental_backup_carries_archives_tombstones_and_the_shredding(ctx, practice, tmp_path):
    from strongroom.core.backup.repository import open_repository
    from strongroom.core.db.engine import make_engine
    from strongroom.core import restore
    from strongroom.core.jobs import backup
    from strongroom.core.storage import open_target
    from tests.core.conftest import with_backup_target

    with_backup_target(ctx, tmp_path)
    kept, erased = _client(ctx, practice, "Ashford"), _client(ctx, practice, "Brightwater")
    old = _session(ctx, kept, NOW - 100 * DAY)
    _policy(ctx, "therapy_sessions", 30, 30)
    _apply(ctx, NOW)
    backup.run(ctx, {"full": "true"}, lambda *a: None)
    _apply(ctx, NOW + DAY)                        # the archived session is deleted now
    request = _request(ctx, erased)
    erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                    files=open_files_target(ctx.settings))
    tip = backup.run(ctx, {}, lambda *a: None)
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    assert repo.read_manifest(uuid.UUID(tip["snapshot_id"])).kind == "incremental"

    url = f"sqlite:///{tmp_path / 'restored.db'}"
    restore.restore(repo, uuid.UUID(tip["snapshot_id"]), url)
    target = make_engine(url)
    try:
        with target.connect() as conn:
            session = conn.execute(select(_sessions).where(_sessions.c.id == old)).mappings().one()
            ledger = conn.execute(select(_ledger.c.row_id, _ledger.c.deleted_at)).all()
            key = conn.execute(select(_keys).where(_keys.c.client_id == erased)).mappings().one()
        assert session["deleted_at"] is not None and session["notes_enc"] is None
        assert ledger == [(old, NOW + DAY)]
        assert key["state"] == KeyState.DESTROYED and key["wrapped_key"] is None
        with pytest.raises(KeyUnavailableError, match="crypto-shredded"):
            with transaction(target) as conn:
                clients_repo.get_client(conn, ctx.keyring, CLINICIAN, erased, include_deleted=True)
    finally:
        target.dispose()


def test_holds_still_block_under_row_level_security_as_the_application_role(ctx, practice, db_url):
    """PostgreSQL superusers bypass row-level security; the application's role does not,
    and legal_holds is practice-scoped: a run that forgot to scope its transactions
    would see no hold at all and delete what is held."""
    if ctx.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is PostgreSQL's")
    from dataclasses import replace

    import psycopg
    from strongroom.core.db.engine import make_engine
    from tests.conftest import PG_DSN, pg_admin

    held = _client(ctx, practice)
    session = _session(ctx, held, NOW - 100 * DAY)
    _policy(ctx, "therapy_sessions", 30, 30)
    with transaction(ctx.engine) as conn:
        holds.place_hold(conn, actor="user:counsel", reason="Matter 3", client_id=held)
    role, dbname = f"sr_app_{uuid.uuid4().hex[:8]}", ctx.engine.url.database
    pg_admin(f"CREATE ROLE {role} LOGIN")
    app = None
    try:
        with ctx.engine.begin() as conn:
            conn.exec_driver_sql(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
            conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
        app = make_engine(ctx.engine.url.set(username=role).render_as_string(hide_password=False))
        as_app = replace(ctx, engine=app)
        result = job.apply(as_app, now=NOW, actor="system")
        assert result["tables"]["therapy_sessions"]["blocked"] == 1 and _archived(ctx, session) is None
        with transaction(app, read_only=True) as conn:
            assert job.plan(conn, now=NOW)["actions"][0]["blocked_by"] is not None
        request = _request(ctx, held)
        with pytest.raises(ConflictError, match="legal hold"):
            erasure.approve(app, ctx.keyring, request["id"], approver="user:bob",
                            files=open_files_target(ctx.settings))
    finally:
        if app is not None:
            app.dispose()
        pg_admin(f"REASSIGN OWNED BY {role} TO postgres")
        with psycopg.connect(PG_DSN.rsplit("/", 1)[0] + f"/{dbname}", autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
        pg_admin(f"DROP ROLE {role}")


def test_the_local_operator_can_neither_file_nor_decide_an_erasure(ctx, practice):
    """Four eyes are two named, logged-in people: `local:<uid>` is whoever holds the
    machine's account (and once claimed any uid), so it counts as neither."""
    client = _client(ctx, practice, "Ashford")
    with pytest.raises(PermissionDenied, match="named, logged-in person"):
        _request(ctx, client, actor="local:1111")
    with ctx.engine.connect() as conn:
        assert conn.execute(select(ErasureRequest.__table__)).first() is None
    request = _request(ctx, client)
    for local in ("local:0", "local:2222"):
        with pytest.raises(PermissionDenied, match="named, logged-in person"):
            erasure.approve(ctx.engine, ctx.keyring, request["id"], approver=local,
                            files=open_files_target(ctx.settings))
        with pytest.raises(PermissionDenied, match="named, logged-in person"):
            erasure.reject(ctx.engine, request["id"], actor=local)
    with transaction(ctx.engine) as conn:
        assert clients_repo.get_client(conn, ctx.keyring, CLINICIAN, client)["last_name"] == "Ashford"
        assert erasure.list_requests(conn)[0]["status"] == "pending"
    assert [e.outcome for e in _actions(ctx, "ERASURE_APPROVE", "ERASURE_REJECT")] == ["denied"] * 4


def test_a_client_deleted_by_policy_leaves_every_backup_key_bag_at_once(ctx, practice, tmp_path):
    from strongroom.core.backup import keybag
    from strongroom.core.backup.repository import open_repository
    from strongroom.core.jobs import backup
    from strongroom.core.storage import open_target
    from tests.core.conftest import with_backup_target

    with_backup_target(ctx, tmp_path)
    gone = _client(ctx, practice, "Ashford")
    _session(ctx, gone, NOW - 10 * DAY)
    _policy(ctx, "clients", 365, 730)
    backup.run(ctx, {"full": "true"}, lambda *a: None)
    repo = open_repository(open_target(ctx.settings.backup.target), ctx.keyring)
    with ctx.engine.connect() as conn:
        key_ids = set(conn.execute(select(_keys.c.id).where(_keys.c.client_id == gone)).scalars())
    assert key_ids <= set(keybag.read(repo).keys)
    _apply(ctx, NOW + 400 * DAY)                 # archived
    result = _apply(ctx, NOW + 800 * DAY)        # deleted: crypto-shredded
    assert [c["status"] for c in result["repositories"]] == ["updated"]
    bag = keybag.read(repo)
    assert not key_ids & set(bag.keys) and key_ids <= set(bag.erased)


# --- client file content --------------------------------------------------------------------

def _file(ctx, client_id, data: bytes):
    from strongroom.core.files.repository import add_file

    with transaction(ctx.engine) as conn:
        return add_file(conn, ctx.keyring, CLINICIAN, open_files_target(ctx.settings), ctx.settings.files,
                        client_id, name="consent form.pdf", content_type="application/pdf", size=len(data),
                        content=[data])["id"]


def _read_file(ctx, file_id) -> bytes:
    from strongroom.core.files.repository import open_file

    with transaction(ctx.engine) as conn:
        return b"".join(open_file(conn, ctx.keyring, CLINICIAN, open_files_target(ctx.settings), file_id).chunks)


def _file_objects(ctx) -> set:
    return {p for p in (ctx.settings.data_dir / "files").rglob("*") if p.is_file()}


def test_erasure_deletes_the_clients_file_objects_after_commit_and_certifies_the_count(ctx, practice):
    from strongroom.core.files.content import CHUNK_SIZE
    from strongroom.core.retention import certificate

    target = _client(ctx, practice, "Ashford")
    other = _client(ctx, practice, "Brightwater")
    _file(ctx, target, b"x" * (CHUNK_SIZE + 1))        # two chunks and a manifest
    _file(ctx, target, b"signed consent")              # one chunk and a manifest
    before_other = _file_objects(ctx)
    kept = _file(ctx, other, b"referral letter")
    others = _file_objects(ctx) - before_other
    request = _request(ctx, target)
    done = erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                           files=open_files_target(ctx.settings))
    assert done["erased"]["client_files"] == 2
    assert done["file_objects"] == {"files": 2, "objects_deleted": 5, "objects_failed": 0, "failed_file_ids": []}
    assert _file_objects(ctx) == others and _read_file(ctx, kept) == b"referral letter"
    issued = certificate.complete(ctx, request["id"], actor="user:bob")
    assert issued["file_objects"] == {"files": 2, "objects_deleted": 5, "objects_failed": 0}
    assert "5 deleted from the live files store (2 files)" in certificate.as_text(issued)
    with ctx.engine.connect() as conn:
        assert certificate.verify(conn, issued).ok


def test_an_erasure_that_rolls_back_deletes_no_file_object(ctx, practice, monkeypatch):
    client = _client(ctx, practice)
    file_id = _file(ctx, client, b"intake form")
    stored = _file_objects(ctx)
    request = _request(ctx, client)

    def failing(*args, **kwargs):
        raise RuntimeError("synthetic failure after the objects were listed")
    monkeypatch.setattr(type(ctx.keyring), "destroy_client_keys", failing)
    with pytest.raises(RuntimeError):
        erasure.approve(ctx.engine, ctx.keyring, request["id"], approver="user:bob",
                        files=open_files_target(ctx.settings))
    monkeypatch.undo()
    assert _file_objects(ctx) == stored and _read_file(ctx, file_id) == b"intake form"


def test_a_files_policy_deletes_expired_files_with_their_objects_never_a_held_clients(ctx, practice):
    held = _client(ctx, practice, "Ashford")
    free = _client(ctx, practice, "Brightwater")
    held_file = _file(ctx, held, b"held letter")
    held_objects = _file_objects(ctx)
    free_file = _file(ctx, free, b"expired letter")
    _policy(ctx, "client_files", 30, 60)
    with transaction(ctx.engine) as conn:
        holds.place_hold(conn, actor="user:counsel", reason="Matter 2026-115", client_id=held)

    first = _apply(ctx, NOW + 40 * DAY)
    assert first["tables"]["client_files"]["archived"] == 1 and first["tables"]["client_files"]["blocked"] == 1
    done = _apply(ctx, NOW + 70 * DAY)
    assert done["tables"]["client_files"]["deleted"] == 1 and done["tables"]["client_files"]["blocked"] == 1
    assert done["tables"]["client_files"]["file_objects_deleted"] == 2
    from strongroom.core.db.models import ClientFile
    assert _row(ctx, ClientFile.__table__, free_file)["deleted_at"] is not None
    assert _row(ctx, ClientFile.__table__, held_file)["deleted_at"] is None
    assert _file_objects(ctx) == held_objects and _read_file(ctx, held_file) == b"held letter"
    entry = [e for e in _actions(ctx, "RETENTION") if "file_objects_deleted" in e.details]
    assert len(entry) == 1 and json.loads(entry[0].details)["objects_deleted"] == 2


def test_a_client_deleted_by_policy_takes_its_file_objects(ctx, practice):
    gone = _client(ctx, practice, "Ashford")
    _session(ctx, gone, NOW - 10 * DAY)
    _file(ctx, gone, b"old scan")
    _policy(ctx, "clients", 365, 730)
    _apply(ctx, NOW + 400 * DAY)
    assert len(_file_objects(ctx)) == 2
    done = _apply(ctx, NOW + 800 * DAY)
    assert done["tables"]["clients"]["file_objects_deleted"] == 2 and _file_objects(ctx) == set()
