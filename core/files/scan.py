"""Malware scanning of client file content with ClamAV's clamd, over its own protocol.

A small client of clamd's documented socket protocol (clamd(8)), over a Unix socket
(`[files] clamd_socket`) or TCP (`[files] clamd_tcp`, "host:port"):

    zPING\\0      -> "PONG"
    zVERSION\\0   -> "ClamAV 1.0.7/27000/..."
    zINSTREAM\\0  then chunks, each a 4-byte big-endian length and that many bytes,
                 ended by a zero length -> "stream: OK", "stream: <Signature> FOUND",
                 "INSTREAM size limit exceeded. ERROR" or "<message> ERROR"

Content is streamed as it arrives (a file being added is scanned from the same stream
that is sealed and stored, before encryption; a stored file is read back a chunk at a
time), in pieces of at most CHUNK_BYTES, so memory stays flat whatever the file's size.
Every socket operation has the configured timeout. clamd closes the connection once a
stream passes its StreamMaxLength and answers "size limit exceeded": that answer is
read even when a later send fails, and reported as ScanRefused, not as clamd being down.

Nothing here logs or raises with content or file names: errors name clamd's address
and what went wrong; a FOUND reply carries only the signature name (from the
signature database, never from the file).
"""
from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

from strongroom.core.config import FilesSettings
from strongroom.core.errors import StrongroomError, ValidationError

CHUNK_BYTES = 64 * 1024
DEFAULT_SOCKET = "/run/clamav/clamd.ctl"   # Debian clamav-daemon's LocalSocket
MAX_REPLY = 4096
CLEAN, INFECTED, PENDING = "clean", "infected", "pending"


class ScannerUnavailable(StrongroomError):
    """clamd could not be reached, or dropped the connection without an answer."""


class ScanRefused(StrongroomError):
    """clamd answered with an error instead of a verdict (e.g. the stream passed its
    StreamMaxLength): the content is neither clean nor known infected."""


class MalwareFound(ValidationError):
    """An added file's content matched a signature: refused, its content deleted."""


@dataclass(frozen=True)
class Verdict:
    status: str                 # CLEAN or INFECTED
    signature: str | None = None


def _safe_signature(text: str) -> str:
    """A signature name as clamd gave it, bounded and printable (it goes into events)."""
    cleaned = "".join(ch for ch in text if ch.isascii() and ch.isprintable())
    return cleaned[:120] or "unknown"


def parse_reply(reply: bytes) -> Verdict:
    """clamd's answer to INSTREAM as a Verdict; ScanRefused for an error answer."""
    text = reply.rstrip(b"\0\n").decode("utf-8", "replace").strip()
    if text == "stream: OK":
        return Verdict(CLEAN)
    if text.startswith("stream: ") and text.endswith(" FOUND"):
        return Verdict(INFECTED, _safe_signature(text[len("stream: "):-len(" FOUND")]))
    if "size limit exceeded" in text:
        raise ScanRefused("clamd refused the stream: INSTREAM size limit exceeded "
                          "(raise StreamMaxLength in clamd.conf to scan files this large)")
    if text.endswith("ERROR"):
        raise ScanRefused(f"clamd answered an error: {_safe_signature(text)}")
    raise ScanRefused("clamd gave an answer this client does not understand")


class Clamd:
    """One clamd, by address: a Unix socket path or a (host, port) pair."""

    def __init__(self, address: str | tuple[str, int], *, timeout: float = 30.0,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        if not 1 <= chunk_bytes <= 1 << 20:
            raise ValueError("chunk_bytes must be between 1 and 1 MiB")
        self.address, self.timeout, self.chunk_bytes = address, timeout, chunk_bytes

    def describe(self) -> str:
        return self.address if isinstance(self.address, str) else f"{self.address[0]}:{self.address[1]}"

    def _connect(self) -> socket.socket:
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET6 if ":" in self.address[0] \
            else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            raise ScannerUnavailable(f"clamd at {self.describe()} does not answer ({exc.strerror or 'timed out'})") \
                from None
        return sock

    def _command(self, name: bytes) -> str:
        sock = self._connect()
        try:
            sock.sendall(b"z" + name + b"\0")
            return _read_reply(sock, self).rstrip(b"\0\n").decode("utf-8", "replace")
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {self.describe()} dropped the connection "
                                     f"({exc.strerror or 'timed out'})") from None
        finally:
            sock.close()

    def ping(self) -> bool:
        """True when clamd answers PONG; ScannerUnavailable when it cannot be reached."""
        return self._command(b"PING") == "PONG"

    def version(self) -> str:
        """clamd's engine and signature database versions, e.g. "ClamAV 1.0.7/27000/..."."""
        return self._command(b"VERSION")[:200]

    def instream(self) -> "Stream":
        """Open a scan of a stream: feed it with `send`, then `finish` for the verdict."""
        sock = self._connect()
        try:
            sock.sendall(b"zINSTREAM\0")
        except OSError as exc:
            sock.close()
            raise ScannerUnavailable(f"clamd at {self.describe()} dropped the connection "
                                     f"({exc.strerror or 'timed out'})") from None
        return Stream(self, sock)

    def scan(self, pieces: Iterable[bytes]) -> Verdict:
        """Scan content given as pieces of any size (one INSTREAM)."""
        stream = self.instream()
        try:
            for piece in pieces:
                stream.send(piece)
            return stream.finish()
        finally:
            stream.close()


def _read_reply(sock: socket.socket, clamd: Clamd) -> bytes:
    """Read up to the NUL that ends a z-command's reply (or the connection's end)."""
    reply = bytearray()
    while not reply.endswith(b"\0") and len(reply) < MAX_REPLY:
        data = sock.recv(MAX_REPLY - len(reply))
        if not data:
            break
        reply += data
    if not reply:
        raise ScannerUnavailable(f"clamd at {clamd.describe()} closed the connection without an answer")
    return bytes(reply)


class Stream:
    """One INSTREAM scan in progress. `send` never raises for clamd cutting the stream
    short with an answer (size limit): the answer is kept and `finish` reports it."""

    def __init__(self, clamd: Clamd, sock: socket.socket) -> None:
        self._clamd, self._sock = clamd, sock
        self._early: bytes | None = None
        self.sent = 0

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise ScannerUnavailable("the scan was closed")
        if self._early is not None:
            return
        view = memoryview(data)
        step = self._clamd.chunk_bytes
        try:
            for start in range(0, len(view), step):
                piece = view[start:start + step]
                self._sock.sendall(struct.pack(">I", len(piece)))
                self._sock.sendall(piece)
                self.sent += len(piece)
        except OSError as exc:
            self._early = self._answer_after(exc)

    def _answer_after(self, exc: OSError) -> bytes:
        """clamd may have answered and hung up (size limit): read that answer, if any."""
        try:
            return _read_reply(self._sock, self._clamd)
        except (OSError, ScannerUnavailable):
            self.close()
            raise ScannerUnavailable(f"clamd at {self._clamd.describe()} dropped the connection mid-scan "
                                     f"({exc.strerror or 'timed out'})") from None

    def finish(self) -> Verdict:
        """End the stream and return clamd's verdict (ScanRefused for an error answer)."""
        if self._sock is None:
            raise ScannerUnavailable("the scan was closed")
        try:
            if self._early is None:
                try:
                    self._sock.sendall(struct.pack(">I", 0))
                except OSError as exc:
                    self._early = self._answer_after(exc)
            reply = self._early if self._early is not None else _read_reply(self._sock, self._clamd)
        except OSError as exc:
            raise ScannerUnavailable(f"clamd at {self._clamd.describe()} gave no answer "
                                     f"({exc.strerror or 'timed out'})") from None
        finally:
            self.close()
        return parse_reply(reply)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def scanner_for(settings: FilesSettings) -> Clamd | None:
    """The configured scanner, or None when `[files] scanner = "off"`."""
    if settings.scanner == "off":
        return None
    if settings.clamd_tcp:
        host, _, port = settings.clamd_tcp.rpartition(":")
        return Clamd((host.strip("[]"), int(port)), timeout=settings.clamd_timeout_seconds)
    return Clamd(settings.clamd_socket or DEFAULT_SOCKET, timeout=settings.clamd_timeout_seconds)


STATE_SECONDS = 10.0
_probed: dict[object, tuple[float, dict]] = {}


def scanner_state(settings: FilesSettings) -> dict:
    """For health and compliance: whether scanning is on and clamd answers (a PING with
    the configured timeout, at most 2 s here so a health pass never waits long). The
    answer is reused for STATE_SECONDS: the daemon's health pass runs every second."""
    clamd = scanner_for(settings)
    if clamd is None:
        return {"scanner": "off", "answers": None, "version": None}
    now = time.monotonic()
    cached = _probed.get(clamd.address)
    if cached is not None and now - cached[0] < STATE_SECONDS:
        return dict(cached[1])
    probe = Clamd(clamd.address, timeout=min(clamd.timeout, 2.0))
    try:
        answers = probe.ping()
        version = probe.version() if answers else None
    except ScannerUnavailable:
        answers, version = False, None
    state = {"scanner": "clamd", "address": clamd.describe(), "answers": answers, "version": version}
    _probed[clamd.address] = (now, state)
    return dict(state)
