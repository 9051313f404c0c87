"""The sync commands over the real control socket, on the demo's real second site: peers
with lag, the conflict queue, a masked view for an operator without phi:read, resolving
with an event published, and every bad request answered with the documented code and
nothing changed."""
from __future__ import annotations

import asyncio
import contextlib
import json
import time


from sqlalchemy import select

from strongroom.core.db.models import Client, SyncPeer
from strongroom.core.sync.conflicts import queue_conflict, row_image
from tests.conftest import per_engine_per_module
from tests.daemon.conftest import (data_transaction, error_of, forget_base, login,
                                   running_sync_daemon)


# Tests on `reading_sync_daemon` share one daemon per engine: each only reads or is refused,
# and changes nothing another could see (no resolution, no conflict queued, no base forgotten,
# no job run, no failed login). Those that resolve, queue or forget, or run a job, keep a
# daemon of their own.

@contextlib.contextmanager
def _reading_sync_daemon(tmp_path, db_url):
    """`sync_daemon` with the operator (sync:resolve without phi:read), the auditor and the
    clinician logged in once (`.tokens`, by username), so that the tests sharing it log
    nobody in themselves (the operator's TOTP code could not be used twice)."""
    with running_sync_daemon(tmp_path, db_url) as proc:
        proc.tokens = {"operator1": login(proc, "operator1", proc.seeded["operator_totp"]),
                       "auditor1": login(proc, "auditor1"), "clinician": login(proc, "clinician")}
        yield proc


reading_sync_daemon = per_engine_per_module(
    "reading_sync_daemon", _reading_sync_daemon,
    "`sync_daemon` shared by one engine's tests that only read the peers and the conflicts (the "
    "reads audited, each test counting only its own) or are refused: none resolves or queues a "
    "conflict, forgets a base or runs a job, and the refusals check that the queue is unchanged.")


def test_peers_and_the_open_queue(reading_sync_daemon):
    sync_daemon = reading_sync_daemon
    peers = sync_daemon.call("sync.peer.list")
    assert [p["name"] for p in peers] == ["satellite"]
    (satellite,) = peers
    assert satellite["open_conflicts"] == 2 and satellite["pending_changes"] >= 1
    assert 0 <= satellite["seconds_since_sync"] < 600 and satellite["failures"] == 0
    queue = sync_daemon.call("sync.conflict.list")
    assert [c["id"] for c in queue] == sync_daemon.seeded["conflicts"]
    assert [(c["table"], c["fields"]) for c in queue] == [("clients", ["phone"]), ("therapy_sessions", ["notes"])]
    assert all(c["status"] == "open" and c["fields"] for c in queue)
    assert sync_daemon.call("sync.conflict.list", {"status": "resolved"}) == []
    assert len(sync_daemon.call("sync.conflict.list", {"status": "all", "limit": 2})) == 2


def test_operator_sees_phi_masked_resolves_and_consoles_hear_of_it(sync_daemon):
    first = sync_daemon.seeded["conflicts"][0]
    plain = sync_daemon.call("sync.conflict.get", {"conflict_id": first})        # local operator: phi:read
    assert plain["masked"] is False
    secrets_ = {f[v] for f in plain["field_values"] if f["phi"] for v in ("base", "local", "remote") if f[v]}
    token = login(sync_daemon, "operator1", sync_daemon.seeded["operator_totp"])
    masked = sync_daemon.call("sync.conflict.get", {"conflict_id": first}, token=token)
    assert masked["masked"] is True and masked["fields"] == plain["fields"]
    dumped = json.dumps(masked)
    assert secrets_ and not [s for s in secrets_ if s in dumped]
    phone = next(f for f in masked["field_values"] if f["name"] == "phone")
    assert phone["local"].startswith("***-***-") and phone["remote"].startswith("***-***-") and phone["differs"]
    pending = sync_daemon.call("sync.peer.list")[0]["pending_changes"]

    choices = {name: "remote" for name in masked["fields"]}

    async def resolve_and_listen():
        client = sync_daemon.client(token)
        events = client.subscribe("sync.")
        await asyncio.sleep(0.2)
        try:
            result = await client.call("sync.conflict.resolve", {"conflict_id": first, "choices": choices})
            topic, data = await asyncio.wait_for(events.recv(), 10)
        finally:
            client.close()
        return result, topic, data

    result, topic, data = asyncio.run(resolve_and_listen())
    assert result["status"] == "resolved" and result["resolved_by"] == "user:operator1"
    assert not [s for s in secrets_ if s in json.dumps(result)]
    # the event names neither the row nor who resolved it: every subscriber hears it
    assert topic == "sync.conflict" and data == {"event": "resolved", "conflict_id": first, "table": "clients"}
    assert [c["id"] for c in sync_daemon.call("sync.conflict.list")] == sync_daemon.seeded["conflicts"][1:]
    assert sync_daemon.call("sync.peer.list")[0]["pending_changes"] == pending + 1     # the resolution, to send
    entries = sync_daemon.call("audit.tail", {"limit": 5, "table_name": "sync_conflicts"})
    assert entries[0]["action"] == "SYNC" and entries[0]["record_id"] == first
    assert entries[0]["actor"] == "user:operator1"


def test_a_conflict_shows_the_differing_fields_and_reveals_others_one_at_a_time(
        reading_sync_daemon):
    sync_daemon = reading_sync_daemon
    first = sync_daemon.seeded["conflicts"][0]
    view = sync_daemon.call("sync.conflict.get", {"conflict_id": first})           # local operator: phi:read
    assert [f["name"] for f in view["field_values"]] == view["fields"] == ["phone"]
    others = [f["name"] for f in view["other_fields"]]
    assert "ssn" in others and "phone" not in others
    (read,) = sync_daemon.call("audit.tail", {"limit": 1, "action": "READ"})
    assert read["record_id"] == view["row_id"] and read["details"]["fields"] == ["phone"]

    ssn = sync_daemon.call("sync.conflict.field.get", {"conflict_id": first, "field": "ssn"})
    assert ssn["masked"] is False and ssn["field"]["name"] == "ssn" and ssn["field"]["differs"] is False
    plain = ssn["field"]["local"]
    assert plain and plain not in json.dumps(view)                             # not in the view, only here
    (read,) = sync_daemon.call("audit.tail", {"limit": 1, "action": "READ"})
    assert (read["table_name"], read["record_id"]) == ("clients", view["row_id"])
    assert read["details"]["fields"] == ["ssn"] and read["details"]["via"] == "sync.conflict.field"
    assert plain not in json.dumps(read)

    token = sync_daemon.tokens["operator1"]
    reads = len(sync_daemon.call("audit.tail", {"limit": 1000, "action": "READ"}))
    masked = sync_daemon.call("sync.conflict.field.get", {"conflict_id": first, "field": "ssn"}, token=token)
    assert masked["masked"] is True and masked["field"]["local"].startswith("***-**-")
    assert plain not in json.dumps(masked)
    assert len(sync_daemon.call("audit.tail", {"limit": 1000, "action": "READ"})) == reads

    err = error_of(sync_daemon, "sync.conflict.field.get", {"conflict_id": first, "field": "shoe_size"})
    assert err.code == "bad_request" and "has no field 'shoe_size'" in err.message
    err = error_of(sync_daemon, "sync.conflict.field.get", {"conflict_id": first, "field": "123-45-6789"})
    assert err.code == "bad_request" and "field" in err.message and "123-45-6789" not in err.message
    auditor = sync_daemon.tokens["auditor1"]
    err = error_of(sync_daemon, "sync.conflict.field.get", {"conflict_id": first, "field": "ssn"}, token=auditor)
    assert err.code == "forbidden" and "sync:resolve" in err.message


def test_bad_requests_get_clear_errors_and_change_nothing(sync_daemon):
    first, second = sync_daemon.seeded["conflicts"][:2]
    forget_base(sync_daemon.data_dir, second)
    before = sync_daemon.call("sync.conflict.list", {"status": "all"})
    fields = before[0]["fields"]
    everything = {name: "local" for name in fields}

    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": "01a2061f-77c9-7000-a71a-77552702252a",
                                                 "choices": everything})
    assert err.code == "not_found" and "does not exist" in err.message
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": first, "choices": {**everything, "shoe_size": "local"}})
    assert err.code == "bad_request" and "has no field 'shoe_size'" in err.message
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": first, "choices": {**everything, fields[0]: "both"}})
    assert err.code == "bad_request" and "must be one of local, remote, base" in err.message
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": second,
                                                 "choices": {n: "base" for n in before[1]["fields"]}})
    assert err.code == "bad_request" and "no base version" in err.message
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": first, "choices": {}})
    assert err.code == "bad_request" and "give a choice (local, remote or base) for each differing field" in err.message
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": "not-a-uuid", "choices": everything})
    assert err.code == "bad_request" and "conflict_id" in err.message
    err = error_of(sync_daemon, "sync.conflict.list", {"status": "pending"})
    assert err.code == "bad_request" and "status" in err.message
    assert sync_daemon.call("sync.conflict.list", {"status": "all"}) == before

    sync_daemon.call("sync.conflict.resolve", {"conflict_id": first, "choices": everything})
    err = error_of(sync_daemon, "sync.conflict.resolve", {"conflict_id": first, "choices": everything})
    assert err.code == "conflict" and "already resolved" in err.message


def test_permissions_name_what_is_missing(reading_sync_daemon):
    sync_daemon = reading_sync_daemon
    first = sync_daemon.seeded["conflicts"][0]
    auditor = sync_daemon.tokens["auditor1"]
    clinician = sync_daemon.tokens["clinician"]
    for cmd, args in (("sync.conflict.list", {}), ("sync.conflict.get", {"conflict_id": first}),
                      ("sync.conflict.resolve", {"conflict_id": first, "choices": {"phone": "local"}})):
        for token in (auditor, clinician):
            err = error_of(sync_daemon, cmd, args, token=token)
            assert err.code == "forbidden" and "sync:resolve" in err.message
    err = error_of(sync_daemon, "sync.peer.list", {}, token=auditor)
    assert err.code == "forbidden" and "config:read" in err.message
    assert len(sync_daemon.call("sync.conflict.list")) == 2


def test_health_reports_open_conflicts_sync_lag_integrity_and_consistency(sync_daemon):
    health = sync_daemon.call("health")
    assert health["open_conflicts"] == len(sync_daemon.seeded["conflicts"])
    assert health["sync_peers"] >= 1
    assert health["integrity"] is None                       # never run yet
    run = sync_daemon.call("job.run", {"kind": "integrity"})
    deadline = time.monotonic() + 30
    while sync_daemon.call("job.get", {"run_id": run["id"]})["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # Health is a snapshot taken each tick: one taken while the run was going says so.
    while ((integrity := sync_daemon.call("health")["integrity"]) is None
           or integrity["status"] in ("queued", "running")):
        assert time.monotonic() < deadline + 30, f"health still says {integrity}"
        time.sleep(0.3)
    assert integrity["status"] == "succeeded" and integrity["age_seconds"] >= 0
    # The sites' consistency as that run found it: they differ while conflicts are open.
    peer = sync_daemon.seeded["peer"]
    while peer not in (consistency := sync_daemon.call("health")["sync"]["consistency"]):
        assert time.monotonic() < deadline + 60, f"health has no consistency for {peer}: {consistency}"
        time.sleep(0.3)
    assert consistency[peer]["status"] == "warn" and "rows differ" in consistency[peer]["actual"]
    assert consistency[peer]["checked_at"]


def test_a_conflict_whose_sides_hold_the_same_values_resolves_with_no_choice(sync_daemon):
    """Two sites may write the same value at once: each seals it with its own nonce, so
    the versions differ as stored and not as values. Nothing is left to choose."""
    with data_transaction(sync_daemon.data_dir) as (_ctx, conn):
        peer_id = conn.execute(select(SyncPeer.__table__.c.id).limit(1)).scalar_one()
        clients = Client.__table__
        row = conn.execute(select(clients).order_by(clients.c.id.desc()).limit(1)).mappings().one()
        image = row_image("clients", row)
        same = str(queue_conflict(conn, peer_id=peer_id, table_name="clients", row_id=row["id"],
                                  local=image, remote=dict(image)))
    assert sync_daemon.call("sync.conflict.get", {"conflict_id": same})["fields"] == []
    assert str(sync_daemon.call("sync.conflict.resolve", {"conflict_id": same, "choices": {}})["id"]) == same
    assert same not in {c["id"] for c in sync_daemon.call("sync.conflict.list", {})}
