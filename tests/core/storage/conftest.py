"""Real storage targets for the contract and fault tests.

S3 runs against moto's standalone server on a loopback port: boto3 speaks real HTTP to
it, so retries, timeouts, multipart and headers go through the same code path as in
production. Azure Blob Storage runs against Azurite, Microsoft's emulator (installed
from the npm registry by .ci/run; without it these tests skip outside CI and fail in
CI). Fault injection sits in front of either as a tiny HTTP relay (`FlakyRelay`) or a
socket that accepts and never answers (`SilentEndpoint`). Nothing leaves 127.0.0.1.
"""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from strongroom.core.storage.base import Target
from strongroom.core.storage.local import LocalTarget
from strongroom.core.storage.s3 import S3Target

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Fake credentials, and nothing from the machine's own AWS setup or proxies."""
    empty = tmp_path_factory.mktemp("aws") / "none"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_DEFAULT_REGION", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def _atomic_puts() -> None:
    """moto checks a PUT's If-None-Match and then stores the object, with nothing held in
    between: two concurrent puts of one key can both pass the check (seen under CI's
    load: test_concurrent_put_if_absent_has_exactly_one_winner[s3] found two winners).
    S3 never allows that (a conditional write is atomic there) and put_if_absent relies
    on it, so the server standing in for S3 is made to keep it: one PUT at a time."""
    from moto.s3.responses import S3Response

    if getattr(S3Response.put_object, "atomic", False):
        return
    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self):
        with lock:
            return original(self)

    put_object.atomic = True
    S3Response.put_object = put_object


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto server per test process, on a port the kernel picks."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    _atomic_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_admin(moto_endpoint: str, aws_env: None) -> Iterator[object]:
    """A plain boto3 client for setting buckets up and inspecting what the target sent."""
    client = boto3.session.Session().client(
        "s3", endpoint_url=moto_endpoint, region_name=REGION,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard",
                                                                "max_attempts": 1}))
    yield client
    client.close()


def _new_bucket(s3_admin, *, object_lock: bool) -> str:  # noqa: ANN001
    name = f"sr-{uuid.uuid4().hex[:12]}"
    if object_lock:
        s3_admin.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def bucket(s3_admin) -> str:  # noqa: ANN001
    """A fresh bucket per test: the moto server lives for the whole session."""
    return _new_bucket(s3_admin, object_lock=False)


@pytest.fixture
def lock_bucket(s3_admin) -> str:  # noqa: ANN001
    """A fresh bucket created with Object Lock (and so versioning) enabled."""
    return _new_bucket(s3_admin, object_lock=True)


# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Azurite blob service per test process, in memory, on a free loopback port;
    its account URL."""
    binary = shutil.which("azurite-blob")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("azurite-blob is missing: .ci/run installs it (npm install -g azurite)")
        pytest.skip("Azurite (npm install -g azurite) is not installed and this is not a CI run")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen([binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                             "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("Azurite did not start listening")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Azurite's account key where AzureTarget reads a credential, and nothing else."""
    monkeypatch.setenv("AZURE_STORAGE_KEY", AZURITE_KEY)
    monkeypatch.delenv("AZURE_STORAGE_SAS_TOKEN", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)


@pytest.fixture
def container(azurite_endpoint: str, azure_env: None) -> str:
    """A fresh container per test: the Azurite process lives for the whole session."""
    from azure.storage.blob import ContainerClient

    name = f"sr-{uuid.uuid4().hex[:12]}"
    with ContainerClient(azurite_endpoint, name, credential={"account_name": AZURITE_ACCOUNT,
                                                             "account_key": AZURITE_KEY}) as admin:
        admin.create_container()
    return name


@pytest.fixture(params=["local", "s3", "azure"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Every contract test runs once per target kind."""
    if request.param == "local":
        made: Target = LocalTarget(tmp_path / "target")
    elif request.param == "azure":
        from strongroom.core.storage.azure import AzureTarget

        endpoint = request.getfixturevalue("azurite_endpoint")
        name = request.getfixturevalue("container")
        made = AzureTarget(AZURITE_ACCOUNT, name, "practice-1/backups", endpoint_url=endpoint,
                           max_attempts=2, connect_timeout=5, read_timeout=10)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        bucket_name = request.getfixturevalue("bucket")
        made = S3Target(bucket_name, "practice-1/backups", endpoint_url=endpoint,
                        region=REGION, max_attempts=2, connect_timeout=5, read_timeout=10)
    yield made
    made.close()


class FlakyRelay:
    """An HTTP relay to moto that answers `status` instead for requests `fail` selects.

    It counts every request it sees, so a test can prove how many attempts boto3 made.
    """

    def __init__(self, upstream: str, fail: Callable[[int, str, str], bool],
                 status: int = 500, code: str = "InternalError") -> None:
        self.upstream = upstream.removeprefix("http://")
        self.fail = fail
        self.status = status
        self.code = code
        self.requests: list[tuple[str, str]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with relay._lock:
                    number = len(relay.requests)
                    relay.requests.append((self.command, self.path))
                    relay.headers.append({k.lower(): v for k, v in self.headers.items()})
                if relay.fail(number, self.command, self.path):
                    payload = ("<?xml version='1.0' encoding='UTF-8'?><Error>"
                               f"<Code>{relay.code}</Code><Message>injected</Message>"
                               "</Error>").encode()
                    self.send_response(relay.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(relay.upstream, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "transfer-encoding")}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("connection", "transfer-encoding",
                                                "content-length", "server", "date"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class SilentEndpoint:
    """Accepts TCP connections and never answers: a hung S3 or a half-open middlebox."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self._sock.close()


@pytest.fixture
def flaky_relay(moto_endpoint: str) -> Iterator[Callable[..., FlakyRelay]]:
    made: list[FlakyRelay] = []

    def make(fail: Callable[[int, str, str], bool], status: int = 500,
             code: str = "InternalError") -> FlakyRelay:
        relay = FlakyRelay(moto_endpoint, fail, status, code)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.close()


@pytest.fixture
def silent_endpoint() -> Iterator[SilentEndpoint]:
    endpoint = SilentEndpoint()
    yield endpoint
    endpoint.close()
