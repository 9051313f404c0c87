"""The console against a real daemon subprocess, driven with Textual's Pilot at 80x24."""
from __future__ import annotations

import asyncio
import difflib
import html
import pickle
import re
import time
from collections.abc import Callable

import pytest
import pytest_textual_snapshot
import textual.constants
from textual import events
from textual._wait import wait_for_idle
from textual.app import App
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.pilot import Pilot, WaitForScreenTimeout
from textual.widgets import Input, TextArea

from tests.daemon.conftest import (FAST_HEALTH, PASSWORD, data_transaction, insert_demo_rows, make_data_dir,
                                   running_daemon)

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def no_animations(monkeypatch):
    """Textual off its animations, as TEXTUAL_ANIMATIONS=none does: a tab switch moves the
    tab bar's underline on a 20 ms timer and then over 0.3 s, which no wait can see coming,
    and on a loaded machine snapshots caught it half-way (a stray `━`). The tests judge end
    states; an app made during the test reads this when it starts."""
    monkeypatch.setattr(textual.constants, "TEXTUAL_ANIMATIONS", "none")


def svg_lines(svg: str) -> list[str]:
    """The text rows of a Textual SVG screenshot (each `<text>` is clipped to its row)."""
    rows: dict[int, str] = {}
    for row, text in re.findall(r'<text[^>]*clip-path="url\(#[^)]*-line-(\d+)\)"[^>]*>(.*?)</text>', svg):
        rows[int(row)] = rows.get(int(row), "") + html.unescape(text)
    return [rows.get(n, "") for n in range(max(rows, default=-1) + 1)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A snapshot that does not match shows, in the test's own report, which rows of the
    screen differ: CI keeps no snapshot_report.html, and a mismatch seen once on a loaded
    machine (stop 48, the reconcile list at 120x40) could not be told apart from noise."""
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.failed or "snap_compare" not in getattr(item, "fixturenames", ()):
        return
    try:
        data = pickle.loads(pytest_textual_snapshot.node_to_report_path(item).read_bytes())
    except Exception:   # noqa: BLE001 - the rows are a help; the failure they explain is reported anyway
        return
    expected, actual = svg_lines(str(data[1] or "")), svg_lines(str(data[2] or ""))
    diff = "\n".join(difflib.unified_diff(expected, actual, "snapshot", "this run", lineterm="", n=1))
    report.sections.append(("snapshot rows that differ", diff or "(the text is the same: colours or styles differ)"))


TEXTUAL_WAIT_FOR_SCREEN = Pilot._wait_for_screen


async def wait_for_screen_in_rounds(pilot: Pilot, timeout: float = 30.0, *, round_seconds: float = 2.0,
                                    at_least: float = 60.0) -> bool:
    """Pilot's wait for the screen's widgets to drain their queues, asked afresh every
    `round_seconds` until `max(timeout, at_least)` has passed.

    Textual's own wait (behind every pause, press and click) posts one callback to each
    widget on the screen *once* and waits up to 30 s for all of them. A widget that
    takes the callback and never runs it stalls that wait for the full 30 s and fails
    the test: CI saw it once in a snapshot (stop 39, `test_reconcile_pair_layout[120x40]`,
    67 s, at the loaded end of the suite; which widget, and why, was not found: 36 runs
    under load did not repeat it). Each round here walks the screen as it is now and
    asks again, so one lost callback, or a widget that has since left, no longer fails
    the test; a widget that is really stuck still fails the wait, after 60 s rather
    than 30, which a loaded 2-core CI machine also needs."""
    deadline = time.monotonic() + max(timeout, at_least)
    while True:
        left = deadline - time.monotonic()
        try:
            return await TEXTUAL_WAIT_FOR_SCREEN(pilot, timeout=max(0.05, min(round_seconds, left)))
        except WaitForScreenTimeout:
            if time.monotonic() >= deadline:
                raise


@pytest.fixture(autouse=True)
def patient_pilot(monkeypatch):
    """Every Pilot in the console's tests waits in rounds (wait_for_screen_in_rounds)."""
    monkeypatch.setattr(Pilot, "_wait_for_screen", wait_for_screen_in_rounds)


TEXTUAL_PRESS_KEYS = App._press_keys


def _key_event(key: str) -> events.Key:
    """The Key event Textual's own `_press_keys` makes for a one-character key."""
    import unicodedata

    if not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def press_keys_typing_in_runs(app: App, keys) -> None:
    """Textual's `_press_keys`, except that a run of characters is typed the way a fast
    typist (or a paste) types it: every key sent, then one wait for the app to go idle.

    Textual waits for idle twice after every key, and each wait sleeps at least 20 ms
    and, while any thread of the test process is busy, up to a second: `log_in` alone
    (forty keys) cost 2-3 s of every console test, a fifth of the suite. The app still
    gets each key as its own event, in order, as from a terminal; named keys (enter, tab,
    ctrl+...) and `wait:` steps keep Textual's wait after each, and so does every key
    while the focus is not in a text field, where a character may be a binding that
    changes the screen the next key lands on."""
    run: list[str] = []

    async def flush() -> None:
        if not run:
            return
        for key in run:
            event = _key_event(key)
            event.set_sender(app)
            app._driver.send_message(event)
        run.clear()
        await wait_for_idle(0)
        await app._animator.wait_until_complete()
        await wait_for_idle(0)

    for key in keys:
        if len(key) == 1 and (run or isinstance(app.focused, (Input, TextArea))):
            run.append(key)
            continue
        await flush()
        await TEXTUAL_PRESS_KEYS(app, [key])
    await flush()


@pytest.fixture(autouse=True)
def typing_in_runs(monkeypatch):
    """Every console test types runs of characters at once (press_keys_typing_in_runs)."""
    monkeypatch.setattr(App, "_press_keys", press_keys_typing_in_runs)


@pytest.fixture
def tui_data_dir(tmp_path, db_url):
    return make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)


@pytest.fixture
def tui_daemon(tui_data_dir, tmp_path):
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


def seed_demo_data(data_dir, clients: int = 12, sessions_per_client: int = 2) -> None:
    """Synthetic clients and sessions written straight into the test's database, so
    integrity, backups and jobs have protected rows to work on."""
    with data_transaction(data_dir) as (ctx, conn):
        insert_demo_rows(ctx, conn, clients, sessions_per_client)


@pytest.fixture
def demo_daemon(tui_data_dir, tmp_path):
    """A daemon over a data directory holding demo clients and sessions."""
    seed_demo_data(tui_data_dir)
    with running_daemon(tui_data_dir, tmp_path) as proc:
        yield proc


def tab_keys(tab_id: str) -> tuple[str, ...]:
    """The keys that show a tab: its own (every tab has one)."""
    return (tab_key(tab_id),)


def tab_key(tab_id: str) -> str:
    """The key that shows a tab, as the main screen binds it."""
    from strongroom.console.screens.main import MainScreen

    (key,) = [b.key for b in MainScreen.BINDINGS if b.action == f"show_tab('{tab_id}')"]
    return key


def showing(app, screen_type) -> Callable[[], bool]:
    """The app shows a screen of `screen_type`, composed and mounted: pushing a screen
    and composing it are separate steps, and a query in between finds nothing."""
    return lambda: isinstance(app.screen, screen_type) and app.screen.is_mounted


async def wait_for(pilot, predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Let the app run until `predicate()` holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


async def settled(pilot, timeout: float = 20.0) -> None:
    """Every load the app started has finished and been drawn (the event worker, which
    runs for the app's life, aside): what a snapshot may be taken of. A fixed pause
    instead is a guess that a busy machine loses."""
    app = pilot.app
    await wait_for(pilot, lambda: all(w.is_finished for w in app.workers if w.group != "events"),
                   timeout, what="the screen's loads to finish")
    await pilot.wait_for_animation()     # none run (no_animations); cheap to be sure
    await pilot.pause()
    # The footer rebuilds itself after a refresh (remove every key, then mount the new
    # ones); a loaded machine caught it empty. Settled is two identical frames in a row.
    deadline = time.monotonic() + timeout
    frame = app.export_screenshot()
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        previous, frame = frame, app.export_screenshot()
        if frame == previous:
            return
    raise AssertionError(f"the screen did not settle within {timeout} s")


async def log_in(pilot, username: str = "auditor1", password: str = PASSWORD) -> None:
    await wait_for(pilot, lambda: pilot.app.screen.query("#username"), what="login form")
    await pilot.click("#username")
    await pilot.press(*username)
    await pilot.press("enter")          # moves to the password field
    await pilot.press(*password)
    await pilot.press("enter")


def drive(scenario, timeout: float = 90.0) -> None:
    """Run one async Pilot scenario to the end, or fail after `timeout` seconds (there is
    no async pytest plugin here, and every test must be bounded)."""
    asyncio.run(asyncio.wait_for(scenario(), timeout))


def in_thread(fn, *args):
    """Blocking helpers (DaemonProcess.call, starting daemons) off the app's loop."""
    return asyncio.to_thread(fn, *args)
