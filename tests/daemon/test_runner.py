"""The runner keeps a job honest about what it returns: a result its kind's model does
not describe fails the run (in the test suite, STRONGROOM_CHECK_RESULTS=1), naming where
it strays and never a value."""
import time

import pytest

from strongroom.core.jobs import kinds, runs
from strongroom.daemon.runner import Runner


def _run_returning(ctx, monkeypatch, returned, kind="reconcile"):
    def fake(ctx, params, progress):
        return returned

    monkeypatch.setattr(kinds.JobKind, "function", lambda self: fake)
    runner = Runner(ctx, publish=lambda topic, body: None, on_finish=lambda run: None)
    run = runner.submit(kind, trigger="manual")
    deadline = time.monotonic() + 30
    while runs.get(ctx.engine, run.id).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
    return runs.get(ctx.engine, run.id)


def test_a_result_its_model_describes_lets_the_run_succeed(ctx, monkeypatch):
    done = _run_returning(ctx, monkeypatch, {"practices": [], "pairs_found": 0, "new": 0})
    assert done.status == "succeeded" and done.error is None


@pytest.mark.parametrize("returned, where", [
    ({"practices": [], "pairs_found": "Quillon-Maybury-7", "new": 0}, "pairs_found: int_parsing"),
    ({"practices": [], "pairs_found": 0}, "new: missing"),
    ({"practices": [], "pairs_found": 0, "new": 0, "surprise": "Quillon-Maybury-7"}, "surprise: extra_forbidden"),
])
def test_a_result_that_strays_from_its_model_fails_the_run_naming_where(ctx, monkeypatch, returned, where):
    done = _run_returning(ctx, monkeypatch, returned)
    assert done.status == "failed"
    assert "does not match its declared model" in done.error and where in done.error
    assert "Quillon" not in done.error


def test_every_kind_declares_its_result_for_job_kind_list():
    for kind in kinds.KINDS.values():
        schema = kind.describe()["result"]
        assert schema.get("type") == "object" or "anyOf" in schema, kind.name


def test_a_running_job_is_listed_with_the_unit_its_kind_counts_in(ctx, monkeypatch):
    """`status` (and `strongroom status`) show a run in progress as "3 / 9 checks", not
    bare numbers: the runner's list of active runs carries the kind's unit."""
    import threading

    from strongroom.core.protocol.models.status import RunningJob

    reached, release = threading.Event(), threading.Event()

    def fake(ctx, params, progress):
        progress(3, 9, "checking")
        reached.set()
        release.wait(30)
        return {"practices": [], "pairs_found": 0, "new": 0}

    monkeypatch.setattr(kinds.JobKind, "function", lambda self: fake)
    runner = Runner(ctx, publish=lambda topic, body: None, on_finish=lambda run: None)
    run = runner.submit("reconcile", trigger="manual")
    try:
        assert reached.wait(30)
        [active] = runner.active()
        assert (active["done"], active["total"], active["unit"]) == (3, 9, kinds.KINDS["reconcile"].progress_unit)
        assert RunningJob.model_validate(active).unit == active["unit"]
    finally:
        release.set()
    deadline = time.monotonic() + 30
    while runs.get(ctx.engine, run.id).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.02)
