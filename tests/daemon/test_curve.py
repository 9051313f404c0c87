"""The optional TCP endpoint: CURVE-encrypted, and only allow-listed client keys connect."""
import asyncio
import time

import pytest
import zmq.auth

from strongroom.console.client import Client, ClientError, Curve
from tests.daemon.conftest import PASSWORD, DaemonProcess, ephemeral_ports, free_port_pair, make_data_dir



@pytest.fixture
def curve_daemon(tmp_path, db_url):
    keys = tmp_path / "curve"
    allowed = keys / "clients"
    allowed.mkdir(parents=True)
    server_public, server_secret = zmq.auth.create_certificates(str(keys), "server")
    client_public, client_secret = zmq.auth.create_certificates(str(allowed), "console")
    stranger_public, stranger_secret = zmq.auth.create_certificates(str(keys), "stranger")
    port = free_port_pair()
    data_dir = make_data_dir(tmp_path, db_url, extra=(
        f'\n[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n'
        f'curve_secret_key_file = "{server_secret}"\ncurve_allowed_clients_dir = "{allowed}"\n'))
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    load = zmq.auth.load_certificate
    yield proc, port, load(server_public)[0], load(client_secret), load(stranger_secret)
    assert proc.stop() == 0


def _call(port, server_key, keypair, token, cmd="status", timeout=5.0, args=None):
    async def go():
        client = Client(f"tcp://127.0.0.1:{port}", events_endpoint=f"tcp://127.0.0.1:{port + 1}", token=token,
                        curve=Curve(server_key, keypair[0], keypair[1]), timeout=timeout)
        try:
            return await client.call(cmd, args)
        finally:
            client.close()
    return asyncio.run(go())


def test_allow_listed_client_logs_in_and_is_served_over_curve(curve_daemon):
    proc, port, server_key, client_keys, _ = curve_daemon
    session = _call(port, server_key, client_keys, None, "auth.login",
                    args={"username": "auditor1", "password": PASSWORD,
                          "client": {"ssh_connection": "192.0.2.9 50000 10.0.0.1 22"}})
    status = _call(port, server_key, client_keys, session["token"])
    assert status["role"] == "leader"
    # The address is the TCP peer's, not the SSH client the login reported.
    event = proc.call("security.event.list", {"event_type": "login_success", "limit": 1})[0]
    assert event["ip_address"] == "127.0.0.1" and event["details"]["reported_ssh_client"] == "192.0.2.9"


def test_the_local_operator_token_is_refused_over_tcp(curve_daemon):
    """It is the local operator's because the kernel says who is on the local socket;
    over TCP nothing says so."""
    proc, port, server_key, client_keys, _ = curve_daemon
    with pytest.raises(ClientError) as err:
        _call(port, server_key, client_keys, proc.local_token())
    assert err.value.code == "unauthenticated"


def test_unknown_client_key_gets_no_answer(curve_daemon):
    proc, port, server_key, _, stranger_keys = curve_daemon
    started = time.monotonic()
    with pytest.raises(ClientError) as err:
        _call(port, server_key, stranger_keys, proc.local_token(), timeout=2.0)
    assert err.value.code == "unavailable" and time.monotonic() - started < 10
    assert proc.call("status")["role"] == "leader"  # ipc still fine


def test_tcp_without_keys_is_a_config_error(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra='\n[daemon]\ntcp_endpoint = "tcp://127.0.0.1:1"\n')
    proc = DaemonProcess(data_dir, tmp_path)
    code = proc.proc.wait(60)
    assert code != 0 and "CURVE" in proc.log()
    proc.stop()


def test_a_daemons_port_pair_lies_below_the_kernels_ephemeral_range():
    """Where no outgoing connection can take the event port before the daemon binds it
    (a pair from bind(port 0) could, and under CI's load did)."""
    for _ in range(20):
        port = free_port_pair()
        assert 1024 < port and port + 1 < ephemeral_ports().start
