"""What each job kind returns is what its declared result model says (core/protocol/
models/job_results.py): run for real, on a small practice, the result matches exactly.
The daemon's runner checks the same for every run the daemon tests start; these cover
the kinds and variants those runs do not reach."""
import importlib

import pytest

from strongroom.core.jobs import kinds
from strongroom.core.protocol import to_jsonable
from tests.core.conftest import seed_clients, with_backup_target


def _run(ctx, kind: str, **params) -> dict:
    module = importlib.import_module(f"strongroom.core.jobs.{kinds.KINDS[kind].module}")
    result = module.run(ctx, {**params, "actor": "user:test"}, lambda *a: None)
    where = kinds.check_result(kind, to_jsonable(result))
    assert where is None, f"{kind}: {where}"
    return result


def test_backup_verify_drill_and_prune_return_what_their_models_say(ctx, tmp_path):
    with_backup_target(ctx, tmp_path)
    seed_clients(ctx, n=8)
    _run(ctx, "backup")
    _run(ctx, "backup")
    _run(ctx, "verify")
    _run(ctx, "verify", read_data=True)
    drilled = _run(ctx, "restore_drill")
    assert drilled["snapshot_id"]
    _run(ctx, "prune", dry_run=True)
    newest = _run(ctx, "backup")       # not yet verified, and no snapshot restores through it
    _run(ctx, "prune", snapshot_id=newest["snapshot_id"], dry_run=True)


@pytest.mark.parametrize("kind, params", [
    ("integrity", {}),
    ("key_rotation", {}),
    ("retention", {"dry_run": True}),
    ("retention", {}),
    ("export_retention", {"dry_run": True}),
    ("export_retention", {}),
    ("reconcile", {}),
])
def test_every_other_kind_returns_what_its_model_says(ctx, kind, params):
    seed_clients(ctx, n=8)
    _run(ctx, kind, **params)


def test_a_model_refuses_a_result_with_a_key_it_does_not_name():
    assert "extra_forbidden" in kinds.check_result(
        "files_rescan", {"pending": 0, "clean": 0, "infected": 0, "refused": 0, "unreadable": 0, "gone": 0,
                         "surprise": 1})
