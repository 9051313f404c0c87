"""The retention commands over the real control socket: policies, the plan, legal holds
and four-eyes erasure, each permission enforced, every bad request answered with the
documented code and nothing changed; the retention job runs through job.run."""
from __future__ import annotations

import uuid

import pytest

from tests.daemon.conftest import (error_of, login, make_data_dir, running_daemon, scrape_metrics,
                                   seed_retention_demo, wait_run)


@pytest.fixture
def retention_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    seeded = seed_retention_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.seeded = seeded
        yield proc


def test_policies_plan_holds_and_requests_are_listed(retention_daemon):
    d = retention_daemon
    policies = d.call("retention.policy.list")
    assert [(p["table_name"], p["archive_after_days"], p["delete_after_days"]) for p in policies] == [
        ("client_files", 365, None), ("clients", 730, 2555), ("therapy_sessions", 540, 2190)]
    plan = d.call("retention.plan.get", {"horizon_days": 3650})
    assert {(s["table"], s["action"]) for s in plan["summary"]} == {
        ("client_files", "archive"), ("clients", "archive"), ("clients", "delete"),
        ("therapy_sessions", "archive"), ("therapy_sessions", "delete")}
    held = [a for a in plan["actions"] if a["client_id"] == d.seeded["clients"][0]]
    assert held and all(a["blocked_by"] == d.seeded["hold"] for a in held)
    assert plan["holds_in_force"] == 1
    holds = d.call("hold.list")
    assert [(h["id"], h["scope"], h["client_id"]) for h in holds] == [(d.seeded["hold"], "client",
                                                                      d.seeded["clients"][0])]
    requests = d.call("erasure.list")
    assert [(r["id"], r["status"], r["requested_by"]) for r in requests] == [
        (d.seeded["request"], "pending", "user:demo-manager")]
    # An auditor reads all of it, and changes none of it.
    token = login(d, "auditor1")
    assert d.call("retention.plan.get", token=token)["summary"]
    assert error_of(d, "retention.policy.set", {"table_name": "clients", "archive_after_days": 5},
                    token).code == "forbidden"
    assert error_of(d, "hold.place", {"reason": "x"}, token).code == "forbidden"
    assert error_of(d, "erasure.request", {"client_id": d.seeded["clients"][2], "reason": "x"},
                    token).code == "forbidden"


def test_a_bad_policy_or_hold_is_refused_and_nothing_changes(retention_daemon):
    d = retention_daemon
    before = d.call("retention.policy.list")
    for args in ({"table_name": "audit_logs", "archive_after_days": 5},
                 {"table_name": "clients", "archive_after_days": 30, "delete_after_days": 10},
                 {"table_name": "clients", "archive_after_days": 0},
                 {"table_name": "clients", "archive_after_days": 30, "surprise": 1}):
        assert error_of(d, "retention.policy.set", args).code == "bad_request"
    assert d.call("retention.policy.list") == before
    assert error_of(d, "hold.place", {"reason": "", "client_id": d.seeded["clients"][1]}).code == "bad_request"
    assert error_of(d, "hold.place", {"reason": "x", "client_id": str(uuid.uuid4())}).code == "not_found"
    assert error_of(d, "hold.release", {"hold_id": "not-a-uuid"}).code == "bad_request"
    assert len(d.call("hold.list")) == 1
    assert error_of(d, "retention.plan.get", {"horizon_days": -1}).code == "bad_request"


def test_holds_are_placed_and_released_once(retention_daemon):
    d = retention_daemon
    hold = d.call("hold.place", {"reason": "Practice-wide inquiry"})
    assert hold["scope"] == "practice" and hold["active"]
    released = d.call("hold.release", {"hold_id": hold["id"]})
    assert released["released_by"].startswith("local:") and not released["active"]
    assert error_of(d, "hold.release", {"hold_id": hold["id"]}).code == "conflict"
    assert [h["id"] for h in d.call("hold.list", {"include_released": True})][:1] == [hold["id"]]


def test_erasure_takes_two_people_and_a_hold_stops_it(retention_daemon):
    d = retention_daemon
    target = d.seeded["clients"][2]
    manager = login(d, "manager1")
    filed = d.call("erasure.request", {"client_id": target, "reason": "written request ref 12"}, token=manager)
    assert filed["status"] == "pending" and filed["requested_by"] == "user:manager1"
    # A manager may file but not approve; the requester never approves.
    assert error_of(d, "erasure.approve", {"request_id": filed["id"]}, manager).code == "forbidden"
    # The local operator (whoever holds the machine's account) is none of the four eyes.
    denied = error_of(d, "erasure.request", {"client_id": d.seeded["clients"][3], "reason": "ref 13"})
    assert denied.code == "forbidden" and "named, logged-in person" in denied.message
    for cmd in ("erasure.approve", "erasure.reject"):
        denied = error_of(d, cmd, {"request_id": filed["id"]})
        assert denied.code == "forbidden" and "named, logged-in person" in denied.message
    mine = d.call("erasure.request", {"client_id": d.seeded["clients"][3], "reason": "ref 13"}, token=manager)

    owner = login(d, "owner1", d.seeded["owner_totp"])
    done = d.call("erasure.approve", {"request_id": filed["id"]}, token=owner)
    assert done["status"] == "executed" and done["approved_by"] == "user:owner1"
    assert done["erased"]["keys_destroyed"] == 1 and done["erased"]["therapy_sessions"] == 2
    # Approval reaches the backup repositories at once and certifies it, signed.
    cert = done["certificate"]
    assert (cert["client_id"], cert["requested_by"], cert["approved_by"]) == (target, "user:manager1", "user:owner1")
    assert cert["signature"]["algorithm"] == "Ed25519" and cert["repositories"][0]["configuration"] == "default"
    assert d.call("erasure.certificate.get", {"request_id": filed["id"]}, token=manager) == cert
    assert error_of(d, "erasure.certificate.get", {"request_id": filed["id"], "reissue": True}, manager).code == "forbidden"
    assert error_of(d, "erasure.certificate.get", {"request_id": mine["id"]}).code == "not_found"
    assert d.call("erasure.reject", {"request_id": mine["id"]}, token=owner)["status"] == "rejected"
    assert error_of(d, "erasure.approve", {"request_id": filed["id"]}, owner).code == "conflict"
    assert error_of(d, "erasure.approve", {"request_id": str(uuid.uuid4())}, owner).code == "not_found"
    assert error_of(d, "erasure.request", {"client_id": target, "reason": "again"}, manager).code == "conflict"

    # The demo's own request names a client that is not held; holding it refuses approval.
    demo_request = d.call("erasure.list")[0]
    hold = d.call("hold.place", {"reason": "Matter 4", "client_id": demo_request["client_id"]})
    assert d.call("erasure.list")[0]["held_by"] == hold["id"]
    blocked = error_of(d, "erasure.approve", {"request_id": demo_request["id"]}, owner)
    assert blocked.code == "conflict" and "legal hold" in blocked.message
    statuses = {r["id"]: r["status"] for r in d.call("erasure.list", {"include_closed": True})}
    assert statuses == {filed["id"]: "executed", mine["id"]: "rejected", demo_request["id"]: "pending"}
    actions = [e["action"] for e in d.call("audit.tail", {"limit": 200})]
    assert {"ERASURE_REQUEST", "ERASURE_APPROVE", "ERASURE_EXECUTE", "ERASURE_REJECT", "LEGAL_HOLD"} <= set(actions)
    assert d.call("audit.verify")["ok"]


def test_the_retention_job_runs_through_job_run_and_takes_no_clock_from_its_caller(retention_daemon):
    d = retention_daemon
    assert error_of(d, "job.run", {"kind": "retention", "params": {"now": "1999-01-01"}}).code == "bad_request"
    run = wait_run(d, d.call("job.run", {"kind": "retention"})["id"])
    assert run["status"] == "succeeded", run["error"]
    assert set(run["result"]["tables"]) == {"clients", "therapy_sessions", "client_files"}
    archived = run["result"]["tables"]["therapy_sessions"]["archived"]
    metrics = scrape_metrics(d)
    assert "strongroom_legal_holds_active 1.0" in metrics and "strongroom_erasure_requests_pending 1.0" in metrics
    assert f'strongroom_retention_rows_total{{action="archived",table="therapy_sessions"}} {float(archived)}' in metrics
    token = login(d, "auditor1")
    assert error_of(d, "job.run", {"kind": "retention"}, token).code == "forbidden"
