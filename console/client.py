"""The one client of the control protocol; the CLI uses it now and the console later.

A DEALER socket carries requests; replies are matched to requests by id, so many calls
can be in flight at once (the console issues several while the user pages). A SUB
socket delivers events. Nothing here touches the database: everything goes through
the daemon, which checks the token and the permission on every call.

File content travels as a raw binary frame after the JSON frame, both ways
(core/protocol): `call(..., content=piece)` sends one, and `call_with_content` also
returns the reply's binary frame, a memoryview of the received frame (not copied).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from strongroom.core import protocol

DEFAULT_TIMEOUT = 30.0
CLIENT_NAME = "strongroom-cli"


class ClientError(Exception):
    """The daemon answered with an error, or did not answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True)
class Curve:
    """Keys for a CURVE-encrypted TCP connection (z85 text keys)."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes


class Client:
    def __init__(self, endpoint: str, *, events_endpoint: str | None = None, token: str | None = None,
                 curve: Curve | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.events_endpoint = events_endpoint
        self.token = token
        self.timeout = timeout
        self.rates: dict[str, dict] = {}     # class -> the daemon's latest `rate` (daemon/ratelimit.py)
        self._curve = curve
        self._zctx = zmq.asyncio.Context()
        self._sock = self._zctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._configure(self._sock)
        self._sock.connect(endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self._subscriptions: list[Subscription] = []

    def _configure(self, sock: zmq.asyncio.Socket) -> None:
        if self._curve is not None:
            sock.curve_serverkey = self._curve.server_public
            sock.curve_publickey = self._curve.client_public
            sock.curve_secretkey = self._curve.client_secret

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                   content=None) -> Any:
        """Send one request and wait for its reply; raises ClientError on an error reply.
        `content` (bytes-like): sent as a binary frame after the JSON (file.chunk.add)."""
        return (await self.call_with_content(cmd, args, timeout=timeout, content=content))[0]

    async def call_with_content(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                                content=None) -> tuple[Any, memoryview | None]:
        """As `call`, and the reply's binary frame too (a memoryview; None when the reply has
        none), for file.chunk.get on a framed download."""
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_replies())
        request_id = f"{os.getpid()}-{next(self._ids)}"
        future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            frame = protocol.request(cmd, args, token=self.token, request_id=request_id)
            if content is None:
                await self._sock.send(frame)
            else:       # the content is not copied; ZeroMQ holds it until it is sent
                await self._sock.send_multipart([frame, content], copy=False)
            reply, payload = await asyncio.wait_for(future, timeout or self.timeout)
        except asyncio.TimeoutError:
            raise ClientError("unavailable", f"no answer from the daemon at {self.endpoint} "
                              f"within {timeout or self.timeout:.0f}s (is strongroomd running?)") from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise ClientError(err.get("code", "internal"), err.get("message", "unknown error"))
        if isinstance(reply.get("rate"), dict):
            # What is left of this account's hourly allowance for the command's class.
            self.rates[str(reply["rate"].get("class"))] = reply["rate"]
        return reply.get("result"), payload

    async def _read_replies(self) -> None:
        while True:
            frames = await self._sock.recv_multipart(copy=False)
            try:
                reply = json.loads(frames[0].bytes)
            except ValueError:
                continue
            if not isinstance(reply, dict) or len(frames) > 2:
                continue
            future = self._pending.get(reply.get("id"))
            if future is not None and not future.done():
                future.set_result((reply, frames[1].buffer if len(frames) == 2 else None))

    def subscribe(self, *topics: str) -> "Subscription":
        """Events whose topic starts with one of `topics` (all events when none given).
        ZeroMQ subscriptions take a moment to reach the publisher: subscribe before
        starting whatever you want to watch."""
        if not self.events_endpoint:
            raise ClientError("bad_request", "this client has no events endpoint")
        sub = self._zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        self._configure(sub)
        for topic in topics or ("",):
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.events_endpoint)
        subscription = Subscription(sub)
        self._subscriptions.append(subscription)
        return subscription

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        for subscription in self._subscriptions:
            subscription.close()
        self._sock.close(linger=0)
        self._zctx.term()


class Subscription:
    """A SUB socket: `await recv()` gives the next (topic, data); `close()` ends it."""

    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        self._sock = sock

    async def recv(self) -> tuple[str, dict]:
        while True:
            topic, body = await self._sock.recv_multipart()
            try:
                return topic.decode(), json.loads(body).get("data", {})
            except ValueError:
                continue

    def close(self) -> None:
        if not self._sock.closed:
            self._sock.close(linger=0)


# --- finding the daemon and a token -------------------------------------------------------

def session_file(endpoint: str) -> Path:
    """Where `strongroom login` keeps the token for this daemon (mode 0600)."""
    import hashlib

    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "strongroom" / "sessions"
    return base / (hashlib.sha256(endpoint.encode()).hexdigest()[:16] + ".token")


def save_token(endpoint: str, token: str) -> Path:
    from strongroom.core.fsutil import write_atomic

    path = session_file(endpoint)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return path


SAVED_SESSION = "saved session"
LOCAL_OPERATOR = "local operator token"


@dataclass(frozen=True)
class StoredToken:
    """The token a command will present, and where it came from (so the CLI can say)."""

    value: str = field(repr=False)
    source: str                     # SAVED_SESSION or LOCAL_OPERATOR
    path: Path


def find_token(endpoint: str, runtime_dir: Path | None) -> StoredToken | None:
    """A session `strongroom login` saved for this daemon, else the daemon's local
    operator token if this user can read it (the service account and root), else None.
    The local token names this process's uid; the daemon accepts it only from that uid."""
    path = session_file(endpoint)
    if path.exists():
        value = path.read_text().strip()
        return StoredToken(value, SAVED_SESSION, path) if value else None
    if runtime_dir is not None:
        local = runtime_dir / "operator.token"
        try:
            return StoredToken(f"local:{os.getuid()}:{local.read_text().strip()}", LOCAL_OPERATOR, local)
        except OSError:
            return None
    return None


def stored_token(endpoint: str, runtime_dir: Path | None) -> str | None:
    """The value of `find_token`, or None."""
    found = find_token(endpoint, runtime_dir)
    return found.value if found else None


def forget_token(endpoint: str) -> None:
    session_file(endpoint).unlink(missing_ok=True)
