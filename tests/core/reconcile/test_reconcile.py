"""Reconciliation against a real database on both engines: planted duplicates found at
the precision/recall targets, pairs persisted without values, merge and undo moving
exactly the rows recorded, audited; bad input refused by field."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import AuditLog, Client, ClientFile, ReconcilePair, TherapySession
from strongroom.core.db.types import utcnow
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.files.repository import add_file, open_file
from strongroom.core.files.store import open_files_target
from strongroom.core.jobs import reconcile as job
from strongroom.core.principal import SYSTEM, Principal
from strongroom.core.reconcile import merge as merging
from strongroom.core.reconcile import planted
from strongroom.core.reconcile import repository as pairs_repo
from strongroom.core.repository.clients import get_client, insert_clients
from strongroom.core.repository.practices import create_practice
from strongroom.core.repository.sessions import create_session, list_sessions
from strongroom.core.retention.erasure import request_erasure

ALL = Principal("user:tester", frozenset({"*"}))
READ_ONLY = Principal("user:reader", frozenset({"table:clients:read"}))
PLANTED_NAME = "Zebediahquorn"


def _practice(ctx, records):
    created: list[uuid.UUID] = []
    with transaction(ctx.engine) as conn:
        practice = create_practice(conn, SYSTEM, "Reconcile Practice")
        insert_clients(conn, ctx.keyring, SYSTEM, practice, records, created=created)
    return practice, created


def _pairs(ctx, practice, status=None):
    with transaction(ctx.engine, read_only=True) as conn:
        return pairs_repo.list_pairs(conn, ALL, practice_id=practice, status=status, limit=10_000)[0]


def test_planted_duplicates_found_at_target_precision_and_recall(ctx):
    records, truth = planted.generate(2000, seed=11)
    practice, ids = _practice(ctx, records)
    result = job.reconcile_practice(ctx, practice)
    assert result["clients"] == 2000
    assert result["compared"] < 2000 * 1999 // 20       # blocking: far below all pairs
    found = {frozenset((uuid.UUID(p["client_a"]), uuid.UUID(p["client_b"]))) for p in _pairs(ctx, practice)}
    expected = {frozenset((ids[a], ids[b])) for a, b in truth}
    precision, recall = planted.precision_recall(found, expected)
    assert len(expected) > 50
    assert precision >= 0.95 and recall >= 0.9, (precision, recall)


def _two_of_one_person(ctx):
    one = {"first_name": PLANTED_NAME, "last_name": "Ofthequorns", "date_of_birth": "1975-04-03",
           "phone": "+1 555 010 2030", "email": "zq@example.org"}
    other = {**one, "first_name": "Zebediahqourn", "email": "ZQ@example.org", "phone": "+1 555 999 8888"}
    unrelated = {"first_name": "Ann", "last_name": "Bee", "date_of_birth": "1990-01-01"}
    practice, ids = _practice(ctx, [one, other, unrelated])
    job.reconcile_practice(ctx, practice)
    found = _pairs(ctx, practice)
    assert len(found) == 1
    assert {found[0]["client_a"], found[0]["client_b"]} == {str(ids[0]), str(ids[1])}
    return practice, ids, found[0]


def test_pairs_hold_reason_codes_and_no_plaintext(ctx):
    practice, ids, pair = _two_of_one_person(ctx)
    assert pair["score"] >= 0.8 and "dob=" in pair["reasons"] and "email=" in pair["reasons"]
    assert any(r.startswith("name~") for r in pair["reasons"])
    url = ctx.settings.database.url
    with transaction(ctx.engine, read_only=True) as conn:
        dumped = " ".join(str(tuple(row)) for row in conn.execute(select(ReconcilePair.__table__)))
        audit_text = " ".join(str(d) for d in conn.execute(select(AuditLog.details)).scalars())
        reads = conn.execute(select(AuditLog.details).where(AuditLog.action == "READ",
                                                            AuditLog.table_name == "clients")).scalars().all()
    reads = [json.loads(r) if isinstance(r, str) else r for r in reads]
    assert any(r.get("via") == "reconcile" and r.get("practice_id") == str(practice) for r in reads)
    for secret in (PLANTED_NAME, "Ofthequorns", "1975-04-03", "zq@example.org", "010 2030"):
        assert secret.lower() not in dumped.lower()
        assert secret.lower() not in audit_text.lower()
    if url.startswith("sqlite"):
        with ctx.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        database = Path(url.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal")):
            if path.exists():
                assert PLANTED_NAME.encode() not in path.read_bytes()


def test_rerun_neither_duplicates_open_pairs_nor_resurrects_dismissed(ctx):
    practice, ids, pair = _two_of_one_person(ctx)
    again = job.reconcile_practice(ctx, practice)
    assert again["new"] == 0 and again["still_open"] == 1
    with transaction(ctx.engine) as conn:
        dismissed = pairs_repo.dismiss(conn, ALL, pair["pair_id"], utcnow())
    assert dismissed["status"] == "dismissed" and dismissed["decided_by"] == "user:tester"
    third = job.reconcile_practice(ctx, practice)
    assert third["new"] == 0 and third["already_decided"] == 1
    assert _pairs(ctx, practice, status="open") == []
    with transaction(ctx.engine, read_only=True) as conn:
        assert conn.execute(select(func.count()).select_from(ReconcilePair.__table__)).scalar() == 1
    with pytest.raises(ValidationError, match="pair_id: the pair is dismissed"):
        with transaction(ctx.engine) as conn:
            merging.merge(conn, ALL, pair["pair_id"], utcnow())


def _last_decision(conn) -> dict:
    details = conn.execute(select(AuditLog.details).where(AuditLog.table_name == "reconcile_pairs")
                           .order_by(AuditLog.id.desc())).scalars().first()
    return json.loads(details) if isinstance(details, str) else details


def _rows_of(conn, table, client_id):
    return sorted(str(i) for i in conn.execute(select(table.c.id).where(table.c.client_id == client_id)).scalars())


def _state(conn, ids):
    out = {}
    for table in (TherapySession.__table__, ClientFile.__table__):
        for client in ids:
            out[(table.name, client)] = _rows_of(conn, table, client)
    return out


def test_merge_moves_every_row_audited_and_undo_restores_exactly(ctx):
    practice, ids, pair = _two_of_one_person(ctx)
    survivor, duplicate = uuid.UUID(pair["client_a"]), uuid.UUID(pair["client_b"])
    target = open_files_target(ctx.settings)
    with transaction(ctx.engine) as conn:
        for client in (survivor, duplicate, duplicate):
            create_session(conn, ctx.keyring, ALL, {"client_id": client, "notes": "session note",
                                                   "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
        moved_file = add_file(conn, ctx.keyring, ALL, target, ctx.settings.files, duplicate, name="intake.pdf",
                              content_type="application/pdf", size=5, content=[b"%PDF-"])
        before = _state(conn, ids[:2])
        version_before = conn.execute(select(func.max(TherapySession.sync_version))).scalar()
    with transaction(ctx.engine) as conn:
        merged = merging.merge(conn, ALL, pair["pair_id"], utcnow())
    record = merged["merge_record"]
    assert merged["status"] == "merged" and record["survivor"] == str(survivor)
    assert sorted(record["therapy_sessions"]) == before[("therapy_sessions", duplicate)]
    assert record["client_files"] == before[("client_files", duplicate)]
    with transaction(ctx.engine) as conn:
        assert _rows_of(conn, TherapySession.__table__, duplicate) == []
        assert len(_rows_of(conn, TherapySession.__table__, survivor)) == 3
        bumped = conn.execute(select(TherapySession.sync_version).where(
            TherapySession.client_id == survivor)).scalars().all()
        assert sum(v > version_before for v in bumped) == 2
        notes = [s["notes"] for s in list_sessions(conn, ctx.keyring, ALL, survivor)]
        assert notes == ["session note"] * 3
        assert b"".join(open_file(conn, ctx.keyring, ALL, target, moved_file["id"]).chunks) == b"%PDF-"
        with pytest.raises(NotFoundError):
            get_client(conn, ctx.keyring, ALL, duplicate)
        entry = _last_decision(conn)
        assert entry["decision"] == "merge" and entry["duplicate"] == str(duplicate)
        assert sorted(entry["therapy_sessions"]) == sorted(record["therapy_sessions"])
    with pytest.raises(ValidationError, match="pair_id: the pair is merged"):
        with transaction(ctx.engine) as conn:
            merging.merge(conn, ALL, pair["pair_id"], utcnow())
    with transaction(ctx.engine) as conn:
        undone = merging.undo(conn, ALL, pair["pair_id"], utcnow())
    assert undone["status"] == "open" and undone["merge_record"] is None
    with transaction(ctx.engine) as conn:
        assert _state(conn, ids[:2]) == before
        assert get_client(conn, ctx.keyring, ALL, duplicate)["first_name"] == "Zebediahqourn"
        entry = _last_decision(conn)
        assert entry["decision"] == "undo"
    with pytest.raises(ValidationError, match="pair_id: the pair is open, only a merged pair"):
        with transaction(ctx.engine) as conn:
            merging.undo(conn, ALL, pair["pair_id"], utcnow())


def test_merge_refused_for_a_client_under_erasure_and_nothing_changes(ctx):
    practice, ids, pair = _two_of_one_person(ctx)
    with transaction(ctx.engine) as conn:
        request_erasure(conn, client_id=uuid.UUID(pair["client_b"]), actor="user:a", reason="ticket 12")
    with pytest.raises(ValidationError, match="duplicate: the client has a pending erasure request"):
        with transaction(ctx.engine) as conn:
            merging.merge(conn, ALL, pair["pair_id"], utcnow())
    assert _pairs(ctx, practice)[0]["status"] == "open"


def test_bad_input_names_the_field(ctx):
    practice, ids, pair = _two_of_one_person(ctx)
    with transaction(ctx.engine) as conn:
        with pytest.raises(ValidationError, match="^pair_id: must be a UUID$"):
            merging.merge(conn, ALL, "not-a-uuid'; drop", utcnow())
        with pytest.raises(NotFoundError, match="pair_id: no such reconcile pair"):
            pairs_repo.get_pair(conn, ALL, uuid.uuid4())
        with pytest.raises(ValidationError, match="^survivor: must be one of the pair's two clients$"):
            merging.merge(conn, ALL, pair["pair_id"], utcnow(), survivor=uuid.uuid4())
        with pytest.raises(ValidationError, match="^survivor: must be a UUID$"):
            merging.merge(conn, ALL, pair["pair_id"], utcnow(), survivor="x")
        with pytest.raises(ValidationError, match="^status: must be one of"):
            pairs_repo.list_pairs(conn, ALL, status="bogus")
        with pytest.raises(PermissionDenied, match="table:clients:write"):
            merging.merge(conn, READ_ONLY, pair["pair_id"], utcnow())
    assert _pairs(ctx, practice)[0]["status"] == "open"


def _pairs_with_tied_scores(ctx):
    """Eight clients and every pair of them (28) with only three distinct scores, inserted
    as the job would leave them, so pages must break ties by id."""
    practice, ids = _practice(ctx, [{"first_name": f"Tie{i}", "last_name": "Pager"} for i in range(8)])
    rows = [{"id": uuid.uuid4(), "practice_id": practice, "client_a": a, "client_b": b,
             "score": (0.9, 0.85, 0.8)[n % 3], "reasons": "name~0.90", "status": "open"}
            for n, (a, b) in enumerate((a, b) for i, a in enumerate(ids) for b in ids[i + 1:])]
    with transaction(ctx.engine) as conn:
        conn.execute(ReconcilePair.__table__.insert(), rows)
    return practice


def test_pages_continue_after_the_last_pair_shown_and_cover_every_pair_once_in_order(ctx):
    practice = _pairs_with_tied_scores(ctx)
    whole = _pairs(ctx, practice)
    assert len(whole) == 28
    seen, after, pages = [], None, 0
    with transaction(ctx.engine, read_only=True) as conn:
        while True:
            page, after = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=5, after=after)
            seen += page
            pages += 1
            if after is None:
                break
            assert after == page[-1]["pair_id"]
    assert pages == 6 and [p["pair_id"] for p in seen] == [p["pair_id"] for p in whole]
    assert [p["score"] for p in seen] == sorted((p["score"] for p in seen), reverse=True)


def test_a_page_ending_exactly_at_the_last_pair_says_there_is_no_next(ctx):
    practice = _pairs_with_tied_scores(ctx)
    with transaction(ctx.engine, read_only=True) as conn:
        page, after = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=28)
        assert len(page) == 28 and after is None
        page, after = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=27)
        assert len(page) == 27 and after == page[-1]["pair_id"]
        last, after = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=27, after=after)
        assert len(last) == 1 and after is None


def test_deciding_a_pair_while_paging_neither_skips_nor_repeats_the_others(ctx):
    """Keyset paging: a pair taken out of the open list between pages (merged, dismissed)
    does not shift the next page the way an offset would."""
    practice = _pairs_with_tied_scores(ctx)
    whole = [p["pair_id"] for p in _pairs(ctx, practice)]
    with transaction(ctx.engine, read_only=True) as conn:
        first, after = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=10)
    with transaction(ctx.engine) as conn:
        pairs_repo.dismiss(conn, ALL, first[0]["pair_id"], utcnow())
    with transaction(ctx.engine, read_only=True) as conn:
        rest, _ = pairs_repo.list_pairs(conn, ALL, practice_id=practice, limit=100, after=after)
    assert [p["pair_id"] for p in first + rest] == whole


def test_a_page_of_one_practice_does_not_continue_after_another_practices_pair(ctx):
    """Another practice's pair is as unknown as a made-up one: paging from it would
    otherwise confirm that it exists and leak its score by the rows that follow."""
    ours, theirs = _pairs_with_tied_scores(ctx), _pairs_with_tied_scores(ctx)
    foreign = _pairs(ctx, theirs)[0]
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(NotFoundError, match="^after: no such reconcile pair$"):
            pairs_repo.list_pairs(conn, ALL, practice_id=ours, after=foreign["pair_id"])


def test_an_unknown_or_malformed_after_is_refused_by_name(ctx):
    with transaction(ctx.engine, read_only=True) as conn:
        with pytest.raises(NotFoundError, match="^after: no such reconcile pair$"):
            pairs_repo.list_pairs(conn, ALL, after=uuid.uuid4())
        with pytest.raises(ValidationError, match="^after: must be a UUID$"):
            pairs_repo.list_pairs(conn, ALL, after="1; drop table x")


def test_job_kind_runs_through_the_registry(ctx):
    records, _ = planted.generate(60, seed=3)
    practice, _ = _practice(ctx, records)
    from strongroom.core.jobs import kinds
    result = kinds.kind("reconcile").function()(ctx, {"practice_id": str(practice)}, lambda *a: None)
    assert result["practices"][0]["clients"] == 60
    with pytest.raises(ValidationError, match="practice_id"):
        kinds.check_params("reconcile", {"practice_id": "nope"})
    with pytest.raises(NotFoundError, match="practice_id"):
        kinds.kind("reconcile").function()(ctx, {"practice_id": str(uuid.uuid4())}, lambda *a: None)


def test_erasing_the_survivor_destroys_the_merged_duplicates_keys_too(ctx):
    from strongroom.core.db.models import DataKey, KeyState
    from strongroom.core.retention.erasure import erase_client
    practice, ids, pair = _two_of_one_person(ctx)
    survivor, duplicate = uuid.UUID(pair["client_a"]), uuid.UUID(pair["client_b"])
    with transaction(ctx.engine) as conn:
        create_session(conn, ctx.keyring, ALL, {"client_id": duplicate, "notes": "moved note",
                                               "starts_at": datetime(2026, 1, 5, 9, tzinfo=timezone.utc)})
    with transaction(ctx.engine) as conn:
        merging.merge(conn, ALL, pair["pair_id"], utcnow())
    with transaction(ctx.engine) as conn:
        counts = erase_client(conn, ctx.keyring, survivor, now=utcnow())
    keys = DataKey.__table__
    with transaction(ctx.engine, read_only=True) as conn:
        states = dict(conn.execute(select(keys.c.client_id, keys.c.state)
                                   .where(keys.c.client_id.in_([survivor, duplicate]))).all())
    assert states == {survivor: KeyState.DESTROYED, duplicate: KeyState.DESTROYED}
    assert counts["keys_destroyed"] >= 2
    clients = Client.__table__
    with transaction(ctx.engine, read_only=True) as conn:      # the duplicate's blind indexes go too
        indexed = conn.execute(select(clients.c.email_bidx, clients.c.ssn_last4_bidx, clients.c.last_name_bidx)
                               .where(clients.c.id.in_([survivor, duplicate]))).all()
    assert [tuple(r) for r in indexed] == [(None, None, None)] * 2
