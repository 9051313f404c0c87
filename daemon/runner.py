"""Runs jobs: one thread per run, at most one run per kind, cancellable at safe points.

Every run, scheduled or manual, goes through `submit`: a job_runs row is queued (which
refuses a second active run of the same kind), the job function runs in its own thread
with a progress callback, and the run is closed as succeeded, failed or cancelled with
an audit entry. The progress callback is the job's safe point: when a cancel or a
shutdown is pending it raises CancelledError there, the job's open transaction rolls
back, and nothing half-done remains.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from strongroom.core.context import Context
from strongroom.core.db.models import JobStatus
from strongroom.core.errors import CancelledError, NotFoundError, StrongroomError
from strongroom.core.jobs.kinds import JobFunction, check_result
from strongroom.core.jobs import check_params, kind as job_kind, runnable, runs
from strongroom.core.protocol import to_jsonable

log = logging.getLogger("strongroom.runner")


class ResultMismatch(StrongroomError):
    """A job returned what its kind's result model does not describe: a bug, failing
    the run where the test suite (STRONGROOM_CHECK_RESULTS=1) sees it."""


def _check_result(kind: str, result: object) -> None:
    """Raise ResultMismatch naming where `result` strays from kind's model (never a value)."""
    where = check_result(kind, result)
    if where is not None:
        log.error("job result does not match its model", extra={"job": kind, "mismatch": where})
        raise ResultMismatch(f"the result of {kind} does not match its declared model ({where})")
PROGRESS_DB_INTERVAL = 0.5   # seconds between progress writes to job_runs
PROGRESS_EVENT_INTERVAL = 0.1  # seconds between progress events on the PUB socket


@dataclass
class Handle:
    run: runs.Run
    function: JobFunction
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    done: int = 0
    total: int | None = None
    message: str = ""
    started: float = field(default_factory=time.monotonic)


class Runner:
    def __init__(self, ctx: Context, *, publish: Callable[[str, dict], None],
                 on_finish: Callable[[runs.Run], None]) -> None:
        self.ctx = ctx
        self._publish = publish
        self._on_finish = on_finish
        self._lock = threading.Lock()
        self._active: dict[uuid.UUID, Handle] = {}
        self.accepting = True

    def kinds(self) -> list[str]:
        return list(runnable())

    def active(self) -> list[dict]:
        with self._lock:
            return [{"run_id": str(h.run.id), "kind": h.run.job_kind, "done": h.done, "total": h.total,
                     "unit": h.run.progress_unit, "message": h.message, "elapsed_seconds": round(time.monotonic() - h.started, 1)}
                    for h in self._active.values()]

    def params_of(self, run_id: str) -> dict | None:
        """The params a running job was submitted with (None: not running here), for
        deciding whose run it is (daemon/tenancy.running_shown)."""
        with self._lock:
            handle = next((h for h in self._active.values() if str(h.run.id) == run_id), None)
        return None if handle is None else dict(handle.run.params or {})

    def submit(self, kind: str, *, trigger: str, params: dict | None = None,
               requested_by: str | None = None) -> runs.Run:
        function = job_kind(kind).function()     # unknown: not_found; planned: not_implemented
        checked = check_params(kind, params or {})  # before anything is stored: bad_request
        if not self.accepting:
            raise CancelledError("the daemon is shutting down and accepts no new jobs")
        run = runs.queue(self.ctx.engine, kind, trigger=trigger, params=checked, requested_by=requested_by)
        handle = Handle(run, function)
        handle.thread = threading.Thread(target=self._execute, args=(handle,),
                                         name=f"job-{kind}-{str(run.id)[:8]}", daemon=True)
        with self._lock:
            self._active[run.id] = handle
        handle.thread.start()
        return run

    def cancel(self, run_id: uuid.UUID, *, by: str) -> dict:
        with self._lock:
            handle = self._active.get(run_id)
        if handle is None:
            raise NotFoundError(f"job run {run_id} is not running")
        handle.cancel.set()
        log.info("cancel requested", extra={"run_id": str(run_id), "by": by})
        return {"run_id": str(run_id), "cancel_requested": True}

    def shutdown(self, grace: float) -> list[uuid.UUID]:
        """Stop accepting, ask every job to stop, wait up to `grace` seconds.
        Returns the runs still going (the next start marks them interrupted)."""
        self.accepting = False
        with self._lock:
            handles = list(self._active.values())
        for handle in handles:
            handle.cancel.set()
        deadline = time.monotonic() + grace
        for handle in handles:
            if handle.thread is not None:
                handle.thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return list(self._active)

    def _execute(self, handle: Handle) -> None:
        run = handle.run
        engine = self.ctx.engine
        last_db = last_event = 0.0

        def progress(done: int, total: int | None, message: str) -> None:
            nonlocal last_db, last_event
            if handle.cancel.is_set():
                raise CancelledError("cancelled at a safe point")
            handle.done, handle.total, handle.message = done, total, message
            now = time.monotonic()
            if now - last_event >= PROGRESS_EVENT_INTERVAL:
                last_event = now
                self._publish(f"job.{run.id}", {"run_id": str(run.id), "kind": run.job_kind,
                                                "status": "running", "done": done, "total": total,
                                                "unit": run.progress_unit, "message": message})
            if now - last_db >= PROGRESS_DB_INTERVAL:
                last_db = now
                runs.progress(engine, run.id, done, total, message)

        status, result, error = JobStatus.FAILED, None, None
        try:
            runs.start(engine, run.id)
            self._publish(f"job.{run.id}", {"run_id": str(run.id), "kind": run.job_kind, "status": "running",
                                            "done": 0, "total": None, "unit": run.progress_unit,
                                            "message": "started"})
            log.info("job started", extra={"run_id": str(run.id), "job": run.job_kind, "trigger": run.trigger})
            params = {**run.params, "actor": run.requested_by or "system"}
            result = handle.function(self.ctx, params, progress)
            if os.environ.get("STRONGROOM_CHECK_RESULTS") == "1":
                _check_result(run.job_kind, to_jsonable(result))
            status = JobStatus.SUCCEEDED
        except CancelledError as exc:
            status, error = JobStatus.CANCELLED, str(exc)
        except StrongroomError as exc:
            error = f"{type(exc).__name__}: {exc}"
            result = getattr(exc, "result", None)
            if result is not None and os.environ.get("STRONGROOM_CHECK_RESULTS") == "1":
                try:
                    _check_result(run.job_kind, to_jsonable(result))
                except ResultMismatch as mismatch:
                    error = str(mismatch)
        except Exception as exc:  # a bug in a job must fail the run, not kill the daemon
            log.exception("job crashed", extra={"run_id": str(run.id), "job": run.job_kind})
            error = f"internal error ({type(exc).__name__}); see the daemon log"
        finally:
            try:
                final = runs.finish(engine, run.id, status, result=to_jsonable(result), error=error,
                                    actor=run.requested_by or "system", done=handle.done, total=handle.total)
            except Exception:
                log.exception("could not record the end of a run", extra={"run_id": str(run.id)})
                final = None
            with self._lock:
                self._active.pop(run.id, None)
            self._publish(f"job.{run.id}", {"run_id": str(run.id), "kind": run.job_kind,
                                            "status": status.value, "done": handle.done,
                                            "total": handle.total, "unit": run.progress_unit, "error": error})
            log.info("job finished", extra={"run_id": str(run.id), "job": run.job_kind,
                                            "status": status.value})
            if final is not None:
                self._on_finish(final)
