"""Sync through the control socket: peers added, listed, paused, resumed and removed; a
pass run as a `sync` job with its events, metrics and status; the quarantine without
row content; health's sync section; peers and schedules from the config file; and a
notification when a peer has failed too often. Each on SQLite and PostgreSQL, with a
second site (SQLite) that joined the daemon's practice."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request

import pyotp
import pytest

from strongroom.console.client import ClientError
from strongroom.core.datadir import DB_NAME
from strongroom.core.sync.passes import Problem, quarantine
from strongroom.core.sync.settings import DEFAULT_STRATEGIES
from tests.daemon.conftest import PASSWORD, Receiver, data_transaction, make_site, running_daemon, wait_run

MASKED = "postgresql://sync:s3cret@central.example.org/strongroom?sslmode=verify-full"


def login(daemon, username: str, totp_secret: str | None = None) -> str:
    totp = pyotp.TOTP(totp_secret).now() if totp_secret else None
    return daemon.call("auth.login", {"username": username, "password": PASSWORD, "totp": totp},
                       token=None)["token"]


def error_of(daemon, cmd, args, token="local") -> ClientError:
    with pytest.raises(ClientError) as err:
        daemon.call(cmd, args, token=token)
    return err.value


def scrape(daemon) -> str:
    port = daemon.call("status")["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.fixture
def site(tmp_path, db_url):
    data_dir, laptop_url, seeded = make_site(tmp_path, db_url)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.laptop_url, proc.seeded = laptop_url, seeded
        yield proc


def test_peers_are_added_listed_paused_resumed_and_removed_and_each_change_audited(site):
    added = site.call("sync.peer.add", {"name": "laptop", "url": site.laptop_url, "direction": "push"})
    assert (added["name"], added["direction"], added["is_active"]) == ("laptop", "push", True)
    site.call("sync.peer.add", {"name": "central", "url": MASKED})
    listed = site.call("sync.peer.list")
    assert [p["name"] for p in listed] == ["central", "laptop"] and listed == site.call("sync.peer.list")
    assert listed[0]["url"] == "postgresql://sync:***@central.example.org/strongroom?sslmode=verify-full"

    assert site.call("sync.peer.pause", {"name": "laptop"})["event"] == "sync_peer_paused"
    assert next(p for p in site.call("sync.peer.list") if p["name"] == "laptop")["is_active"] is False
    site.call("sync.peer.resume", {"name": "laptop"})
    assert next(p for p in site.call("sync.peer.list") if p["name"] == "laptop")["is_active"] is True
    site.call("sync.peer.remove", {"name": "central"})
    assert [p["name"] for p in site.call("sync.peer.list")] == ["laptop"]
    events = [json.loads(e["details"] or "{}").get("event") if isinstance(e["details"], str) else e["details"]["event"]
              for e in site.call("audit.tail", {"limit": 10, "table_name": "sync_peers"})]
    assert events[:5] == ["sync_peer_removed", "sync_peer_resumed", "sync_peer_paused", "sync_peer_added",
                          "sync_peer_added"]
    assert "s3cret" not in site.log()


def test_bad_peers_are_refused_naming_the_rule_and_never_the_input(site):
    site.call("sync.peer.add", {"name": "laptop", "url": site.laptop_url})
    cases = [
        ({"name": "laptop", "url": site.laptop_url}, "conflict", "already exists"),
        ({"name": "far", "url": "postgresql://sync:s3cret@far.example.org/db"}, "bad_request",
         "sslmode=verify-full"),
        ({"name": "123-45-6789", "url": "mysql://x@y/z"}, "bad_request", "only sqlite and postgresql"),
        ({"name": "has space", "url": site.laptop_url}, "bad_request", "name"),
        ({"name": "x", "url": site.laptop_url, "direction": "sideways"}, "bad_request", "direction"),
    ]
    for args, code, says in cases:
        err = error_of(site, "sync.peer.add", args)
        assert err.code == code and says in err.message, (args, err.code, err.message)
        assert "s3cret" not in err.message and "123-45-6789" not in err.message and "far.example" not in err.message
    err = error_of(site, "sync.peer.pause", {"name": "123-45-6789"})
    assert err.code == "not_found" and "123-45-6789" not in err.message
    assert [p["name"] for p in site.call("sync.peer.list")] == ["laptop"]


def test_a_pass_with_a_peer_that_is_not_there_or_paused_is_refused_before_a_run_is_recorded(site):
    site.call("sync.peer.add", {"name": "laptop", "url": site.laptop_url})
    err = error_of(site, "sync.run", {"peer": "123-45-6789"})
    assert err.code == "not_found" and "123-45-6789" not in err.message
    site.call("sync.peer.pause", {"name": "laptop"})
    err = error_of(site, "sync.run", {"peer": "laptop"})
    assert err.code == "conflict" and "paused" in err.message
    assert site.call("job.list", {"kind": "sync"}) == []


def test_permissions_for_peers_status_passes_and_the_quarantine(site):
    operator = login(site, "operator1", site.seeded["operator_totp"])
    auditor, clinician = login(site, "auditor1"), login(site, "clinician")
    err = error_of(site, "sync.peer.add", {"name": "laptop", "url": site.laptop_url}, token=operator)
    assert err.code == "forbidden" and "config:write" in err.message
    assert site.call("sync.status.get", token=operator)["peers"] == []         # config:read
    assert site.call("sync.quarantine.list", token=operator) == []              # sync:resolve
    for token in (auditor, clinician):
        err = error_of(site, "sync.run", {}, token=token)
        assert err.code == "forbidden" and "job:sync:run" in err.message
        assert error_of(site, "sync.quarantine.list", {}, token=token).code == "forbidden"
        assert error_of(site, "sync.status.get", {}, token=token).code == "forbidden"


def test_a_pass_runs_as_a_job_publishes_its_counts_and_shows_in_status_metrics_and_health(site):
    site.call("sync.peer.add", {"name": "laptop", "url": site.laptop_url})

    async def run_and_listen():
        client = site.client()
        events = client.subscribe("sync.pass")
        await asyncio.sleep(0.2)
        try:
            run = await client.call("sync.run", {"peer": "laptop"})
            topic, data = await asyncio.wait_for(events.recv(), 60)
        finally:
            client.close()
        return run, topic, data

    run, topic, data = asyncio.run(run_and_listen())
    assert run["job_kind"] == "sync" and run["params"]["peer"] == "laptop"
    final = wait_run(site, run["id"])
    assert final["status"] == "succeeded", final
    (result,) = final["result"]["peers"]
    assert result["sent"] == 6 and result["received"] == 0          # 3 clients, 3 sessions
    assert topic == "sync.pass" and data["peer"] == "laptop" and data["outcome"] == "succeeded"
    assert (data["sent"], data["received"]) == (6, 0)

    status = site.call("sync.status.get")
    (laptop,) = status["peers"]
    clients = next(t for t in laptop["tables"] if t["table"] == "clients")
    assert clients["push_watermark"] > 0 and clients["pending_rows"] == 0
    assert laptop["failures"] == 0 and laptop["lag_seconds"] < 60 and laptop["lagging"] is False

    text = scrape(site)
    assert 'strongroom_sync_rows_total{direction="sent",peer="laptop"} 6.0' in text
    assert 'strongroom_sync_peer_failures{peer="laptop"} 0.0' in text
    deadline = time.monotonic() + 10
    while (health := site.call("health"))["sync"]["max_lag_seconds"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert health["sync"] == {"peers": 1, "failing": [], "max_lag_seconds": health["sync"]["max_lag_seconds"],
                              "open_conflicts": 0, "quarantined": 0, "consistency": {}}


def test_the_quarantine_lists_rows_without_their_content(site):
    with data_transaction(site.data_dir) as (_ctx, conn):
        from strongroom.core.sync.peers import add_peer
        peer_id = add_peer(conn, "laptop", site.laptop_url)
        quarantine(conn, peer_id, "clients", {"id": "0190d6c1-0000-7000-8000-000000000001",
                                              "notes_enc": "c2VjcmV0LWNpcGhlcnRleHQ="},
                   Problem("ciphertext_invalid", "clients.notes does not open under its row's key"))
    (row,) = site.call("sync.quarantine.list")
    assert (row["peer"], row["table"], row["reason"]) == ("laptop", "clients", "ciphertext_invalid")
    assert "image" not in row and "c2VjcmV0" not in json.dumps(row)
    assert site.call("sync.quarantine.list", {"status": "all", "after_id": row["id"]}) == []
    deadline = time.monotonic() + 10
    while site.call("health")["sync"]["quarantined"] != 1:
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_configured_peers_and_their_schedules_apply_at_start_and_on_reload(tmp_path, db_url):
    laptop_url = f"sqlite:///{tmp_path / 'laptop' / DB_NAME}"       # where make_site puts it
    data_dir, _, _ = make_site(tmp_path, db_url, extra=(
        f'\n[sync.peers.laptop]\nurl = "{laptop_url}"\nschedule = "*/5 * * * *"\n'))
    config = data_dir / "strongroom.toml"
    with running_daemon(data_dir, tmp_path) as proc:
        (laptop,) = proc.call("sync.peer.list")
        assert (laptop["name"], laptop["direction"]) == ("laptop", "both")
        assert "sync:laptop" in proc.call("status")["next_runs"]
        text = config.read_text().replace('schedule = "*/5 * * * *"', 'direction = "pull"')
        config.write_text(text + '\n[schedules]\nsync = "0 * * * *"\n')
        os.kill(proc.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 15
        while proc.call("sync.peer.list")[0]["direction"] != "pull":
            assert time.monotonic() < deadline, proc.log()
            time.sleep(0.2)
        next_runs = proc.call("status")["next_runs"]
        assert "sync" in next_runs and "sync:laptop" not in next_runs


def test_a_peer_failing_too_often_is_notified_once_and_reported_in_health(tmp_path, db_url):
    receiver = Receiver()
    try:
        # A peer that cannot be reached is retried within a pass (2 s apart by default):
        # no pause here, or three failing passes cost 20 s of this test's time.
        no_pause = "".join(f"\n[sync.tables.{t}]\nretry_delay_seconds = 0\n" for t in DEFAULT_STRATEGIES)
        data_dir, _, _ = make_site(tmp_path, db_url, extra=(
            '\n[sync]\nnotify_after_failures = 2\n' + no_pause +
            f'\n[notify]\nwebhooks = [ {{ url = "{receiver.url}", style = "json" }} ]\n'))
        with running_daemon(data_dir, tmp_path) as proc:
            proc.call("sync.peer.add", {"name": "gone", "url": f"sqlite:///{tmp_path}/missing/dir/none.db"})
            for _ in range(3):
                assert wait_run(proc, proc.call("sync.run", {"peer": "gone"})["id"])["status"] == "failed"
            failing = lambda b: b.get("title") == "sync with gone failing"   # noqa: E731
            body = receiver.wait(failing)
            assert body["kind"] == "sync" and body["fields"] == {"peer": "gone", "failures": 2}
            time.sleep(1.0)
            assert len([b for b in receiver.bodies if failing(b)]) == 1       # at the threshold, not after
            assert "missing" not in json.dumps(receiver.bodies)                # no path, no address
            assert proc.call("health")["sync"]["failing"] == ["gone"]
            status = proc.call("sync.status.get")["peers"][0]
            assert status["failures"] == 3 and status["next_attempt_at"] is not None
    finally:
        receiver.close()
