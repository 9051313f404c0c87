"""reconcile.*: candidate duplicate clients, merged, dismissed or undone."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class RunArgs(Args):
    practice_id: uuid.UUID | None = None


class ListArgs(Args):
    practice_id: uuid.UUID | None = None
    status: Literal["open", "merged", "dismissed"] | None = "open"
    limit: int = Field(default=100, ge=1, le=10_000)
    after: uuid.UUID | None = Field(default=None, description="the last pair of the previous page (its `next`)")


class PairArgs(Args):
    pair_id: uuid.UUID


class MergeArgs(PairArgs):
    survivor: uuid.UUID | None = None


class Pair(Result):
    pair_id: uuid.UUID
    practice_id: uuid.UUID
    client_a: uuid.UUID
    client_b: uuid.UUID
    score: float
    reasons: list[str]
    status: str
    found_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    # a merge's record: survivor, duplicate and the ids of the rows it moved, per table
    merge_record: dict[str, Any] | None


class PairPage(Result):
    items: list[Pair]
    # the `after` of the following page; None on the last page
    next: uuid.UUID | None = None


class PairShown(Pair):
    # both client records (core/repository/clients.py): decrypted and audited with
    # phi:read, masked otherwise; their fields are the clients table's
    clients: list[dict[str, Any]]
