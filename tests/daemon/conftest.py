"""Real daemons as subprocesses, on temporary sockets, on SQLite and PostgreSQL.

`daemon` starts strongroomd on a fresh data directory with a fake NOTIFY_SOCKET (a
datagram socket the test reads, as systemd would) and waits for READY=1. Talk to it
with `daemon.call(...)` (the real async client, as the local operator) or raw zmq.
`sync_daemon` does the same over demo rows with three sync conflicts (tests/console
uses it too, through its conftest).
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import update

from strongroom.console.client import Client, ClientError
from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.config import load_settings
from strongroom.core.context import open_context
from strongroom.core.datadir import DB_NAME, KEK_NAME, init_data_dir
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Role, User
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import only_practice
from strongroom.core.repository.sessions import insert_sessions
from tests.conftest import per_engine_per_module
from tests.daemon.zygote import start_daemon

PASSWORD = "correct horse battery staple 42"
FAST_HEALTH = "\n[daemon]\nhealth_interval_seconds = 0.5\n"
FAST_AUTH = """
[auth]
max_failed_logins = 3
login_rate_limit_attempts = 6
login_rate_limit_window_seconds = 60

[auth.argon2]
time_cost = 1
memory_kib = 8
parallelism = 1
"""


def ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections and to bind(port 0)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999          # Linux's default
    return range(low, high + 1)


def free_port_pair() -> int:
    """A free loopback control port whose next port (the daemon's event port, port + 1)
    is free too, both below the kernel's ephemeral range. A pair from bind(port 0) lay
    inside it, where any outgoing connection of the busy suite (to PostgreSQL, to another
    daemon) could take port + 1 in the second before the daemon bound it: CI failed so,
    twice. Below the range only a process binding that very port collides, and the pair
    is drawn at random so two workers rarely try the same one."""
    ephemeral = ephemeral_ports()
    for _ in range(200):
        port = random.randrange(10000, min(ephemeral.start, 65535) - 1)
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port pair")


def make_data_dir(root: Path, db_url: str, extra: str = "") -> Path:
    """A data directory (config, key, migrated database) with two test users."""
    target = root / "data"
    init_data_dir(target, practice_name="Daemon Test Practice", principal=SYSTEM,
                  database_url=None if db_url.startswith("sqlite") else db_url)
    config = target / "strongroom.toml"
    config.write_text(config.read_text() + FAST_AUTH + "\n[metrics]\nport = 0\n" + extra)
    with data_transaction(target) as (ctx, conn):
        practice = only_practice(conn)
        create_user(conn, ctx.keyring, ctx.settings, practice, "auditor1", PASSWORD, Role.AUDITOR, actor="test")
        create_user(conn, ctx.keyring, ctx.settings, practice, "clinician", PASSWORD, Role.PRACTITIONER, actor="test")
    return target


@contextlib.contextmanager
def data_transaction(data_dir: Path):
    """The data directory's context and one transaction on its database, for a test to
    write rows straight in (the way a daemon would find them)."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            yield ctx, conn
    finally:
        ctx.close()


def insert_demo_rows(ctx, conn, clients: int, sessions_per_client: int) -> list:
    """Synthetic clients and their sessions (core.demo: nobody's data); returns the client ids."""
    created: list = []
    insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn),
                   itertools.islice(demo.client_records(clients), clients), created=created)
    insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(created, sessions_per_client))
    return created


class NotifySink:
    """What systemd would receive on $NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout, BlockingIOError):
                return self.messages

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        """The first message with `needle`, as soon as it arrives (draining first would
        wait out the socket's timeout after it: a fifth of a second per daemon start)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for message in self.messages[seen:]:
                if needle in message:
                    return message
            seen = len(self.messages)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout, BlockingIOError):
                continue
        raise AssertionError(f"no sd_notify message with {needle!r}; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


class DaemonProcess:
    def __init__(self, data_dir: Path, tmp: Path, *, name: str = "d1", env: dict | None = None) -> None:
        self.data_dir = data_dir
        self.runtime = tmp / f"run-{name}"
        self.log_path = tmp / f"{name}.log"
        self.notify = NotifySink(tmp / f"notify-{name}.sock")
        environment = {**os.environ, "NOTIFY_SOCKET": str(self.notify.path), "WATCHDOG_USEC": "2000000",
                       "RUNTIME_DIRECTORY": str(self.runtime), **(env or {})}
        environment.pop("WATCHDOG_PID", None)
        self._log = open(self.log_path, "wb")
        if os.environ.get("STRONGROOM_TEST_ZYGOTE") == "0":
            self.proc = subprocess.Popen([sys.executable, "-m", "strongroom.daemon.main", "--data-dir", str(data_dir)],
                                         env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        else:   # the same, forked from a process that has imported the daemon (tests/daemon/zygote.py)
            self.proc = start_daemon(["--data-dir", str(data_dir)], env=environment, log_path=self.log_path)

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.runtime / 'control.sock'}"

    @property
    def events_endpoint(self) -> str:
        return f"ipc://{self.runtime / 'events.sock'}"

    def local_token(self) -> str:
        return f"local:{os.getuid()}:{(self.runtime / 'operator.token').read_text().strip()}"

    def wait_ready(self) -> None:
        try:
            self.notify.wait_for("READY=1")
        except AssertionError:
            raise AssertionError(f"daemon did not become ready; log:\n{self.log()}") from None

    def client(self, token: str | None = "local", timeout: float = 30.0) -> Client:
        return Client(self.endpoint, events_endpoint=self.events_endpoint,
                      token=self.local_token() if token == "local" else token, timeout=timeout)

    def call(self, cmd: str, args: dict | None = None, *, token: str | None = "local", content=None):
        return self.call_with_content(cmd, args, token=token, content=content)[0]

    def call_with_content(self, cmd: str, args: dict | None = None, *, token: str | None = "local",
                          content=None) -> tuple:
        """The result and the reply's binary frame (bytes, or None), sending CONTENT as one."""
        async def go():
            client = self.client(token)
            try:
                result, payload = await client.call_with_content(cmd, args, content=content)
                return result, (None if payload is None else bytes(payload))
            finally:
                client.close()
        return asyncio.run(go())

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.notify.close()
        return self.proc.returncode


@pytest.fixture
def data_dir(tmp_path, db_url) -> Path:
    return make_data_dir(tmp_path, db_url)


@contextlib.contextmanager
def running_daemon(data_dir: Path, tmp_path: Path, *, name: str = "d1"):
    """A ready daemon for the length of the block, stopped with SIGTERM after it."""
    proc = DaemonProcess(data_dir, tmp_path, name=name)
    try:
        proc.wait_ready()
        yield proc
    finally:
        # stop() is idempotent: a test that stopped the daemon itself (to restart it)
        # gets that exit code here. A daemon that died or failed to drain on SIGTERM
        # fails the test even when everything the test looked at was fine.
        code = proc.stop()
        assert code == 0, f"daemon exited {code}; log:\n{proc.log()}"


@pytest.fixture
def daemon(data_dir, tmp_path):
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


module_daemon = per_engine_per_module(
    "module_daemon", lambda tmp, db_url: running_daemon(make_data_dir(tmp, db_url), tmp),
    "A daemon over a fresh database of each engine, shared by one module's tests that change nothing.")


def seed_sync_demo(data_dir: Path) -> dict:
    """Synthetic demo clients and sessions, an operator account (sync:resolve without
    phi:read), and the demo's real second site next to the data directory
    (core.demo.seed_second_site: joined, synced, edited on both sides, synced again).
    Returns the open conflict ids that left, the peer's name and the operator's TOTP secret."""
    with data_transaction(data_dir) as (ctx, conn):
        insert_demo_rows(ctx, conn, clients=4, sessions_per_client=1)
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "operator1", PASSWORD,
                                   Role.OPERATOR, actor="test")
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        made = demo.seed_second_site(ctx, data_dir.parent / demo.SATELLITE, actor="test")
    finally:
        ctx.close()
    return {"conflicts": [str(c) for c in made["conflicts"]], "peer": made["peer"],
            "operator_totp": enrolment.secret if enrolment else None}


def forget_base(data_dir: Path, conflict_id: str) -> None:
    """Make a queued conflict baseless, as one queued before bases were kept (or by a
    site whose base went to another peer) is: the "no base version" refusals need one."""
    import uuid

    from strongroom.core.db.models import SyncConflict
    table = SyncConflict.__table__
    with data_transaction(data_dir) as (_ctx, conn):
        conn.execute(update(table).where(table.c.id == uuid.UUID(conflict_id)).values(base=None))


def add_unenrolled_admin(data_dir: Path, username: str = "newadmin") -> None:
    """An admin (a role that requires 2FA) without a second factor, as when the policy
    was tightened after the account was made."""
    with data_transaction(data_dir) as (ctx, conn):
        user, _ = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), username, PASSWORD,
                              Role.OP_ADMIN, actor="test")
        conn.execute(update(User.__table__).where(User.__table__.c.id == user.id)
                     .values(totp_enabled=False, totp_secret_enc=None))


@contextlib.contextmanager
def running_sync_daemon(tmp_path: Path, db_url: str):
    """A daemon over the sync demo (`seed_sync_demo`) for the length of the block; what
    was seeded is `.seeded`."""
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    seeded = seed_sync_demo(data_dir)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.seeded = seeded
        yield proc


@pytest.fixture
def sync_daemon(tmp_path, db_url):
    """A daemon over the sync demo (`seed_sync_demo`); what was seeded is `.seeded`."""
    with running_sync_daemon(tmp_path, db_url) as proc:
        yield proc


# --- helpers the daemon's (and the console's) tests share --------------------------------

def scrape_metrics(daemon) -> str:
    """The daemon's Prometheus exposition, as a scraper reads it."""
    port = daemon.call("status")["metrics_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


class Receiver:
    """A local webhook endpoint recording every JSON body it is sent."""

    def __init__(self) -> None:
        bodies = self.bodies = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                if predicate(body):
                    return body
            time.sleep(0.1)
        raise AssertionError(f"no matching notification; got {self.bodies}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def login(daemon, username: str = "auditor1", totp_secret: str | None = None, *,
          password: str = PASSWORD, totp: str | None = None) -> str:
    """A session token for USERNAME, logged in as a console on a test host would (a current
    code is computed from TOTP_SECRET when given)."""
    if totp_secret:
        totp = pyotp.TOTP(totp_secret).now()
    result = daemon.call("auth.login", {"username": username, "password": password, "totp": totp,
                                        "client": {"host": "test-host", "ssh_connection": "203.0.113.7 51234 10.0.0.1 22",
                                                   "name": "pytest", "version": "1.0"}}, token=None)
    return result["token"]


def assert_alive(daemon):
    assert daemon.call("status")["role"] in ("leader", "standby")


def nested(levels: int) -> dict:
    """A dict nested LEVELS deep, for the parser's depth limits."""
    value: dict = {}
    for _ in range(levels):
        value = {"a": value}
    return value


def wait_run(daemon, run_id: str, timeout: float = 60.0) -> dict:
    """The run once it has finished, as the local operator (who sees every run) reads it."""
    deadline = time.monotonic() + timeout
    while (run := daemon.call("job.get", {"run_id": run_id}))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"run still {run['status']}"
        time.sleep(0.2)
    return run


def error_of(daemon, cmd: str, args: dict | None, token: str | None = "local", content=None) -> ClientError:
    """The error the daemon answers CMD with (the test fails if it succeeds)."""
    with pytest.raises(ClientError) as err:
        daemon.call(cmd, args, token=token, content=content)
    return err.value


LIMIT = "\n[files]\nmax_bytes = 12000000\n"   # room for three 4 MiB chunks


@pytest.fixture
def files_daemon(tmp_path, db_url):
    """A daemon over two demo clients with room for three content chunks (`.clients`)."""
    data_dir = make_data_dir(tmp_path, db_url, extra=LIMIT)
    with data_transaction(data_dir) as (ctx, conn):
        clients = insert_demo_rows(ctx, conn, clients=2, sessions_per_client=0)
    with running_daemon(data_dir, tmp_path) as proc:
        proc.clients = [str(c) for c in clients]
        yield proc


def upload(daemon, client_id: str, data: bytes, name: str = "consent Quillon.pdf", *, framed: bool = True,
           **extra) -> dict:
    """Upload DATA for a client through file.add, piece by piece (binary frames, or base64
    when not FRAMED); returns the commit's reply."""
    opened = daemon.call("file.add", {"client_id": client_id, "name": name, "content_type": "application/pdf",
                                       "size": len(data), "framed": framed, **extra})
    step = opened["transfer_bytes"]
    assert 1024 <= step <= (4 * 1024 * 1024 if framed else 3_200_000)   # base64: 3/4 of the frame
    for start in range(0, len(data), step):
        if framed:
            daemon.call("file.chunk.add", {"upload_id": opened["upload_id"]}, content=data[start:start + step])
        else:
            daemon.call("file.chunk.add", {"upload_id": opened["upload_id"],
                                            "data": base64.b64encode(data[start:start + step]).decode()})
    return daemon.call("file.upload.commit", {"upload_id": opened["upload_id"]})


def download(daemon, file_id: str, *, framed: bool = True) -> bytes:
    """A file's whole content through file.get, piece by piece (binary frames, or base64
    when not FRAMED)."""
    opened = daemon.call("file.get", {"file_id": file_id, "framed": framed})
    out = b""
    while True:
        piece, content = daemon.call_with_content("file.chunk.get", {"download_id": opened["download_id"]})
        if framed:
            assert piece.get("data") is None and len(content) == piece["size"] <= opened["transfer_bytes"]
            out += content
        else:
            assert content is None
            out += base64.b64decode(piece["data"])
        if piece["final"]:
            return out


def add_admin(data_dir, username: str = "boss", role: Role = Role.ADMIN) -> str:
    """An administrator account written straight into the database; returns its TOTP secret."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), username,
                                       PASSWORD, role, actor="test")
    finally:
        ctx.close()
    return enrolment.secret


def seed_retention_demo(data_dir) -> dict:
    """Demo clients and sessions, the demo retention policies, hold and erasure request,
    and a manager (may file, not approve) and a second administrator (may approve)."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            practice = only_practice(conn)
            ids: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(5), created=ids)
            insert_sessions(conn, ctx.keyring, SYSTEM, demo.session_records(ids, 2))
            made = demo.seed_retention(conn)
            create_user(conn, ctx.keyring, ctx.settings, practice, "manager1", PASSWORD, Role.MANAGER, actor="test")
            _, enrolment = create_user(conn, ctx.keyring, ctx.settings, practice, "owner1", PASSWORD, Role.ADMIN,
                                       actor="test")
    finally:
        ctx.close()
    return {"clients": [str(i) for i in ids], "hold": str(made["hold"]),
            "request": str(made["erasure_request"]), "owner_totp": enrolment.secret}


# A synthetic person whose duplicate the reconcile tests plant.
PERSON = {"first_name": "Zebediahquorn", "last_name": "Ofthequorns", "date_of_birth": "1975-04-03",
          "phone": "+1 555 010 2030", "email": "zq@example.org"}


# A named backup configuration on an S3 bucket with Object Lock: what the `high`
# encryption level asks for. It has no schedule, so a daemon never reaches for the
# (absent) bucket.
LOCKED = """
[backup.configurations.vault]
target = "s3://vault-bucket/strongroom?object_lock_days=30&endpoint_url=http://127.0.0.1:9&region=us-east-1"
"""

def seed_reconcile_demo(data_dir) -> list[str]:
    """Two likely duplicates of PERSON (a typo and a new phone) and one stranger, and a staff user."""
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            practice = only_practice(conn)
            ids: list = []
            insert_clients(conn, ctx.keyring, SYSTEM, practice,
                           [PERSON, {**PERSON, "last_name": "Ofthequrons", "phone": "+1 555 777 1111"},
                            {"first_name": "Ann", "last_name": "Bee", "date_of_birth": "1990-01-01"}], created=ids)
            create_user(conn, ctx.keyring, ctx.settings, practice, "staff1", PASSWORD,
                        Role.STAFF, actor="test")
    finally:
        ctx.close()
    return [str(i) for i in ids]


def make_site(tmp_path: Path, db_url: str, extra: str = "") -> tuple[Path, str, dict]:
    """The daemon's data directory with demo clients and an operator, and a laptop site
    that joined it (empty of clients until it syncs). Returns (data dir, laptop URL, seeded)."""
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH + extra)
    with data_transaction(data_dir) as (ctx, conn):
        insert_demo_rows(ctx, conn, clients=3, sessions_per_client=1)
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "operator1", PASSWORD,
                                   Role.OPERATOR, actor="test")
        central_url = ctx.settings.database.url
    laptop = tmp_path / "laptop"
    init_data_dir(laptop, practice_name="ignored when joining", principal=SYSTEM, join_url=central_url,
                  kek_file=data_dir / KEK_NAME)
    return data_dir, f"sqlite:///{laptop / DB_NAME}", {"operator_totp": enrolment.secret if enrolment else None}
