"""Job kinds: each a module with one `run(ctx, params, progress) -> dict` function.

The daemon wraps every run in a job_runs row, an audit entry, metrics and progress
events; the functions here know nothing about the daemon. `kinds.KINDS` is the one
table of kinds (typed params, how each may be started, its audit action); the names
below are the views of it the rest of the code reads.
"""
from __future__ import annotations

from strongroom.core.jobs.kinds import (KINDS, JobFunction, Progress, all_kinds, check_params, kind,
                                        on_request_only, planned, runnable, schedulable_kinds)

__all__ = ["KINDS", "JobFunction", "Progress", "all_kinds", "check_params", "kind", "on_request_only",
           "planned", "runnable", "schedulable_kinds"]
