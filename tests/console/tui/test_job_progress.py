"""A job's progress row: an indeterminate bar pulses while the run's size is unknown, and
stops the moment the run ends, whatever the outcome, saying how it ended (the bar was
left pulsing for ever after a failure). While it runs, it says how far in the one unit
the run's kind counts in."""
from __future__ import annotations

from rich.color import Color
from strongroom.console.widgets.job_progress import JobProgress, show_run, show_runs
from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.widgets import Label, ProgressBar
from textual.widgets._progress_bar import Bar

from tests.console.tui.conftest import drive

RUN = "01a2061f-77c9-7000-a71a-00000000e001"


class Host(App):
    def compose(self) -> ComposeResult:
        yield Vertical(id="running")


def parts(app) -> tuple[JobProgress, ProgressBar, Bar, str]:
    row = app.query_one(JobProgress)
    bar = row.query_one(ProgressBar)
    return row, bar, bar.query_one(Bar), str(row.query_one(".message", Label).render())


def pulsing(bar: Bar) -> bool:
    return bar.percentage is None or bar.auto_refresh is not None


def colour(app, name: str) -> Color:
    return Color.parse(app.theme_variables[name])


def bar_colour(bar: Bar) -> Color:
    style = bar.get_component_rich_style("bar--complete" if bar.percentage == 1 else "bar--bar")
    return style.color


def feed(app, **event) -> bool:
    return show_run(app.query_one("#running", Vertical), {"run_id": RUN, "kind": "sync", **event}, "sync")


async def until_drawn(pilot, predicate) -> None:
    for _ in range(50):
        try:
            if predicate():
                return
        except NoMatches:           # mounted, children not yet composed
            pass
        await pilot.pause(0.05)
    raise AssertionError("the row was not drawn as expected")


def test_a_failed_run_stops_its_bar_and_says_failed():
    async def scenario():
        app = Host()
        async with app.run_test(size=(80, 5)) as pilot:
            feed(app, status="running")
            await until_drawn(pilot, lambda: app.query(JobProgress) and app.query_one(JobProgress).is_mounted)
            row, _, bar, text = parts(app)
            assert pulsing(bar) and text == "running"

            assert feed(app, status="failed", error="peer unreachable (OperationalError)") is True
            await until_drawn(pilot, lambda: not pulsing(parts(app)[2]))
            row, progress, bar, text = parts(app)
            assert text == "✗ failed: peer unreachable (OperationalError)"
            assert row.has_class("-failed") and bar.auto_refresh is None
            assert bar_colour(bar) == colour(app, "error")
            assert not progress.query_one("#percentage").display      # no "100%" for a run that failed
            first = app.export_screenshot()
            await pilot.pause(0.3)
            assert app.export_screenshot() == first                          # nothing moves any more

            assert feed(app, status="running", done=5, total=10) is False     # a late event: still failed
            assert parts(app)[3].startswith("✗ failed")

    drive(scenario)


def test_a_cancelled_run_stops_where_it_got_to():
    async def scenario():
        app = Host()
        async with app.run_test(size=(80, 5)) as pilot:
            feed(app, status="running", done=40, total=100, message="clients")
            await until_drawn(pilot, lambda: app.query(JobProgress) and parts(app)[1].progress == 40)
            assert parts(app)[3] == "running clients"
            feed(app, status="cancelled")                                    # counts not repeated
            await until_drawn(pilot, lambda: parts(app)[0].has_class("-cancelled"))
            row, progress, bar, text = parts(app)
            assert (progress.total, progress.progress) == (100, 40) and not pulsing(bar)
            assert text == "⊘ cancelled" and bar_colour(bar) == colour(app, "warning")
            assert progress.query_one("#percentage").display               # 40%: where it stopped

    drive(scenario)


def test_a_succeeded_run_fills_its_bar():
    async def scenario():
        app = Host()
        async with app.run_test(size=(80, 5)) as pilot:
            feed(app, status="running")
            await until_drawn(pilot, lambda: app.query(JobProgress))
            feed(app, status="succeeded", message="2 peers")
            await until_drawn(pilot, lambda: parts(app)[0].has_class("-succeeded"))
            _, progress, bar, text = parts(app)
            assert progress.percentage == 1 and not pulsing(bar) and text == "✓ succeeded: 2 peers"
            assert bar_colour(bar) == colour(app, "success")

    drive(scenario)


def test_a_list_of_runs_keeps_the_last_finished_and_never_unfinishes_one():
    """Overview and Backups list every run (show_runs): a finished run keeps its row, the
    oldest finished rows go beyond `keep`, and a late "running" never un-finishes one."""
    async def scenario():
        app = Host()
        async with app.run_test(size=(80, 8)) as pilot:
            box = app.query_one("#running", Vertical)

            def run(n: int, again: bool = False, **event):
                return show_runs(box, {"run_id": f"{RUN[:-1]}{n}", "kind": "backup", **event}, 2, again=again)

            assert [run(n, status="running") for n in (1, 2, 3)] == [False, False, False]
            assert [run(n, status="succeeded") for n in (1, 2, 3)] == [True, True, True]
            await pilot.pause()
            assert [row.run_id[-1] for row in box.query(JobProgress)] == ["2", "3"]
            assert run(3, status="running") is None and run(3, again=True, status="running") is None
            assert run(3, status="failed") is None                          # finished: dropped
            assert run(3, again=True, status="failed") is True               # unless it may be redrawn
            assert box.query_one(f"#run-{RUN[:-1]}3", JobProgress).status == "failed"

    drive(scenario)


def test_a_running_row_says_how_far_in_the_runs_unit():
    async def scenario():
        app = Host()
        async with app.run_test(size=(100, 5)) as pilot:
            feed(app, status="running", done=0, total=None, unit="peers", message="started")
            await until_drawn(pilot, lambda: app.query(JobProgress) and parts(app)[3] == "running started")
            feed(app, status="running", done=1, total=3, unit="peers", message="central: pull")
            await until_drawn(pilot, lambda: parts(app)[3] == "running 1 / 3 peers · central: pull")
            show_run(app.query_one("#running", Vertical),
                     {"run_id": RUN, "kind": "backup", "status": "running", "done": 1_288_490_189,
                      "total": 3_650_722_202, "unit": "bytes", "message": "verifying"}, "backup")
            await until_drawn(pilot, lambda: parts(app)[3] == "running 1.2 / 3.4 GiB · verifying")
            feed(app, status="succeeded")
            await until_drawn(pilot, lambda: parts(app)[3] == "✓ succeeded")

    drive(scenario)


def test_counts_are_told_with_their_unit():
    from strongroom.console.helpers.text import counted

    assert counted(12_400, 100_000, "rows") == "12,400 / 100,000 rows"
    assert counted(1_288_490_189, 3_650_722_202, "bytes") == "1.2 / 3.4 GiB"
    assert counted(200, 900, "bytes") == "200 / 900 B"
    assert counted(840, None, "rows") == "840 rows" and counted(5 * 1024 ** 2, None, "bytes") == "5.0 MiB"
    assert counted(0, None, "rows") == counted(None, None, "bytes") == "—"
    assert counted(0, 9, "checks") == "0 / 9 checks"
