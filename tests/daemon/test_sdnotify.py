"""sd_notify never blocks the daemon, whatever the receiver does."""
import socket
import time

from strongroom.daemon.sdnotify import Notifier, watchdog_interval


def test_messages_reach_the_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    notifier = Notifier(str(path))
    assert notifier.ready("serving")
    message = sink.recv(4096).decode()
    assert "READY=1" in message and "STATUS=serving" in message and "MAINPID=" in message
    notifier.close()
    sink.close()


def test_a_receiver_that_never_reads_does_not_block(tmp_path):
    path = tmp_path / "notify.sock"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(path))
    notifier = Notifier(str(path))
    started = time.monotonic()
    results = [notifier.watchdog() for _ in range(5000)]
    assert time.monotonic() - started < 2.0
    assert results[0] is True and results[-1] is False  # the queue filled; later pings were dropped
    notifier.close()
    sink.close()


def test_without_notify_socket_everything_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled and notifier.ready("x") is False


def test_watchdog_interval_is_half_the_timeout(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
