"""job.*: runs of the job kinds (core/jobs/kinds.py) and the kinds themselves."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from strongroom.core.protocol.models.base import Args, Result


class JobListArgs(Args):
    kind: str | None = None
    status: Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"] | None = None
    limit: int = Field(default=50, ge=1, le=1000)


class JobRunArgs(Args):
    kind: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)


class RunIdArgs(Args):
    run_id: uuid.UUID


class JobRun(Result):
    """One run of a job kind. `params` and `result` are the kind's own (their models are
    in the job-kind table, `job.kind.list`, and core/protocol/models/job_results.py),
    so they are open here."""
    id: uuid.UUID
    job_kind: str
    trigger: str
    status: str
    params: dict[str, Any]
    requested_by: str | None
    progress_done: int
    progress_total: int | None
    progress_unit: str | None   # what progress_done/total count (the kind's one unit): rows, bytes...
    message: str | None
    result: dict[str, Any] | None
    error: str | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    # Set (to why) when the caller is bound to one practice of several and the run covers
    # every practice: params, result, message and error are then left out.
    withheld: str | None = None


class JobKindInfo(Result):
    kind: str
    summary: str
    planned: bool
    schedulable: bool
    on_request_only: bool
    per_configuration: bool
    progress_unit: str          # what its runs' progress counts, one unit per run
    params: dict[str, Any]      # the kind's params as a JSON schema, for building a form
    result: dict[str, Any]      # what its runs return (job.get's `result`), as a JSON schema


class CancelResult(Result):
    run_id: uuid.UUID
    cancel_requested: bool
