"""A client file's content to and from the daemon, in bounded pieces over the control
socket: the one upload loop and the one download loop, shared by the CLI (`strongroom
files add|get`, console/cli/files.py) and the console's files screen
(console/modals/files.py), so the two cannot drift apart in how a transfer is opened,
fed in order, aborted on failure, or written to disk.

Each piece is a raw binary frame after the call's JSON frame (a framed transfer, no
base64). A download is written beside its destination and renamed into place only
after the daemon has handed over the last piece, which it sends only once the whole
file has authenticated and matched its recorded hash: a tampered or truncated file
never lands at the destination. Nothing here logs: names and content are PHI.
"""
from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any, Protocol

from strongroom.core.errors import ValidationError
from strongroom.core.fsutil import StreamedFile


class Caller(Protocol):
    """What a transfer needs of a connection: console.client.Client, or the console's
    wrapper of it that also notices a lost session."""

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                   content: Any = None) -> Any: ...

    async def call_with_content(self, cmd: str, args: dict | None = None, *, timeout: float | None = None,
                                content: Any = None) -> tuple[Any, memoryview | None]: ...


def guess_type(path: Path) -> str:
    """The content type sent when none is given: guessed from the name's extension, as
    the daemon's allowed_types are written; unknown is application/octet-stream (which
    the daemon refuses by default, with a message naming what it allows)."""
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def upload(client: Caller, client_id: str, path: Path, *, content_type: str,
                 description: str | None = None) -> dict:
    """Add the file at `path` to the client: file.add, its content piece by piece in
    order, then file.upload.commit (the daemon's answer: the file). On any failure the
    upload is aborted, so the daemon does not keep a half-sent file's chunks until its
    idle timeout. The daemon never opens a local path: the console may be elsewhere."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        args: dict[str, Any] = {"client_id": client_id, "name": path.name, "content_type": content_type,
                                "size": size, "framed": True}
        if description:
            args["description"] = description
        opened = await client.call("file.add", args)
        upload_id = opened["upload_id"]
        try:
            offset = 0
            while piece := fh.read(opened["transfer_bytes"]):
                await client.call("file.chunk.add", {"upload_id": upload_id, "offset": offset}, content=piece)
                offset += len(piece)
            return await client.call("file.upload.commit", {"upload_id": upload_id})
        except BaseException:
            await quietly(client.call("file.upload.abort", {"upload_id": upload_id}))
            raise


async def quietly(awaitable) -> None:
    """Await a clean-up call whose failure changes nothing for the caller."""
    try:
        await awaitable
    except Exception:   # the upload lapses on its own after the daemon's idle timeout
        pass


async def download(client: Caller, file_id: str, out: Path) -> dict:
    """Save the file's content at `out` (absolute; its folder must exist): written to a
    temporary file beside it, fsynced and renamed in only when whole, so `out` is the
    whole file or untouched. Whether `out` may be replaced is the caller's decision,
    taken before this is called. Returns {file_id, size, content_type, out}."""
    opened = await client.call("file.get", {"file_id": file_id, "framed": True})
    with StreamedFile(out) as sink:      # beside `out`, fsynced, renamed in only when whole
        while True:
            piece, content = await client.call_with_content("file.chunk.get",
                                                            {"download_id": opened["download_id"]})
            if content is None or len(content) != piece["size"]:
                raise ValidationError("the daemon's answer lacks the piece it announced")
            sink.write(content)
            if piece["final"]:
                break
        sink.commit()
    return {"file_id": opened["file_id"], "size": opened["size"], "content_type": opened["content_type"],
            "out": str(out)}
