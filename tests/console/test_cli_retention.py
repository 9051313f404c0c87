"""`strongroom retention|hold|erasure` against a real daemon holding the retention demo:
policies listed and set, the plan, holds placed and released, an erasure approved only
with confirmation, only by a named person and never by its requester, the job run; every bad request a clear
error with a non-zero exit and nothing changed."""
import json

import pyotp
import pytest

from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import PASSWORD


@pytest.fixture
def daemon(retention_daemon):
    return retention_daemon


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def test_policies_are_listed_and_set_and_a_bad_one_changes_nothing(daemon, capsys):
    code, out, err = cli(capsys, daemon, "retention", "policies", "--json")
    assert code == 0, err
    before = json.loads(out)
    assert [p["table_name"] for p in before] == ["client_files", "clients", "therapy_sessions"]
    code, out, _ = cli(capsys, daemon, "retention", "policies")
    assert code == 0 and "clients            archive after    730d  delete after   2555d  active" in out
    code, _, err = cli(capsys, daemon, "retention", "policies", "--table", "client_files", "--archive-after", "400",
                       "--delete-after", "100")
    assert code == 2 and "must not be less than archive_after_days" in err
    code, _, err = cli(capsys, daemon, "retention", "policies", "--table", "audit_logs", "--archive-after", "4")
    assert code == 2 and "cannot have a retention policy" in err
    code, _, err = cli(capsys, daemon, "retention", "policies", "--archive-after", "4")
    assert code == 2 and "need --table" in err
    assert daemon.call("retention.policy.list") == before
    code, out, err = cli(capsys, daemon, "retention", "policies", "--table", "client_files", "--archive-after", "400",
                         "--delete-after", "3000")
    assert code == 0 and out.strip() == "policy for client_files: archive after 400d, delete after 3000d, active"


def test_the_plan_shows_what_is_due_and_what_holds_block(daemon, capsys):
    code, out, err = cli(capsys, daemon, "retention", "plan", "--days", "3650", "--json")
    assert code == 0, err
    plan = json.loads(out)
    held = [a for a in plan["actions"] if a["client_id"] == daemon.seeded["clients"][0]]
    assert held and all(a["blocked_by"] == daemon.seeded["hold"] for a in held)
    code, out, _ = cli(capsys, daemon, "retention", "plan", "--days", "3650")
    assert code == 0 and "1 legal hold(s) in force" in out and f"BLOCKED by hold {daemon.seeded['hold']}" in out
    code, _, err = cli(capsys, daemon, "retention", "plan", "--days", "-3")
    assert code == 2


def test_holds_are_placed_listed_and_released(daemon, capsys):
    code, out, err = cli(capsys, daemon, "hold", "place", "--client", daemon.seeded["clients"][2],
                         "--reason", "Matter 12", "--json")
    assert code == 0, err
    hold = json.loads(out)
    assert hold["client_id"] == daemon.seeded["clients"][2] and hold["active"]
    code, out, _ = cli(capsys, daemon, "hold", "list")
    assert code == 0 and len(out.splitlines()) == 2 and "reason: Matter 12" in out
    code, out, _ = cli(capsys, daemon, "hold", "release", hold["id"])
    assert code == 0 and out.startswith("released ")
    code, _, err = cli(capsys, daemon, "hold", "release", hold["id"])
    assert code == 4 and "already released" in err
    code, _, err = cli(capsys, daemon, "hold", "place", "--reason", "x", "--client", "01a2061f-77c9-7000-a71a-0000000000ff")
    assert code == 3
    code, out, _ = cli(capsys, daemon, "hold", "list", "--all", "--json")
    assert len(json.loads(out)) == 2


def test_erasure_needs_confirmation_and_two_named_people(daemon, capsys, tmp_path):
    code, out, err = cli(capsys, daemon, "erasure", "list", "--json")
    assert code == 0, err
    assert [r["id"] for r in json.loads(out)] == [daemon.seeded["request"]]
    # The local operator (root or the daemon's account) is nobody in particular: it may
    # neither decide nor file a request that needs two people.
    code, _, err = cli(capsys, daemon, "erasure", "approve", daemon.seeded["request"], "--yes")
    assert code == 8 and "named, logged-in person" in err
    code, _, err = cli(capsys, daemon, "erasure", "request", daemon.seeded["clients"][2], "--reason", "ref 4")
    assert code == 8 and "named, logged-in person" in err
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    code, _, err = cli(capsys, daemon, "login", "-u", "owner1", "--password-file", tmp_path / "pw",
                       "--totp", pyotp.TOTP(daemon.seeded["owner_totp"]).now())
    assert code == 0, err
    code, _, err = cli(capsys, daemon, "erasure", "approve", daemon.seeded["request"])
    assert code == 2 and "needs confirmation" in err
    assert daemon.call("erasure.list")[0]["status"] == "pending"
    code, out, err = cli(capsys, daemon, "erasure", "approve", daemon.seeded["request"], "--yes")
    assert code == 0, err
    assert out.startswith(f"erased client {daemon.seeded['clients'][1]}: 1 key(s) destroyed, 2 session(s)")
    code, out, err = cli(capsys, daemon, "erasure", "request", daemon.seeded["clients"][2], "--reason", "ref 4",
                         "--json")
    assert code == 0, err
    mine = json.loads(out)
    assert mine["requested_by"] == "user:owner1"
    code, _, err = cli(capsys, daemon, "erasure", "approve", mine["id"], "--yes")
    assert code == 8 and "four-eyes" in err
    code, _, err = cli(capsys, daemon, "erasure", "reject", mine["id"])
    assert code == 8
    code, out, _ = cli(capsys, daemon, "erasure", "list", "--all")
    assert code == 0 and "executed" in out and "pending" in out


def test_retention_run_waits_for_the_job(daemon, capsys):
    code, out, err = cli(capsys, daemon, "retention", "run", "--wait", "--json")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "succeeded" and run["job_kind"] == "retention"
