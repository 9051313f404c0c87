"""A fork server ("zygote") that starts the daemon tests' daemons without their imports.

Why: some 450 tests each start strongroomd, and of the ~0.6 s a start takes (1.5-2 s
under the suite's load) nearly all is Python importing the daemon's modules. This
process, one per pytest process, imports them once and then forks a child per daemon
start, as multiprocessing's forkserver does. The child then runs what
`python -m strongroom.daemon.main ARGV` runs, `strongroom.daemon.main.main(ARGV)`, with
the test's environment, cwd and log file (stdout and stderr both). Measured on an idle
two-core machine, time from start to READY=1: 0.68 s -> 0.05 s (median of 5).

Fork is only safe from a single-threaded process that holds no connection, zmq
Context, event loop or logging configuration, so the zygote does nothing but import
(no daemon code runs before the fork) and checks it has one thread before each fork.

Protocol: one JSON object a line on the zygote's stdin, {argv, env, cwd, log_path,
status_path}, answered by one line on its stdout, {pid} (or {error}). When a child
exits, the zygote writes its exit code, negative for a signal as Popen's returncode, to
status_path (atomically: a temp file, then os.replace). When stdin closes (the test
process has ended) the zygote exits; the daemons it started run on, as Popen's did.

Run as `python tests/daemon/zygote.py` (what `start_daemon` does) or
`python -m tests.daemon.zygote`. The client half, `start_daemon` and `ZygoteProcess`
(the part of subprocess.Popen the tests use), runs in the pytest process.
`STRONGROOM_TEST_ZYGOTE=0` makes tests/daemon/conftest.py use Popen instead.

Known differences from a real `python -m` start, none of which the daemon looks at:
the process's /proc/PID/cmdline is the zygote's, its parent is the zygote, its
interpreter was started with the zygote's environment (PYTHON* variables, hash seed),
modules are imported before the test's environment is in place (the daemon reads its
environment variables when it runs, not at import), the child opens the log itself (in
append mode) rather than sharing the test's file offset, and a child that fails before
the daemon's main (a cwd that is gone) exits 1 with a traceback in the log where Popen
would have raised in the test.
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

DAEMON_MODULE = "strongroom.daemon.main"
# The daemon's modules, and what it imports lazily on its first database connection.
PRELOAD = (DAEMON_MODULE, "psycopg", "sqlalchemy.dialects.postgresql.psycopg",
           "sqlalchemy.dialects.sqlite.pysqlite")
FIELDS = {"argv", "env", "cwd", "log_path", "status_path"}


# --- the zygote -------------------------------------------------------------------------

def preload() -> None:
    """What a daemon start spends its time on, imported once (the collector off while it
    runs, as daemon/main.py does for its own imports). Imports only: nothing here may
    start a thread or open a connection, context, loop or log handler."""
    from strongroom.core.bulk import collector_paused
    with collector_paused():
        for name in PRELOAD:
            importlib.import_module(name)


def single_threaded() -> bool:
    """One thread, as Python counts them and as the kernel does (a C library's thread
    would not show in `threading`)."""
    return threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1


def exit_code(info: os.waitid_result) -> int:
    """subprocess.Popen's returncode for a waitid() result: the exit status, or minus the
    signal that ended the process."""
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def write_status(path: str, code: int) -> None:
    """The exit code at PATH, whole or not at all (the client polls for the file)."""
    try:
        with open(f"{path}.tmp", "w") as out:
            out.write(f"{code}\n")
        os.replace(f"{path}.tmp", path)
    except OSError as exc:      # the test process is gone and took its directory
        print(f"zygote: cannot record exit {code} at {path}: {exc}", file=sys.stderr)


def serve(requests: int, replies: int) -> dict[str, Any] | None:
    """Answer requests until REQUESTS closes (returns None: the zygote exits), and reap
    the children meanwhile. In a freshly forked child it returns that child's request:
    the child leaves the loop (and the zygote's stack) by returning, never by running on
    in it, and becomes the daemon at the script's top level."""
    poller = select.poll()      # select.poll holds no descriptor a child would inherit
    poller.register(requests, select.POLLIN)
    children: dict[int, tuple[int, str]] = {}       # pidfd -> (pid, status path)
    pending = b""
    while True:
        for fd, _ in poller.poll():
            if fd != requests:
                pid, status_path = children.pop(fd)
                poller.unregister(fd)
                # The status is on disk before the pid is freed: a client that finds no
                # status may still signal the pid, which is then still this child's.
                write_status(status_path, exit_code(os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)))
                os.waitpid(pid, 0)
                os.close(fd)
                continue
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                return None
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                try:
                    request = json.loads(line)
                    if set(request) != FIELDS:
                        raise ValueError(f"a request has {sorted(FIELDS)}, not {sorted(request)}")
                    status_path = request["status_path"]
                    if not single_threaded():
                        raise RuntimeError(f"refusing to fork with {threading.active_count()} threads "
                                           f"({len(os.listdir('/proc/self/task'))} in the kernel's count)")
                    sys.stdout.flush()
                    sys.stderr.flush()
                    pid = os.fork()
                except Exception as exc:
                    print(f"zygote: {exc!r}", file=sys.stderr, flush=True)
                    reply: dict[str, Any] = {"error": repr(exc)}
                else:
                    if pid == 0:
                        for pidfd in children:
                            os.close(pidfd)
                        os.close(requests)
                        os.close(replies)
                        return request
                    pidfd = os.pidfd_open(pid)
                    children[pidfd] = (pid, status_path)
                    poller.register(pidfd, select.POLLIN)
                    reply = {"pid": pid}
                try:
                    os.write(replies, json.dumps(reply).encode() + b"\n")
                except BrokenPipeError:
                    return None


def become_daemon(request: dict[str, Any], handlers: dict[int, Any]) -> None:
    """In the forked child: the test's log file first (stdout and stderr, one open file
    between them as Popen's stderr=STDOUT made it; a relative path is the test's cwd's),
    so that whatever fails from here on leaves its traceback there; then the signal
    dispositions the zygote changed, the test's cwd and environment, sys.argv and
    sys.path[0] (the cwd, as `python -m` puts it)."""
    log = os.open(os.path.join(request["cwd"], request["log_path"]),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.path[0] = os.getcwd()
    sys.argv = [sys.modules[DAEMON_MODULE].__file__ or DAEMON_MODULE, *request["argv"]]


def zygote_main() -> None:
    """The zygote's life; returns only in a forked child, which then runs the daemon."""
    # The protocol's pipes move off fds 0 and 1, so the child can drop them and nothing
    # an import prints can corrupt a reply: stdin becomes /dev/null (as an xdist
    # worker's own is), stdout goes where stderr goes.
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    preload()
    # Ctrl-C reaches the whole process group: the daemons stop on it, the zygote ends
    # when its test process does (stdin closes). The child gets Python's handler back.
    handlers = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    request = serve(requests, replies)
    if request is None:
        return
    become_daemon(request, handlers)
    # Its SystemExit (or an unexpected exception: traceback to the log, exit 1) ends
    # this script as it would end `python -m strongroom.daemon.main`, atexit hooks,
    # logging's shutdown and stdio flushing included.
    sys.modules[DAEMON_MODULE].main(request["argv"])


# --- the client, in the test process ------------------------------------------------------

class Zygote:
    """The running zygote of this test process, and the directory its children's exit
    statuses go to."""

    def __init__(self) -> None:
        self.status_dir = tempfile.mkdtemp(prefix="strongroom-zygote-")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.count = 0
        atexit.register(self.close)

    def start(self, argv: list[str], env: dict[str, str], cwd: str, log_path: str) -> ZygoteProcess:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.count += 1
        status_path = os.path.join(self.status_dir, f"{self.count}.status")
        request = {"argv": argv, "env": env, "cwd": cwd, "log_path": log_path, "status_path": status_path}
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = b""
        if not line:
            raise RuntimeError(f"the daemon zygote exited ({self.proc.wait()}); see its stderr")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the daemon zygote refused to start a daemon: {reply['error']}")
        return ZygoteProcess([sys.executable, "-m", DAEMON_MODULE, *argv], reply["pid"], status_path, self)

    def close(self) -> None:
        """At the test process's exit: the zygote goes (its daemons do not), then the
        statuses' directory."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.status_dir, ignore_errors=True)


class ZygoteProcess:
    """The part of subprocess.Popen the daemon tests use, for a daemon the zygote forked:
    it is the zygote's child, so its exit status comes from the file the zygote writes."""

    def __init__(self, args: list[str], pid: int, status_path: str, zygote: Zygote) -> None:
        self.args = args
        self.pid = pid
        self.returncode: int | None = None
        self._status_path = status_path
        self._zygote = zygote

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                with open(self._status_path) as status:
                    self.returncode = int(status.read())
            except FileNotFoundError:
                if self._zygote.proc.poll() is not None and not os.path.exists(f"/proc/{self.pid}"):
                    raise RuntimeError(f"daemon {self.pid} ended after its zygote did: its exit status "
                                       "is lost") from None
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        start = time.monotonic()
        while (code := self.poll()) is None:
            if timeout is not None and time.monotonic() - start >= timeout:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_zygote: Zygote | None = None
_lock = threading.Lock()    # a test may start daemons from several threads


def start_daemon(argv: list[str], *, env: dict[str, str], log_path: str | os.PathLike[str],
                 cwd: str | None = None) -> ZygoteProcess:
    """`python -m strongroom.daemon.main ARGV` with ENV, in CWD (this process's by
    default), stdout and stderr appended to LOG_PATH, forked from this test process's
    zygote (started on first use, and again if it died)."""
    global _zygote
    with _lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            _zygote = Zygote()
        return _zygote.start(list(argv), dict(env), cwd or os.getcwd(), os.fspath(log_path))


if __name__ == "__main__":
    zygote_main()
