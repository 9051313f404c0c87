"""The control transport: ZeroMQ ROUTER for requests, PUB for events.

This module routes and guards; it knows nothing of backups or users. For each frame it
parses (protocol.parse_request), authenticates the token, checks the permission the
command registry names, runs the handler (in a worker thread unless the command is
marked inline) and maps any error to a protocol error code, here and only here.
The daemon never dies of input: every failure becomes a reply, and a frame too
malformed to answer (an empty envelope) is dropped and counted.

Framing: after the peer's identity (and a REQ client's empty delimiter, echoed back)
comes one JSON frame, and for a command registered with takes_content (file.chunk.add)
optionally one raw binary frame of content, handed to the handler as a memoryview of
the received frame (Call.content, never copied here). A handler that answers
commands.Framed gets its content sent as a binary frame after the JSON reply, without
a copy. Refused with bad_request before anything runs: more than one binary frame, a
binary frame to a command that takes none, a binary frame over max_frame_bytes (ZeroMQ
itself drops a peer past MAXMSGSIZE, four times that). Content both inline and as a
frame, or in the wrong form for its transfer, is the handler's bad_request.
Requests may be pipelined; each socket answers a bounded number at once (InFlight) and
is not read past that, so memory held for received requests stays bounded.

Endpoints: ipc://<runtime dir>/control.sock and events.sock (mode 0600), and optionally
a TCP endpoint with CURVE encryption whose clients must be in an allow-list of public
keys (ZAP), for consoles on another machine.

Who is at the other end comes from the transport, never from the request: on ipc the
peer's uid (the kernel's SO_PEERCRED, which libzmq on Linux appends to a message's
Peer-Address as ":uid:gid:pid"), over TCP the peer's IP address. That address keys the
login rate limit, and the local operator token is good only from the uid it names.
"""
from __future__ import annotations

import asyncio
import errno
import fcntl
import hmac
import secrets
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import zmq
import zmq.asyncio
from pydantic import ValidationError

from strongroom.core.auth import login as auth_login
from strongroom.core.auth import passwords
from strongroom.core.auth import rbac
from strongroom.core.auth.sessions import hash_token
from strongroom.core.db.engine import transaction, translate_error
from strongroom.core.db.models import Role
from strongroom.core.errors import AuthError, ConflictError, RateLimitedError, StrongroomError
from strongroom.core.fsutil import write_atomic
from strongroom.core.principal import Principal
from strongroom.core.validation import describe
from strongroom.core import protocol
from strongroom.daemon import tenancy
from strongroom.daemon.commands import Call, Framed, lookup
from strongroom.daemon.ratelimit import RateLimiter
from strongroom.core.endpoints import LOCAL_TOKEN_FILE

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

log = logging.getLogger("strongroom.control")
TOKEN_CACHE_SECONDS = 2.0
# Logins (Argon2, deliberately a good part of a core-second each) get threads of their
# own: measured, 12 clients flooding auth.login held every general worker thread and
# audit.tail waited 1.8 s. Two workers keep both cores' worth of logins going; beyond the
# backlog a login is refused at once rather than queued without bound.
LOGIN_WORKERS = 2
LOGIN_BACKLOG = 16
# Requests being answered at once from one socket, and the bytes their frames hold. Past
# either, the socket is not read until one is answered: ZeroMQ then keeps at most
# RECEIVE_QUEUE messages per peer and pushes back on the sender (its sends wait), so a
# client pipelining large frames (file pieces, up to MAXMSGSIZE each) without reading the
# replies holds a bounded amount of the daemon's memory, not one frame per message sent.
IN_FLIGHT_REQUESTS = 64
IN_FLIGHT_BYTES = 64 * 1024 * 1024
RECEIVE_QUEUE = 8


class LoginPool:
    """A few threads for login work and a bounded backlog; when full, `rate_limited`.
    Used only from the event loop's thread, so the count needs no lock."""

    def __init__(self, workers: int = LOGIN_WORKERS, backlog: int = LOGIN_BACKLOG) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="strongroom-login")
        self._room = workers + backlog
        self._taken = 0

    async def run(self, fn, *args):
        if self._taken >= self._room:
            raise RateLimitedError("too many logins in progress; try again in a few seconds")
        self._taken += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._taken -= 1

    def warm(self, fn, *args) -> None:
        """Run `fn` on a login thread now, outside the backlog (start-up work)."""
        self._executor.submit(fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class InFlight:
    """What one socket's requests being answered hold: how many, and their frames' bytes.
    Used only from the event loop's thread, so the counts need no lock."""

    def __init__(self, requests: int = IN_FLIGHT_REQUESTS, size: int = IN_FLIGHT_BYTES) -> None:
        self.max_requests, self.max_bytes = requests, size
        self.requests = self.bytes = 0
        self.peak_requests = self.peak_bytes = 0
        self._freed = asyncio.Event()

    async def room(self) -> None:
        """Return once another request may be read (a single one larger than the byte
        budget still gets in when nothing else is in flight: ZeroMQ's MAXMSGSIZE bounds it)."""
        while self.requests >= self.max_requests or (self.requests and self.bytes >= self.max_bytes):
            self._freed.clear()
            await self._freed.wait()

    def take(self, size: int) -> None:
        self.requests += 1
        self.bytes += size
        self.peak_requests = max(self.peak_requests, self.requests)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def give_back(self, size: int) -> None:
        self.requests -= 1
        self.bytes -= size
        self._freed.set()


@dataclass(frozen=True)
class Peer:
    """The other end of a request, as the transport (not the client) reports it."""

    address: str | None     # "ipc:uid=<uid>" or the TCP peer's IP address
    uid: int | None = None  # an ipc peer's uid; None over TCP or where the OS does not say
    curve_key: str | None = None   # over TCP: the CURVE public key (Z85) the handshake proved


@dataclass
class _Cached:
    principal: Principal
    session_id: object
    checked: float


class ControlServer:
    def __init__(self, daemon: "Daemon", runtime_dir: Path) -> None:
        self.daemon = daemon
        self.settings = daemon.ctx.settings.daemon
        self.runtime_dir = runtime_dir
        self.zctx = zmq.asyncio.Context()
        self.sockets: list[zmq.asyncio.Socket] = []
        self.pub: zmq.asyncio.Socket | None = None
        self.pub_tcp: zmq.asyncio.Socket | None = None
        self._authenticator = None
        self._tokens: dict[str, _Cached] = {}
        self._local_token: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._logins = LoginPool()
        self.rates = RateLimiter(self._read_rate_limits, self._record_rate_refusal)
        self.on_request: Callable[[str], None] = lambda code: None
        self._pid_fd: int | None = None

    # -- set-up ------------------------------------------------------------------------
    async def start(self) -> None:
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._claim_runtime_dir()
        router = self.zctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # ZeroMQ drops a peer that sends more than this; frames between the configured
        # limit and this get a proper bad_request reply instead.
        router.setsockopt(zmq.MAXMSGSIZE, self.settings.max_frame_bytes * 4 + 65536)
        router.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        self._bind_ipc(router, "control.sock")
        self.sockets.append(router)
        self.pub = self.zctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self._bind_ipc(self.pub, "events.sock")
        if self.settings.tcp_endpoint:
            await self._start_tcp()
        if self.settings.local_operator_token:
            self._write_local_token()
        # An unknown username is verified against a dummy hash: make it before the first
        # login, so that login's answer takes no longer than a known account's.
        self._logins.warm(passwords.prepare, self.daemon.ctx.settings.auth)
        for sock in self.sockets:
            task = asyncio.create_task(self._serve(sock, ipc=sock is router), name="control-serve")
            self._tasks.add(task)

    def _claim_runtime_dir(self) -> None:
        """One daemon per runtime directory: a second would unlink the first's sockets."""
        path = self.runtime_dir / "strongroomd.pid"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConflictError(f"another strongroomd (pid {holder}) is serving {self.runtime_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._pid_fd = fd

    def _bind_ipc(self, sock: zmq.asyncio.Socket, name: str) -> None:
        path = self.runtime_dir / name
        path.unlink(missing_ok=True)  # a stale socket from a crashed run
        old = os.umask(0o177)  # the socket file is born 0600: no window where others connect
        try:
            _bind(sock, f"ipc://{path}", "the runtime directory's control socket")
        finally:
            os.umask(old)
        os.chmod(path, 0o600)

    async def _start_tcp(self) -> None:
        from zmq.auth.asyncio import AsyncioAuthenticator

        s = self.settings
        if not (s.curve_secret_key_file and s.curve_allowed_clients_dir):
            raise StrongroomError("daemon.tcp_endpoint needs daemon.curve_secret_key_file and "
                                  "daemon.curve_allowed_clients_dir (TCP is CURVE-encrypted only)")
        public, secret = zmq.auth.load_certificate(str(s.curve_secret_key_file))
        if secret is None:
            raise StrongroomError(f"{s.curve_secret_key_file}: not a CURVE secret key certificate")
        self._authenticator = AsyncioAuthenticator(self.zctx)
        self._authenticator.start()
        self._authenticator.configure_curve(domain="*", location=str(s.curve_allowed_clients_dir))
        router = self.zctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, s.max_frame_bytes * 4 + 65536)
        router.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        router.curve_secretkey, router.curve_publickey, router.curve_server = secret, public, True
        _bind(router, s.tcp_endpoint, "daemon.tcp_endpoint")
        self.sockets.append(router)
        host, port = s.tcp_endpoint.rsplit(":", 1)
        self.pub_tcp = self.zctx.socket(zmq.PUB)
        self.pub_tcp.setsockopt(zmq.LINGER, 0)
        self.pub_tcp.curve_secretkey, self.pub_tcp.curve_publickey, self.pub_tcp.curve_server = secret, public, True
        _bind(self.pub_tcp, f"{host}:{int(port) + 1}", "daemon.tcp_endpoint's event port (its port + 1)")

    def _write_local_token(self) -> None:
        """A token for the service account and root on this machine (file mode 0600):
        the CLI uses it when nobody has logged in. Audited as local:<uid>, admin role."""
        self._local_token = secrets.token_urlsafe(32)
        write_atomic(self.runtime_dir / LOCAL_TOKEN_FILE, (self._local_token + "\n").encode(), mode=0o600)

    # -- events --------------------------------------------------------------------------
    def publish(self, topic: str, data: dict) -> None:
        """Publish from the event loop thread; use Daemon.publish from other threads."""
        frames = protocol.event(topic, protocol.to_jsonable(data))
        for sock in (self.pub, self.pub_tcp):
            if sock is not None:
                try:
                    sock.send_multipart(frames, flags=zmq.NOBLOCK)
                except zmq.Again:
                    pass  # a slow subscriber loses events rather than stalling the daemon

    # -- requests ------------------------------------------------------------------------
    async def _serve(self, sock: zmq.asyncio.Socket, *, ipc: bool, in_flight: InFlight | None = None) -> None:
        """Read requests and answer each in a task of its own, at most `in_flight`'s
        budget of them at once (InFlight: the socket is not read past it)."""
        in_flight = in_flight or InFlight()
        while True:
            await in_flight.room()
            try:
                frames = await sock.recv_multipart(copy=False)
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as exc:
                if exc.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("receive failed", extra={"error": str(exc)})
                continue
            size = sum(len(frame.buffer) for frame in frames)
            in_flight.take(size)
            task = asyncio.create_task(self._answer(sock, frames, ipc))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            task.add_done_callback(lambda _task, size=size: in_flight.give_back(size))

    async def _answer(self, sock: zmq.asyncio.Socket, frames: list, ipc: bool) -> None:
        if len(frames) < 2:
            self.on_request("dropped")
            return  # no identity and body: nothing to reply to
        identity = frames[0].bytes
        body = frames[1:]
        # A REQ client puts an empty delimiter before its body and expects it back (a JSON
        # frame is never empty, so an empty first frame is always the delimiter).
        req_style = len(body) >= 2 and len(body[0].buffer) == 0
        if req_style:
            body = body[1:]
        envelope = [identity] + ([b""] if req_style else [])
        peer = _peer(body[0], ipc)
        content = None
        if len(body) > 2:
            reply, code = protocol.error(None, "bad_request", "multipart request: send one JSON frame, then at most "
                                         "one binary frame (only to a command that takes content)"), "bad_request"
        else:
            content = body[1].buffer if len(body) == 2 else None
            reply, code = await self._handle(body[0].bytes, peer, content)
        self.on_request(code)
        try:
            if isinstance(reply, Framed):       # [JSON, content]: the content is not copied
                await sock.send_multipart(envelope + [reply.result, reply.content], copy=False)
            else:
                await sock.send_multipart(envelope + [reply])
        except zmq.ZMQError as exc:
            log.info("reply not delivered", extra={"error": str(exc)})

    async def _handle(self, frame: bytes, peer: Peer, content: memoryview | None = None) -> tuple[bytes | Framed, str]:
        request_id = None
        try:
            request = protocol.parse_request(frame, self.settings.max_frame_bytes)
            request_id = request.id
            command = lookup(request.cmd)
            if command is None:
                raise protocol.ProtocolError("not_found", "unknown command; `help` lists them")
            if content is not None:
                if not command.takes_content:
                    raise protocol.ProtocolError("bad_request", f"{command.name} takes no binary frame: "
                                                 "send its JSON frame alone")
                if len(content) > self.settings.max_frame_bytes:
                    raise protocol.ProtocolError("bad_request", f"binary frame of {len(content)} bytes exceeds "
                                                 f"the limit of {self.settings.max_frame_bytes}")
            try:
                args = command.args.model_validate(request.args)
            except ValidationError as exc:
                raise protocol.ProtocolError("bad_request", describe(exc, command.args, request.cmd)) from None
            principal = None
            if not command.public:
                principal = await self._principal(request.token, peer)
                if command.permission is not None:
                    self.daemon.require(principal, command.permission)
                if principal.practice_id is not None and tenancy.named_objects(command.name, args):
                    await asyncio.to_thread(tenancy.check_args, self.daemon.ctx.engine, principal,
                                            command.name, args)
            rate = None
            if self.rates.needs_limits(principal, command.rate_class):
                limits = self.rates.cached(principal.user_id)
                if limits is None:
                    limits = await asyncio.to_thread(self.rates.limits_of, principal.user_id)
                rate = self.rates.take(principal, command.rate_class, limits)
            call = Call(principal, args, peer.address, request.token, peer.curve_key, content)
            if command.inline:
                result = command.handler(self.daemon, call)
            elif command.pool == "login":
                result = await self._logins.run(command.handler, self.daemon, call)
            else:
                result = await asyncio.to_thread(command.handler, self.daemon, call)
            framed = result if isinstance(result, Framed) else None
            result = protocol.to_jsonable(framed.result if framed else result)
            if os.environ.get("STRONGROOM_CHECK_RESULTS") == "1":
                _check_result(command, result)
            reply = protocol.ok(request_id, result, rate=rate)
            return (Framed(reply, framed.content) if framed else reply), "ok"
        except protocol.ProtocolError as exc:
            return protocol.error(exc.request_id or request_id, exc.code, str(exc)), exc.code
        except StrongroomError as exc:
            return protocol.error(request_id, exc.code, str(exc)), exc.code
        except Exception as exc:
            translated = translate_error(exc)
            if translated is not None:
                return protocol.error(request_id, "internal", str(translated)), "internal"
            log.exception("command failed", extra={"request_id": request_id})
            return protocol.error(request_id, "internal", "internal error; see the daemon log"), "internal"

    async def _principal(self, token: str | None, peer: Peer) -> Principal:
        if not token:
            raise AuthError("this command needs a session token: log in first (auth.login)")
        if token.startswith("local:"):
            return self._local_operator(token, peer)
        key = hash_token(token)
        cached = self._tokens.get(key)
        if cached and time.monotonic() - cached.checked < TOKEN_CACHE_SECONDS:
            return cached.principal
        principal, session_id = await asyncio.to_thread(self._authenticate, token)
        self._tokens[key] = _Cached(principal, session_id, time.monotonic())
        return principal

    def _local_operator(self, token: str, peer: Peer) -> Principal:
        """`local:<uid>:<secret>`, accepted only over ipc from a peer the kernel says is
        that uid: reading the 0600 token file proves being its owner (or root), and the
        uid the actor is audited as is the operating system's, not the client's word."""
        _, _, uid_and_secret = token.partition(":")
        uid, _, secret = uid_and_secret.partition(":")
        if (self._local_token is None or peer.uid is None or uid != str(peer.uid)
                or not hmac.compare_digest(secret.encode(), self._local_token.encode())):
            raise AuthError("invalid local operator token (it is good only over the local socket, "
                            "for the user the connection comes from)")
        return Principal(actor=f"local:{peer.uid}", permissions=rbac.role_permissions(Role.OP_ADMIN),
                         ip_address=peer.address)

    def _authenticate(self, token: str) -> tuple[Principal, object]:
        user, session = auth_login.authenticate(self.daemon.ctx.engine, token)
        with transaction(self.daemon.ctx.engine, read_only=True) as conn:
            principal = rbac.principal(conn, user, session_id=str(session.id),
                                       ip_address=session.client_addr)
        return principal, session.id

    def forget_token(self, token: str) -> None:
        self._tokens.pop(hash_token(token), None)

    def forget_session(self, session_id) -> None:
        for key, cached in list(self._tokens.items()):
            if str(cached.session_id) == str(session_id):
                del self._tokens[key]

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for sock in self.sockets + [self.pub, self.pub_tcp]:
            if sock is not None:
                sock.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._logins.close()
        self.zctx.term()
        if self._pid_fd is not None:      # only the daemon that claimed the directory cleans it
            for name in ("control.sock", "events.sock", LOCAL_TOKEN_FILE):
                (self.runtime_dir / name).unlink(missing_ok=True)
            os.close(self._pid_fd)
            self._pid_fd = None

    # -- per-user command rate limits (daemon/ratelimit.py) ----------------------------
    def _read_rate_limits(self, user_id) -> dict[str, int]:
        from strongroom.core.auth.profiles import effective_for
        with transaction(self.daemon.ctx.engine, read_only=True) as conn:
            return effective_for(conn, self.daemon.ctx.settings.auth, user_id)["rate_limits"]

    def _record_rate_refusal(self, principal: Principal, cls: str, limit: int) -> None:
        """A security event (mirrored into the audit chain) for the first refusal in a
        window, written off the event loop."""
        from strongroom.core.auth import security

        def write() -> None:
            try:
                with transaction(self.daemon.ctx.engine) as conn:
                    security.record(conn, "command_rate_limited", severity="medium", user_id=principal.user_id,
                                    username=principal.actor.removeprefix("user:"), ip_address=principal.ip_address,
                                    session_id=principal.session_id,
                                    description=f"{cls} commands refused: {limit} per hour reached",
                                    details={"class": cls, "limit": limit})
            except StrongroomError:
                log.warning("rate-limit refusal not recorded", exc_info=True)
        task = asyncio.ensure_future(asyncio.to_thread(write))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _bind(sock: zmq.Socket, endpoint: str, setting: str) -> None:
    """Bind, or a one-line error naming the setting: a start-up failure is never a
    traceback (an address in use is a conflict with another process, the rest config)."""
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close(linger=0)        # an open socket would keep the context's term() waiting
        if exc.errno == errno.EADDRINUSE:
            raise ConflictError(f"{setting} ({endpoint}) is already in use (another strongroomd?)") from None
        raise StrongroomError(f"{setting} ({endpoint}) cannot be bound: {exc.strerror}") from None


def _peer(frame, ipc: bool) -> Peer:
    """The transport's word on who sent `frame`. Over ipc libzmq (Linux) reports
    "<host>:<uid>:<gid>:<pid>" from SO_PEERCRED: the uid is kept and the pid dropped, as a
    client makes a new pid at will. Over TCP it reports the peer's IP address."""
    try:
        reported = frame.get("Peer-Address")
    except (zmq.ZMQError, AttributeError, TypeError):
        reported = None
    if not ipc:
        try:
            key = frame.get("User-Id")      # set by the ZAP handler from the CURVE handshake
        except (zmq.ZMQError, AttributeError, TypeError):
            key = None
        return Peer(reported or None, curve_key=key or None)
    parts = (reported or "").rsplit(":", 3)
    if len(parts) == 4 and parts[1].isdigit():
        return Peer(f"ipc:uid={int(parts[1])}", int(parts[1]))
    return Peer("ipc")      # no peer credentials on this platform: nobody is the local operator


def _check_result(command, result) -> None:
    """STRONGROOM_CHECK_RESULTS=1 (the test suite sets it): a successful result that does
    not match the command's declared model is a bug, answered as `internal` and logged,
    so a handler and its model cannot drift apart unseen. The message names where and
    which rule, never a value."""
    try:
        command.result_adapter.validate_python(result)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(result)'}: {e['type']}"
                          for e in exc.errors()[:5])
        log.error("result does not match its model", extra={"cmd": command.name, "mismatch": where})
        raise protocol.ProtocolError("internal", f"the result of {command.name} does not match "
                                                 f"its declared model ({where})") from None
