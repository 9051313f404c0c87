"""What `sync status` and the quarantine listing say: per peer and table, watermarks, lag
in time and rows, failures, skew, open conflicts and quarantined rows; never a password,
never a quarantined row's image."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import SyncPeer
from strongroom.core.db.types import utcnow
from strongroom.core.sync import status as sync_status
from strongroom.core.sync.passes import Problem, quarantine
from strongroom.core.sync.peers import add_peer, record_failure
from strongroom.core.sync.settings import SyncSettings
from tests.core.conftest import seed_clients


def _peer(report: dict, name: str) -> dict:
    return next(p for p in report["peers"] if p["name"] == name)


def test_a_pass_leaves_watermarks_per_table_and_no_pending_rows(first_site, join_site):
    laptop = join_site("laptop")
    laptop.sync(first_site)
    with transaction(laptop.engine, read_only=True) as conn:
        report = sync_status.status(conn, SyncSettings())
    central = _peer(report, "central")
    tables = {t["table"]: t for t in central["tables"]}
    assert list(tables) == ["practices", "staff", "services", "clients", "therapy_sessions"]
    # what came from central is not counted as owed back to it
    assert [t["pending_rows"] for t in tables.values()] == [0] * 5 and central["pending_rows"] == 0
    assert tables["clients"]["pull_watermark"] > 0 and tables["clients"]["last_moved_at"] is not None
    assert central["failures"] == 0 and central["quarantined"] == 0 and central["open_conflicts"] == 0
    assert central["skew_exceeded"] is False
    assert report["open_conflicts"] == 0 and report["quarantined"] == 0


def test_lag_in_rows_counts_local_changes_the_peer_has_not_received(ctx, first_site, join_site):
    laptop = join_site("laptop")
    first_site.sync(laptop)
    seed_clients(ctx, 3)
    with transaction(first_site.engine, read_only=True) as conn:
        laptop_view = _peer(sync_status.status(conn, SyncSettings()), "laptop")
    clients = next(t for t in laptop_view["tables"] if t["table"] == "clients")
    assert clients["pending_rows"] == 3
    assert laptop_view["pending_rows"] >= 3


def test_a_failing_peer_shows_failures_last_error_next_attempt_and_lagging(engine, tmp_path):
    now = utcnow()
    with transaction(engine) as conn:
        peer_id = add_peer(conn, "north", "postgresql://sync:s3cret@127.0.0.1/north")
        record_failure(conn, peer_id, error="database error talking to the peer (OperationalError)", now=now,
                       retry_delay_seconds=60)
        conn.execute(update(SyncPeer.__table__).where(SyncPeer.__table__.c.id == peer_id)
                     .values(clock_skew_ms=12_500, last_sync_at=now - timedelta(hours=30)))
        report = sync_status.status(conn, SyncSettings(max_lag_minutes=60), now=now)
    north = _peer(report, "north")
    assert north["failures"] == 1 and "OperationalError" in north["last_error"]
    assert north["next_attempt_at"] == now + timedelta(seconds=60)
    assert north["lagging"] is True and north["lag_seconds"] == 30 * 3600
    assert north["skew_exceeded"] is True
    assert "s3cret" not in json.dumps(report, default=str)


def test_the_quarantine_lists_reason_and_row_never_the_image(engine):
    with transaction(engine) as conn:
        peer_id = add_peer(conn, "north", "sqlite:////tmp/north.db")
        quarantine(conn, peer_id, "clients", {"id": "0190d6c1-0000-7000-8000-000000000001",
                                              "first_name_enc": "c2VjcmV0LWNpcGhlcnRleHQ="},
                   Problem("checksum_mismatch", "clients row's checksum does not match its content"))
        rows = sync_status.list_quarantine(conn)
        report = sync_status.status(conn, SyncSettings())
    (row,) = rows
    assert (row["peer"], row["table"], row["reason"], row["status"]) == ("north", "clients", "checksum_mismatch",
                                                                        "open")
    assert row["row_id"] == "0190d6c1-0000-7000-8000-000000000001" and row["received_at"] is not None
    assert "image" not in row and "c2VjcmV0" not in json.dumps(rows, default=str)
    assert report["quarantined"] == 1 and _peer(report, "north")["quarantined"] == 1
    with transaction(engine, read_only=True) as conn:
        assert sync_status.list_quarantine(conn, after_id=row["id"]) == []
