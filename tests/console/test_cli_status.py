"""`strongroom status`: what the daemon is doing, each running job's progress in the
unit its kind counts in (as the console's Jobs tab shows it)."""
from strongroom.console.cli import status as status_module

from tests.console.cli_helpers import run_cli as run

STATUS = {"version": "1.0", "host": "clinic-1", "pid": 41, "role": "leader", "uptime_seconds": 12.0,
          "database": "sqlite", "next_runs": {"backup": "2026-12-05T02:00:00+00:00"},
          "running_jobs": [
              {"run_id": "r1", "kind": "backup", "done": 1288490188, "total": 3650722201, "unit": "bytes",
               "message": "storing chunks", "elapsed_seconds": 4.0},
              {"run_id": "r2", "kind": "integrity", "done": 3, "total": 9, "unit": "checks",
               "message": None, "elapsed_seconds": 1.0},
              {"run_id": "r3", "kind": "export", "done": 840, "total": None, "unit": "rows",
               "message": "", "elapsed_seconds": 1.0}]}


def test_running_jobs_show_their_progress_in_their_unit(capsys, monkeypatch):
    monkeypatch.setattr(status_module, "run_remote", lambda state, socket_path, call: STATUS)
    code, out, err = run(capsys, "status")
    assert code == 0, err
    lines = [line.strip() for line in out.splitlines()]
    assert "running  backup         1.2 / 3.4 GiB  storing chunks" in lines
    assert "running  integrity      3 / 9 checks" in lines
    assert "running  export         840 rows" in lines
    assert "None" not in out
    assert any(line.startswith("next     backup") for line in lines)


def test_a_run_withheld_from_a_practice_says_why_its_message_is_missing(capsys, monkeypatch):
    withheld = {**STATUS, "running_jobs": [
        {"run_id": "r4", "kind": "backup", "done": 5, "total": 10, "unit": "chunks", "message": None,
         "elapsed_seconds": 2.0, "withheld": "this run covers every practice"}]}
    monkeypatch.setattr(status_module, "run_remote", lambda state, socket_path, call: withheld)
    code, out, err = run(capsys, "status")
    assert code == 0, err
    assert "running  backup         5 / 10 chunks  (covers every practice: its progress message is the operator's)" \
        in [line.strip() for line in out.splitlines()]
