"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per message.

READY=1 once the control socket serves, STATUS= lines saying what the daemon does,
WATCHDOG=1 at half of $WATCHDOG_USEC, STOPPING=1 and RELOADING=1 around those acts.
Outside systemd (no NOTIFY_SOCKET) every call is a no-op.
"""
from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address = None
        if address:
            # A leading '@' names a socket in Linux's abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str) -> bool:
        if self._address is None:
            return False
        if self._sock is None:
            # Non-blocking: a receiver that stops reading must never stall the event loop
            # (a full datagram queue would otherwise block sendto forever).
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            self._sock.sendto("\n".join(lines).encode(), self._address)
            return True
        except OSError:
            return False  # systemd gone or its queue full: nothing useful to do about it

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout), or None when not asked."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None
