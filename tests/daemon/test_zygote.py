"""The daemon tests' fork server (tests/daemon/zygote.py): a daemon it forks behaves as
one `python -m strongroom.daemon.main` started, to the test that started it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.daemon import zygote
from tests.daemon.conftest import DaemonProcess, running_daemon
from tests.daemon.zygote import Zygote, ZygoteProcess


@pytest.fixture(autouse=True)
def through_the_zygote(monkeypatch):
    """These tests are about the zygote, whatever STRONGROOM_TEST_ZYGOTE says."""
    monkeypatch.delenv("STRONGROOM_TEST_ZYGOTE", raising=False)


def test_a_forked_daemon_becomes_ready_and_answers(data_dir, tmp_path):
    with running_daemon(data_dir, tmp_path) as daemon:
        assert isinstance(daemon.proc, ZygoteProcess)
        assert daemon.call("status")["role"] in ("leader", "standby")
        assert daemon.proc.poll() is None and daemon.proc.returncode is None


def test_its_stdin_is_dev_null_and_its_stdout_and_stderr_the_log(data_dir, tmp_path):
    with running_daemon(data_dir, tmp_path) as daemon:
        fds = {fd: os.readlink(f"/proc/{daemon.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{daemon.proc.pid}/fd")}
        assert (fds["0"], fds["1"], fds["2"]) == (os.devnull, str(daemon.log_path), str(daemon.log_path))
        assert not [target for target in fds.values() if target.startswith("pipe:")], fds   # none of the zygote's


def test_sigterm_stops_it_with_0(data_dir, tmp_path):
    daemon = DaemonProcess(data_dir, tmp_path)
    daemon.wait_ready()
    daemon.proc.terminate()
    assert daemon.proc.wait(30) == 0 == daemon.proc.returncode == daemon.stop()


def test_sigkill_ends_it_with_minus_9(data_dir, tmp_path):
    daemon = DaemonProcess(data_dir, tmp_path)
    daemon.wait_ready()
    daemon.proc.kill()
    assert daemon.proc.wait(30) == -signal.SIGKILL == daemon.proc.poll()
    daemon.stop()


def test_wait_with_a_timeout_raises_while_it_runs(data_dir, tmp_path):
    with running_daemon(data_dir, tmp_path) as daemon:
        with pytest.raises(subprocess.TimeoutExpired):
            daemon.proc.wait(timeout=0.05)
        assert daemon.proc.poll() is None


def without_timestamps(log: str) -> list:
    return [{k: v for k, v in json.loads(line).items() if k != "ts"} if line.startswith("{") else line
            for line in log.splitlines()]


def test_a_bad_data_dir_exits_2_with_the_line_python_m_prints(tmp_path):
    missing = tmp_path / "missing"
    daemon = DaemonProcess(missing, tmp_path)
    assert daemon.proc.wait(30) == 2
    log = daemon.log()
    daemon.stop()
    real = subprocess.run([sys.executable, "-m", "strongroom.daemon.main", "--data-dir", str(missing)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert real.returncode == 2
    assert without_timestamps(log) == without_timestamps(real.stdout)
    assert log.splitlines()[-1] == f"strongroomd: error: {missing / 'strongroom.toml'}: configuration file not found"


def test_it_runs_with_the_environment_it_was_given_not_the_zygotes(data_dir, tmp_path, monkeypatch):
    with monkeypatch.context() as env:      # a zygote of its own, started in another environment
        env.setenv("STRONGROOM_LOG_LEVEL", "ERROR")     # a started daemon logs nothing at ERROR
        env.setenv("RUNTIME_DIRECTORY", str(tmp_path / "the-zygotes"))
        own = Zygote()
    monkeypatch.setattr(zygote, "_zygote", own)
    try:
        daemon = DaemonProcess(data_dir, tmp_path, env={"STRONGROOM_LOG_LEVEL": "INFO"})
        try:
            daemon.wait_ready()         # on the test's NOTIFY_SOCKET
            assert daemon.call("status")["role"] == "leader"    # on the test's RUNTIME_DIRECTORY
        finally:
            assert daemon.stop() == 0, daemon.log()
    finally:
        own.close()
    assert not (tmp_path / "the-zygotes").exists()
    assert '"level": "info"' in daemon.log_path.read_text()


def test_a_child_that_fails_unexpectedly_leaves_its_traceback_in_the_log_and_exits_1(tmp_path):
    # A cwd that is gone fails the child before the daemon runs (Popen would raise in
    # the test instead): as python does with an uncaught exception.
    log = tmp_path / "d1.log"
    proc = zygote.start_daemon(["--data-dir", str(tmp_path)], env=dict(os.environ), log_path=log,
                               cwd=str(tmp_path / "gone"))
    assert proc.wait(30) == 1
    assert log.read_text().startswith("Traceback (most recent call last):")
    assert log.read_text().splitlines()[-1].startswith("FileNotFoundError:")
