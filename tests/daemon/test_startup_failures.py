"""A daemon that cannot start says why in one line, exits with the code of that kind of
failure and leaves nothing behind: no socket a client would wait on, no operator token."""
from __future__ import annotations

import socket
import subprocess
import sys

from tests.daemon.conftest import make_data_dir


def start(data_dir):
    return subprocess.run([sys.executable, "-m", "strongroom.daemon.main", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)


def test_a_metrics_port_in_use_is_one_line_and_leaves_nothing_behind(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url)
    config = data_dir / "strongroom.toml"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "[metrics]\nport = 0" in config.read_text()
        config.write_text(config.read_text().replace("[metrics]\nport = 0", f"[metrics]\nport = {port}"))
        out = start(data_dir)
    assert "Traceback" not in out.stderr
    assert out.returncode == 4, out.stderr
    (line,) = [l for l in out.stderr.splitlines() if l.startswith("strongroomd: error:")]
    assert "metrics.port" in line and str(port) in line and "in use" in line
    runtime = data_dir / "run"
    assert not (runtime / "control.sock").exists() and not (runtime / "events.sock").exists()
    assert not (runtime / "operator.token").exists()


def test_a_runtime_directory_held_by_another_daemon_is_left_alone(tmp_path, db_url):
    """The refusal of a second daemon must not clean up the first one's sockets."""
    import fcntl
    import os

    data_dir = make_data_dir(tmp_path, db_url)
    runtime = data_dir / "run"
    runtime.mkdir(mode=0o700)
    (runtime / "control.sock").write_text("the first daemon's")
    fd = os.open(runtime / "strongroomd.pid", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242\n")
        out = start(data_dir)
    finally:
        os.close(fd)
    assert "Traceback" not in out.stderr and out.returncode == 4
    assert "another strongroomd (pid 4242)" in out.stderr
    assert (runtime / "control.sock").read_text() == "the first daemon's"


def test_a_tcp_endpoint_in_use_is_one_line_and_leaves_nothing_behind(tmp_path, db_url):
    import zmq.auth

    keys = tmp_path / "curve"
    allowed = keys / "clients"
    allowed.mkdir(parents=True)
    _, server_secret = zmq.auth.create_certificates(str(keys), "server")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        data_dir = make_data_dir(tmp_path, db_url, extra=(
            f'\n[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n'
            f'curve_secret_key_file = "{server_secret}"\ncurve_allowed_clients_dir = "{allowed}"\n'))
        out = start(data_dir)
    assert "Traceback" not in out.stderr
    assert out.returncode == 4, out.stderr
    (line,) = [l for l in out.stderr.splitlines() if l.startswith("strongroomd: error:")]
    assert "daemon.tcp_endpoint" in line and "in use" in line
    runtime = data_dir / "run"
    assert not (runtime / "control.sock").exists() and not (runtime / "operator.token").exists()
