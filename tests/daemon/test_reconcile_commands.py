"""The reconcile commands over a real daemon's control socket (both engines): the job
runs through reconcile.run, pairs list and show (masked without phi:read), merge, undo
and dismiss with their permissions, and bad requests answered by field, nothing changed."""
from __future__ import annotations

import uuid

import pytest

from tests.daemon.conftest import error_of, login, make_data_dir, running_daemon, seed_reconcile_demo, wait_run

@pytest.fixture
def reconcile_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    ids = seed_reconcile_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.ids = ids
        yield proc


def test_run_list_show_merge_undo_dismiss(reconcile_daemon):
    d = reconcile_daemon
    run = wait_run(d, d.call("reconcile.run")["id"])
    assert run["status"] == "succeeded", run["error"]
    # The daemon's job read the clients; the READ entry names who asked for the pass.
    (read,) = d.call("audit.tail", {"action": "READ", "table_name": "clients"})
    assert read["actor"] == "system" and read["details"]["via"] == "reconcile"
    assert read["details"]["requested_by"] == run["requested_by"] and run["requested_by"].startswith("local:")
    listed = d.call("reconcile.list", {"limit": 1})
    (pair,) = listed["items"]
    assert listed["next"] is None          # one pair: the first page is the last
    assert d.call("reconcile.list", {"after": pair["pair_id"]}) == {"items": [], "next": None}
    assert {pair["client_a"], pair["client_b"]} == set(d.ids[:2])
    assert "dob=" in pair["reasons"] and "email=" in pair["reasons"]
    shown = d.call("reconcile.show", {"pair_id": pair["pair_id"]})
    assert {c["first_name"] for c in shown["clients"]} == {"Zebediahquorn"}
    merged = d.call("reconcile.merge", {"pair_id": pair["pair_id"], "survivor": pair["client_b"]})
    assert merged["status"] == "merged" and merged["merge_record"]["survivor"] == pair["client_b"]
    assert d.call("reconcile.list")["items"] == []
    assert error_of(d, "reconcile.merge", {"pair_id": pair["pair_id"]}).code == "bad_request"
    undone = d.call("reconcile.undo", {"pair_id": pair["pair_id"]})
    assert undone["status"] == "open"
    assert d.call("reconcile.dismiss", {"pair_id": pair["pair_id"]})["status"] == "dismissed"
    again = wait_run(d, d.call("reconcile.run")["id"])
    assert again["result"]["new"] == 0
    assert d.call("reconcile.list")["items"] == []
    assert len(d.call("reconcile.list", {"status": "dismissed"})["items"]) == 1


def test_staff_see_masked_and_may_not_merge(reconcile_daemon):
    d = reconcile_daemon
    wait_run(d, d.call("reconcile.run")["id"])
    (pair,) = d.call("reconcile.list")["items"]
    token = login(d, "staff1")
    shown = d.call("reconcile.show", {"pair_id": pair["pair_id"]}, token=token)
    assert all("Zebediahquorn" not in str(c["first_name"]) for c in shown["clients"])
    assert error_of(d, "reconcile.merge", {"pair_id": pair["pair_id"]}, token).code == "forbidden"
    assert error_of(d, "reconcile.run", {}, token).code == "forbidden"
    assert d.call("reconcile.list")["items"][0]["status"] == "open"


def test_bad_requests_name_the_field_and_change_nothing(reconcile_daemon):
    d = reconcile_daemon
    wait_run(d, d.call("reconcile.run")["id"])
    bad = error_of(d, "reconcile.merge", {"pair_id": "drop-table-ZQ"})
    assert bad.code == "bad_request" and "pair_id" in bad.message and "drop-table-ZQ" not in bad.message
    missing = error_of(d, "reconcile.show", {"pair_id": str(uuid.uuid4())})
    assert missing.code == "not_found" and "pair_id" in missing.message
    (pair,) = d.call("reconcile.list")["items"]
    survivor = error_of(d, "reconcile.merge", {"pair_id": pair["pair_id"], "survivor": d.ids[2]})
    assert survivor.code == "bad_request" and "survivor" in survivor.message
    assert error_of(d, "reconcile.undo", {"pair_id": pair["pair_id"]}).code == "bad_request"
    assert error_of(d, "reconcile.list", {"status": "gone"}).code == "bad_request"
    assert error_of(d, "reconcile.list", {"surprise": 1}).code == "bad_request"
    after = error_of(d, "reconcile.list", {"after": "drop-table-ZQ"})
    assert after.code == "bad_request" and "after" in after.message and "drop-table-ZQ" not in after.message
    unknown = error_of(d, "reconcile.list", {"after": str(uuid.uuid4())})
    assert unknown.code == "not_found" and "after" in unknown.message
    assert d.call("reconcile.list")["items"][0]["status"] == "open"
