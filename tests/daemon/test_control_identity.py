"""Who is on the other end of the control socket is learnt from the transport, never
from what the client says: the ipc peer's uid (SO_PEERCRED, which ZeroMQ reports in a
message's Peer-Address), a TCP peer's address. The login rate limit keys on it, and the
local operator token is good only for the uid it is presented from."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from strongroom.console.client import ClientError

ATTEMPT = """
import asyncio, json, sys
from strongroom.console.client import Client, ClientError
async def go():
    client = Client(sys.argv[1], timeout=20)
    try:
        await client.call("auth.login", json.loads(sys.argv[2]))
        return "ok"
    except ClientError as err:
        return err.code
    finally:
        client.close()
print(asyncio.run(go()))
"""


def failed_login(daemon, username: str, ssh: str) -> dict:
    return {"username": username, "password": "not the password at all",
            "client": {"ssh_connection": f"{ssh} 40000 10.0.0.1 22", "host": "h"}}


def test_rotating_the_reported_address_and_the_process_does_not_evade_the_login_limit(daemon):
    """Each failed login comes from a new process (a new pid) claiming a new SSH client
    address; the per-address limit (6 in the test config) still counts them all, because
    they share one operating-system user."""
    limit = 6
    procs = [subprocess.Popen([sys.executable, "-c", ATTEMPT, daemon.endpoint,
                               json.dumps(failed_login(daemon, f"ghost{i}", f"198.51.100.{i}"))],
                              stdout=subprocess.PIPE, text=True) for i in range(limit)]
    codes = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert codes == ["unauthenticated"] * limit
    with pytest.raises(ClientError) as err:
        daemon.call("auth.login", failed_login(daemon, "ghost-next", "192.0.2.77"), token=None)
    assert err.value.code == "rate_limited"


def test_a_login_records_the_transport_peer_and_labels_the_ssh_address_as_reported(daemon):
    daemon.call("auth.login", {"username": "auditor1", "password": "correct horse battery staple 42",
                               "client": {"ssh_connection": "203.0.113.7 51234 10.0.0.1 22"}}, token=None)
    event = daemon.call("security.event.list", {"event_type": "login_success", "limit": 1})[0]
    assert event["ip_address"] == f"ipc:uid={os.getuid()}"
    assert event["details"]["reported_ssh_client"] == "203.0.113.7"
    session = [s for s in daemon.call("session.list") if s["username"] == "auditor1"][0]
    assert session["client_addr"] == f"ipc:uid={os.getuid()}"


def test_the_local_operator_is_the_uid_the_kernel_reports_not_the_one_claimed(daemon):
    secret = (daemon.runtime / "operator.token").read_text().strip()
    assert daemon.call("whoami", token=f"local:{os.getuid()}:{secret}")["actor"] == f"local:{os.getuid()}"
    for claimed in (os.getuid() + 4242, 1111, 2222):
        with pytest.raises(ClientError) as err:
            daemon.call("whoami", token=f"local:{claimed}:{secret}")
        assert err.value.code == "unauthenticated"
    audited = {e["actor"] for e in daemon.call("audit.tail", {"limit": 200})}
    assert not {"local:1111", "local:2222", f"local:{os.getuid() + 4242}"} & audited
