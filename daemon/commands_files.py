"""Control commands for client files: add, list, get, remove.

How content crosses the control socket: in bounded pieces, each a raw binary ZeroMQ
frame after the call's JSON frame (control.py's framing) when the transfer is opened
with `framed: true`, else base64 in the JSON (`data`, kept for one release for older
clients). A piece is at most `transfer_bytes` (the open's answer): for a framed
transfer min(4 MiB store chunk, [daemon] max_frame_bytes), as a binary frame needs
no base64 headroom; for base64 what fits a JSON frame under the limit. A transfer
takes its pieces in one form only: a frame to a base64 transfer, inline data to a
framed one, data both inline and as a frame, or a piece over transfer_bytes, is
bad_request and leaves the transfer as it was. Calls are answered one at a time per
transfer (its lock), in the order they run on the worker threads, which for calls sent
together need not be the order they were sent in: a client sends the next piece after
the answer to the last, and gives each piece's `offset`, so a piece that does come out
of turn is refused (bad_request, nothing written) rather than stored out of order.
Not a local path for the daemon to open: the hardened unit
(ProtectHome=, PrivateTmp=, its own user) cannot see the caller's files, and a path
would not work for a console on CURVE TCP. A transfer is opened, fed or drained in
order, and finished; the daemon holds each open transfer (at most MAX_TRANSFERS, each
for the session that opened it, dropped after IDLE_SECONDS without a call) and never
more than one chunk of its content:

    file.add {client_id, name, content_type, size, description?, framed?} -> {upload_id, transfer_bytes}
    file.chunk.add {upload_id, offset?} + [content frame]   (framed; repeated, in order)
    file.chunk.add {upload_id, data, offset?}               (base64; repeated, in order)
    file.upload.commit {upload_id}               -> the file (the row exists from here on)
    file.upload.abort {upload_id}                (stored chunks deleted)
    file.get {file_id, framed?}               -> {download_id, size, content_type, name} (audited READ)
    file.chunk.get {download_id}              -> {size, final} + [content frame] (framed)
                                              -> {data, final} (base64; repeated until final)

Every chunk handed out has been authenticated; the last one only after the whole file
matched its recorded size and hash, so a client that writes to a temporary file and
renames it only after `final` never keeps a tampered or truncated file.

With `[files] scanner = "clamd"` each upload's content goes to clamd as its chunks
arrive (core.files.scan); file.upload.commit answers `virus_scan_status` clean, or
pending (with `scan_note`) when clamd gave no verdict, or refuses an infected file
with bad_request after its security event is committed. file.get refuses a file not
scanned clean (forbidden) unless the caller has files:quarantine:read.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from strongroom.core.db.engine import transaction
from strongroom.core.errors import ConflictError, NotFoundError, ValidationError
from strongroom.core.files import repository as files
from strongroom.core.files.content import CHUNK_SIZE
from strongroom.core.files.scan import scanner_for
from strongroom.core.files.store import open_files_target

from strongroom.core.protocol.models.files import AddArgs, ChunkArgs, ChunkReceived, ChunkSent, DownloadArgs, DownloadStarted, FileAdded, FileArgs, GetArgs, FileListed, FileRemoved, ListArgs, UploadAborted, UploadArgs, UploadStarted
from strongroom.daemon.commands import Call, Framed, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

MAX_TRANSFERS = 16
IDLE_SECONDS = 300.0


def transfer_bytes(max_frame_bytes: int, framed: bool = False) -> int:
    """Content bytes per piece: a binary frame holds content only, up to the frame limit
    (and one store chunk); base64 (4/3) plus the JSON envelope stay under the limit."""
    if framed:
        return max(1024, min(CHUNK_SIZE, max_frame_bytes))
    return max(1024, min(CHUNK_SIZE, (max_frame_bytes - 4096) // 4 * 3))


@dataclass
class _Transfer:
    owner: str                 # the session (or local operator) that opened it
    state: Any                 # files.Upload, or the download's chunk iterator
    kind: str
    framed: bool = False       # pieces as binary frames (else base64 in the JSON)
    used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # download: the store chunk being sent, as a view (a piece is a slice of it, not a
    # copy of the rest each time: a 4 MiB chunk in 750 KB pieces was copied 14 MiB over)
    pending: memoryview = memoryview(b"")
    held: bytes | None = None  # download: the next store chunk, read ahead to know `final`


class Transfers:
    """Open uploads and downloads, bounded in number and idle time."""

    def __init__(self) -> None:
        self._open: dict[str, _Transfer] = {}
        self._lock = threading.Lock()

    def open(self, owner: str, kind: str, state: Any, framed: bool = False) -> str:
        self.sweep()
        with self._lock:
            if len(self._open) >= MAX_TRANSFERS:
                raise ConflictError(f"{MAX_TRANSFERS} file transfers are open; finish one or wait "
                                    f"{int(IDLE_SECONDS)} s for an idle one to lapse")
            transfer_id = secrets.token_urlsafe(18)
            self._open[transfer_id] = _Transfer(owner, state, kind, framed)
        return transfer_id

    def take(self, transfer_id: str, owner: str, kind: str) -> _Transfer:
        with self._lock:
            transfer = self._open.get(transfer_id)
        if transfer is None or transfer.kind != kind or transfer.owner != owner:
            raise NotFoundError(f"no open {kind} with that id (finished, lapsed after {int(IDLE_SECONDS)} s idle, "
                                "or another session's)")
        transfer.used = time.monotonic()
        return transfer

    def close(self, transfer_id: str) -> None:
        with self._lock:
            transfer = self._open.pop(transfer_id, None)
        if transfer is not None:
            _release(transfer)

    def sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            lapsed = [k for k, t in self._open.items() if now - t.used > IDLE_SECONDS]
            gone = [self._open.pop(k) for k in lapsed]
        for transfer in gone:
            _release(transfer)


def _release(transfer: _Transfer) -> None:
    if transfer.kind == "upload":
        transfer.state.abort()


_TRANSFERS = Transfers()


def _owner(call: Call) -> str:
    return f"{call.principal.actor}|{call.principal.session_id or call.token or ''}"


def _target(d: "Daemon"):
    return open_files_target(d.ctx.settings)


def _piece(call: Call, transfer: _Transfer, limit: int):
    """The content of one file.chunk.add, in the form its transfer was opened for;
    anything else is refused (ValidationError: bad_request) before the transfer changes."""
    data, frame = call.args.data, call.content
    if data is not None and frame is not None:
        raise ValidationError("content both inline (data) and as a binary frame: send it once")
    if transfer.framed:
        if frame is None:
            raise ValidationError("this upload was opened with framed: send each piece as a binary frame "
                                  "after the JSON frame, not as data")
        if len(frame) > limit:
            raise ValidationError(f"a piece carries at most {limit} bytes")
        return frame
    if frame is not None:
        raise ValidationError("this upload was opened without framed: send each piece as base64 data "
                              "(or open the upload with framed: true)")
    if data is None:
        raise ValidationError("file.chunk.add needs data (base64)")
    return _decode(data, limit)


def _decode(data: str, limit: int) -> bytes:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("data must be base64") from None
    if len(raw) > limit:
        raise ValidationError(f"a chunk carries at most {limit} bytes")
    return raw


# --- add ----------------------------------------------------------------------------------

@command("file.add", permission="table:client_files:write", args=AddArgs, result=UploadStarted)
def add_cmd(d: "Daemon", call: Call) -> dict:
    """Start adding a file to a client (name, type and size checked against [files] first);
    send its content with file.chunk.add, then file.upload.commit."""
    a: AddArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        upload = files.begin_add(conn, d.ctx.keyring, call.principal, _target(d), d.ctx.settings.files,
                                 a.client_id, name=a.name, content_type=a.content_type, size=a.size,
                                 description=a.description, auth=d.ctx.settings.auth,
                                 scanner=scanner_for(d.ctx.settings.files))
    upload_id = _TRANSFERS.open(_owner(call), "upload", upload, a.framed)
    return {"upload_id": upload_id, "file_id": upload.file_id,
            "transfer_bytes": transfer_bytes(d.ctx.settings.daemon.max_frame_bytes, a.framed)}


@command("file.chunk.add", permission="table:client_files:write", args=ChunkArgs, result=ChunkReceived,
         takes_content=True)
def add_chunk_cmd(d: "Daemon", call: Call) -> dict:
    """The next piece of an upload's content, at most transfer_bytes: a binary frame after
    the JSON frame for a framed upload, else base64 `data`."""
    transfer = _TRANSFERS.take(call.args.upload_id, _owner(call), "upload")
    data = _piece(call, transfer, transfer_bytes(d.ctx.settings.daemon.max_frame_bytes, transfer.framed))
    with transfer.lock:
        if call.args.offset is not None and call.args.offset != transfer.state.received:
            raise ValidationError(f"a piece at offset {call.args.offset}, but {transfer.state.received} bytes "
                                  "are received: send the pieces in order, each after the last is answered")
        try:
            transfer.state.write(data)
        except BaseException:
            _TRANSFERS.close(call.args.upload_id)
            raise
        return {"received": transfer.state.received}


@command("file.upload.commit", permission="table:client_files:write", args=UploadArgs, result=FileAdded)
def add_commit_cmd(d: "Daemon", call: Call) -> dict:
    """Finish an upload: the content is stored, then the file's row is written (audited CREATE)."""
    transfer = _TRANSFERS.take(call.args.upload_id, _owner(call), "upload")
    with transfer.lock:
        try:
            with transaction(d.ctx.engine) as conn:
                result = files.commit_add(conn, call.principal, transfer.state)
        finally:
            transfer.kind = "done"       # nothing to abort any more: commit_add cleaned up on failure
            _TRANSFERS.close(call.args.upload_id)
    return files.refuse_if_infected(result)   # the malware_found event is committed by now


@command("file.upload.abort", permission="table:client_files:write", args=UploadArgs, result=UploadAborted)
def add_abort_cmd(d: "Daemon", call: Call) -> dict:
    """Abandon an upload; what was stored of it is deleted."""
    transfer = _TRANSFERS.take(call.args.upload_id, _owner(call), "upload")
    with transfer.lock:
        _TRANSFERS.close(call.args.upload_id)
    return {"aborted": True}


# --- list, get, remove ---------------------------------------------------------------------

@command("file.list", permission="table:client_files:read", args=ListArgs, result=list[FileListed])
def list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """A client's files, newest first; names and descriptions only with phi:read (audited READ)."""
    with transaction(d.ctx.engine) as conn:
        return files.list_files(conn, d.ctx.keyring, call.principal, _target(d), call.args.client_id,
                                limit=call.args.limit)


@command("file.get", permission="table:client_files:read", args=GetArgs, result=DownloadStarted)
def get_cmd(d: "Daemon", call: Call) -> dict:
    """Open a file for reading (needs phi:read too; audited READ); read it with files.get.chunk.
    While scanning is on, a file not scanned clean needs files:quarantine:read."""
    with transaction(d.ctx.engine) as conn:   # the READ entry commits with the opening
        download = files.open_file(conn, d.ctx.keyring, call.principal, _target(d), call.args.file_id,
                                   quarantine=d.ctx.settings.files.scanner != "off")
    framed = call.args.framed
    download_id = _TRANSFERS.open(_owner(call), "download", download.chunks, framed)
    return {"download_id": download_id, "file_id": download.file_id, "size": download.size,
            "content_type": download.content_type, "name": download.name,
            "transfer_bytes": transfer_bytes(d.ctx.settings.daemon.max_frame_bytes, framed)}


@command("file.chunk.get", permission="table:client_files:read", args=DownloadArgs, result=ChunkSent)
def get_chunk_cmd(d: "Daemon", call: Call) -> dict | Framed:
    """The next piece of an opened file: for a framed download a binary frame after the JSON
    answer ({size, final}), else base64 `data`; `final` marks the last, sent only after
    the whole file matched its recorded hash."""
    transfer = _TRANSFERS.take(call.args.download_id, _owner(call), "download")
    size = transfer_bytes(d.ctx.settings.daemon.max_frame_bytes, transfer.framed)
    with transfer.lock:
        try:
            if not transfer.pending:
                # Read one store chunk ahead: whether this one is the last is known only
                # once the next read ends the stream (after the whole-file check).
                current = transfer.held if transfer.held is not None else next(transfer.state, b"")
                transfer.held = next(transfer.state, None)
                transfer.pending = memoryview(current)
            piece, transfer.pending = transfer.pending[:size], transfer.pending[size:]
            final = not transfer.pending and transfer.held is None
        except BaseException:
            _TRANSFERS.close(call.args.download_id)
            raise
        if final:
            _TRANSFERS.close(call.args.download_id)
    if transfer.framed:
        return Framed({"size": len(piece), "final": final}, piece)
    return {"data": base64.b64encode(piece).decode(), "final": final}


@command("file.remove", permission="table:client_files:delete", args=FileArgs, result=FileRemoved)
def remove_cmd(d: "Daemon", call: Call) -> dict:
    """Remove a file: its row tombstoned (audited DELETE), then its stored objects deleted."""
    target = _target(d)
    with transaction(d.ctx.engine) as conn:
        keys = files.remove_file(conn, d.ctx.keyring, call.principal, target, call.args.file_id)
    return {"file_id": call.args.file_id, "objects_deleted": files.delete_objects(target, keys)}
