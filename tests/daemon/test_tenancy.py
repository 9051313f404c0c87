"""daemon.tenancy's run rule read directly: which practices a run's params name, and
that a scan of many runs asks the database once per name, not once per run."""
from __future__ import annotations

from sqlalchemy import event

from strongroom.core.db.engine import transaction
from strongroom.core.principal import SYSTEM
from strongroom.core.repository.practices import create_practice
from strongroom.daemon import tenancy


def test_a_scan_of_many_runs_looks_each_practice_up_once(engine):
    with transaction(engine) as conn:
        mine = create_practice(conn, SYSTEM, "First Practice")
        theirs = create_practice(conn, SYSTEM, "Second Practice")
        runs = ([{"params": {"practice_id": str(theirs)}} for _ in range(30)]
                + [{"params": {"practice_id": str(mine)}}, {"params": {}}])
        asked: list[str] = []
        listener = lambda *args: asked.append(args[2])        # noqa: E731  (conn, cursor, statement, ...)
        event.listen(engine, "before_cursor_execute", listener)
        try:
            memo: dict = {}
            verdicts = [tenancy.run_verdict(conn, mine, run["params"], memo) for run in runs]
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert verdicts == [tenancy.HIDDEN] * 30 + [tenancy.WHOLE, tenancy.WITHHELD]
    assert len(asked) == 2                        # one lookup per practice named, not per run
    shown = tenancy.run_shown(None, mine, {"params": {}, "result": {"x": 1}, "error": None})
    assert shown["withheld"] == tenancy.WITHHELD_WHY and shown["result"] is None
