"""`strongroom reconcile` against a real daemon (both engines): run, list, show side by
side, merge with confirmation, undo, dismiss; bad input a clear error naming the field,
non-zero exit, nothing changed."""
import json
import uuid

import pytest
from strongroom.core.db.models import ReconcilePair

from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import data_transaction, make_data_dir, running_daemon
from tests.daemon.conftest import seed_reconcile_demo


@pytest.fixture
def reconcile_daemon(tmp_path, db_url, monkeypatch):
    """A daemon over two records of one person and one other; the CLI pointed at it."""
    data_dir = make_data_dir(tmp_path, db_url)
    ids = seed_reconcile_demo(data_dir)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        proc.ids = ids
        yield proc


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def test_run_list_show_merge_undo_dismiss(reconcile_daemon, capsys):
    d = reconcile_daemon
    code, out, err = cli(capsys, d, "reconcile", "run", "--wait")
    assert code == 0, err
    code, out, err = cli(capsys, d, "reconcile", "list", "--json")
    assert code == 0, err
    (pair,) = json.loads(out)["items"]
    code, out, _ = cli(capsys, d, "reconcile", "list")
    assert code == 0 and pair["pair_id"] in out and "dob=" in out
    code, out, err = cli(capsys, d, "reconcile", "show", pair["pair_id"])
    assert code == 0, err
    assert "first_name    =Zebediahquorn" in out and "date_of_birth =1975-04-03" in out
    code, out, err = cli(capsys, d, "reconcile", "merge", pair["pair_id"], "--yes")
    assert code == 0, err
    assert "merged into" in out and "0 session(s), 0 file(s) moved" in out
    code, out, err = cli(capsys, d, "reconcile", "undo", pair["pair_id"])
    assert code == 0 and "open" in out, err
    code, out, err = cli(capsys, d, "reconcile", "dismiss", pair["pair_id"])
    assert code == 0 and "dismissed" in out, err
    code, out, _ = cli(capsys, d, "reconcile", "list")
    assert code == 0 and out.strip() == "no pairs"


def test_bad_input_is_refused_by_field_and_changes_nothing(reconcile_daemon, capsys):
    d = reconcile_daemon
    code, _, err = cli(capsys, d, "reconcile", "run", "--wait")
    assert code == 0, err
    code, _, err = cli(capsys, d, "reconcile", "merge", "not-a-pair-id", "--yes")
    assert code != 0 and "pair_id" in err and "not-a-pair-id" not in err
    code, _, err = cli(capsys, d, "reconcile", "undo", "00000000-0000-0000-0000-000000000000")
    assert code != 0 and "pair_id" in err
    code, out, _ = cli(capsys, d, "reconcile", "list", "--json")
    (pair,) = json.loads(out)["items"]
    code, _, err = cli(capsys, d, "reconcile", "undo", pair["pair_id"])
    assert code != 0 and "only a merged pair can be undone" in err
    code, _, err = cli(capsys, d, "reconcile", "list", "--status", "gone")
    assert code == 2
    assert d.call("reconcile.list")["items"][0]["status"] == "open"


def test_list_pages_with_after_and_says_how_to_continue(reconcile_daemon, capsys):
    d = reconcile_daemon
    code, _, err = cli(capsys, d, "reconcile", "run", "--wait")
    assert code == 0, err
    with data_transaction(d.data_dir) as (ctx, conn):      # a weaker second pair
        practice = conn.execute(ReconcilePair.__table__.select()).first().practice_id
        conn.execute(ReconcilePair.__table__.insert(), {
            "id": uuid.uuid4(), "practice_id": practice, "client_a": uuid.UUID(d.ids[0]),
            "client_b": uuid.UUID(d.ids[2]), "score": 0.5, "reasons": "dob=", "status": "open"})
    code, out, err = cli(capsys, d, "reconcile", "list", "--limit", "1", "--json")
    assert code == 0, err
    first = json.loads(out)
    (best,) = first["items"]
    assert first["next"] == best["pair_id"] and best["score"] > 0.5
    code, out, _ = cli(capsys, d, "reconcile", "list", "--limit", "1")
    assert out.splitlines()[-1] == f"more: --after {best['pair_id']}"
    code, out, err = cli(capsys, d, "reconcile", "list", "--limit", "1", "--after", best["pair_id"])
    assert code == 0, err
    (line,) = out.splitlines()
    assert "0.50" in line and d.ids[2] in line and "more:" not in out
    code, _, err = cli(capsys, d, "reconcile", "list", "--after", "not-a-pair")
    assert code != 0 and "after" in err and "not-a-pair" not in err
