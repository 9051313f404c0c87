"""file.*: a client's files, added and read a piece at a time (file.chunk.add and
file.chunk.get carry pieces of at most transfer_bytes, as a binary frame after the JSON
frame when the transfer was opened with `framed`, else base64 in `data`; they never
count towards a rate limit)."""
from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class AddArgs(Args):
    client_id: uuid.UUID
    # Checked by core.files (path separators, control characters, length): its errors
    # never echo the name, so nothing here may either.
    name: str = Field(max_length=1024)
    content_type: str = Field(max_length=200)
    size: int = Field(ge=0)
    description: str | None = Field(default=None, max_length=2000)
    framed: bool = False      # pieces as binary frames (else base64 `data`, kept for one release)


class ChunkArgs(Args):
    upload_id: str = Field(min_length=1, max_length=64)
    data: str | None = Field(default=None, max_length=64 * 1024 * 1024)   # base64; None when framed
    # Where this piece starts; when given it must be the bytes received so far, so a piece
    # sent ahead of its turn is refused (bad_request) instead of stored out of order.
    offset: int | None = Field(default=None, ge=0)


class UploadArgs(Args):
    upload_id: str = Field(min_length=1, max_length=64)


class ListArgs(Args):
    client_id: uuid.UUID
    limit: int = Field(default=200, ge=1, le=1000)


class FileArgs(Args):
    file_id: uuid.UUID


class GetArgs(FileArgs):
    framed: bool = False      # pieces as binary frames (else base64 `data`, kept for one release)


class DownloadArgs(Args):
    download_id: str = Field(min_length=1, max_length=64)


class UploadStarted(Result):
    upload_id: str
    file_id: uuid.UUID
    transfer_bytes: int


class ChunkReceived(Result):
    received: int


class FileAdded(Result):
    id: uuid.UUID
    client_id: uuid.UUID
    size_bytes: int
    content_type: str
    virus_scan_status: str
    scan_note: str | None = None


class UploadAborted(Result):
    aborted: bool


class FileListed(Result):
    """Name and description are None without phi:read."""
    id: uuid.UUID
    client_id: uuid.UUID
    name: str | None
    description: str | None
    content_type: str
    size_bytes: int
    virus_scan_status: str
    created_at: datetime
    uploaded_by: uuid.UUID | None


class DownloadStarted(Result):
    download_id: str
    file_id: uuid.UUID
    size: int
    content_type: str
    name: str
    transfer_bytes: int


class ChunkSent(Result):
    """A framed download's piece follows as a binary frame of `size` bytes; otherwise
    `data` holds it in base64."""
    final: bool
    data: str | None = None     # base64 (not framed)
    size: int | None = None     # bytes in the binary frame (framed)


class FileRemoved(Result):
    file_id: uuid.UUID
    objects_deleted: int
