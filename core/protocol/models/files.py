"""file.*: a client's files, added and read a chunk at a time (file.chunk.add and
file.chunk.get carry base64 pieces of at most transfer_bytes and never count towards a
rate limit)."""
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


class ChunkArgs(Args):
    upload_id: str = Field(min_length=1, max_length=64)
    data: str = Field(max_length=64 * 1024 * 1024)


class UploadArgs(Args):
    upload_id: str = Field(min_length=1, max_length=64)


class ListArgs(Args):
    client_id: uuid.UUID
    limit: int = Field(default=200, ge=1, le=1000)


class FileArgs(Args):
    file_id: uuid.UUID


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
    data: str       # base64
    final: bool


class FileRemoved(Result):
    file_id: uuid.UUID
    objects_deleted: int
