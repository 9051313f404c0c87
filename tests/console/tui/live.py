"""Helpers for console tests against a real strongroomd (tests.daemon.conftest runs it):
the console app for a daemon, opened at its main screen (as the local operator, with a
session token, or logged in through the form) on a tab, an administrator's session,
waits for the main screen, for its reloads to finish, for a user row to be selected and
for the practice screen to open, the one way a test picks from a RunJobScreen (the
job chooser, and the choices of one thing it is reused for: a peer, a survivor, a table),
and the two halves of adding a person: the Users tab's new user form for a role, then
the invitation taken up at the login screen (F2)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pyotp

from strongroom.console.app import StrongroomConsole
from strongroom.console.modals.practice import PracticeScreen
from strongroom.console.modals.run_job import RunJobScreen
from strongroom.console.screens.main import MainScreen
from strongroom.console.tabs.users import UsersTab
from textual.widgets import DataTable, OptionList

from tests.console.tui.conftest import SIZE, log_in, showing, tab_keys, wait_for
from tests.daemon.conftest import PASSWORD, add_admin

LOCAL = "local"     # at_main_screen's default: the local operator's token


def console(daemon, token=None) -> StrongroomConsole:
    return StrongroomConsole(daemon.endpoint, daemon.events_endpoint, token=token)


def token_for(daemon, username: str, totp_secret: str | None = None) -> str:
    """A session of an existing user (their password, and a TOTP code when they have
    enrolled), made through the daemon's own `auth.login`."""
    totp = pyotp.TOTP(totp_secret).now() if totp_secret else None
    return daemon.call("auth.login", {"username": username, "password": PASSWORD, "totp": totp},
                       token=None)["token"]


def admin_token(daemon, username: str = "boss") -> str:
    """A session of a new practice administrator (password and TOTP code), for tests of
    what only an administrator may do."""
    secret = add_admin(daemon.data_dir, username)
    return daemon.call("auth.login", {"username": username, "password": PASSWORD,
                                      "totp": pyotp.TOTP(secret).now()}, token=None)["token"]


@asynccontextmanager
async def at_main_screen(daemon, *, token: str | None = LOCAL, user: str | None = None, tab: str | None = None,
                         size: tuple[int, int] = SIZE) -> AsyncIterator[tuple[StrongroomConsole, object]]:
    """The console on `daemon`, run under Pilot at `size` and shown at its main screen:
    with `token` (by default the local operator's), or logged in through the login form
    as `user`; then on `tab`, by its key, when one is named. Yields (app, pilot)."""
    if user is not None:
        token = None
    elif token == LOCAL:
        token = daemon.local_token()
    app = console(daemon, token=token)
    async with app.run_test(size=size) as pilot:
        if user is not None:
            await log_in(pilot, user)
        await main_screen(pilot)
        if tab is not None:
            await pilot.press(*tab_keys(tab))
        yield app, pilot


async def main_screen(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="identity")


async def open_tab(pilot, tab_id: str, ready: Callable[[Any], object] | None = None) -> Any:
    """Show the tab `tab_id` by its key, once the main screen knows who is logged in, and
    return it when it knows the caller too and `ready(tab)` holds (its first load)."""
    app = pilot.app
    await main_screen(pilot)
    await pilot.press(*tab_keys(tab_id))
    await wait_for(pilot, lambda: app.screen.query(f"#{tab_id}"), what=f"the {tab_id} tab")
    tab = app.screen.query_one(f"#{tab_id}")
    await wait_for(pilot, lambda: tab.identity is not None and (ready is None or ready(tab)),
                   what=f"the {tab_id} tab loaded")
    return tab


async def settle(pilot) -> None:
    """Let the reloads that a finished job or a change started complete before the app
    closes: a worker still awaiting the daemon when the screen is torn down fails the
    test (the event watcher never ends, so it is left out)."""
    await wait_for(pilot, lambda: not [w for w in pilot.app.workers
                                       if w.is_running and w.name != "watch_daemon"], what="reloads finished")


async def select_user(pilot, tab: UsersTab, username: str) -> None:
    await wait_for(pilot, lambda: any(u["username"] == username for u in tab.users.values()), what=f"{username} listed")
    table = tab.query_one("#users-table", DataTable)
    user_id = next(k for k, u in tab.users.items() if u["username"] == username)
    table.move_cursor(row=table.get_row_index(user_id))
    await wait_for(pilot, lambda: (tab.selected() or {}).get("username") == username, what=f"{username} selected")


async def new_user_form(pilot, app, tab: UsersTab, role: str) -> OptionList:
    """Users `a`, then `role` chosen in the role picker: the new user form is shown.
    Returns the picker's options as they were offered, to assert on."""
    from strongroom.console.modals.form import FormScreen
    from strongroom.console.modals.role_picker import RoleScreen
    await wait_for(pilot, lambda: tab.users and app.screen.active_bindings["a"].enabled, what="add enabled")
    await pilot.press("a")
    await wait_for(pilot, showing(app, RoleScreen), what="the role picker")
    options = app.screen.query_one("#roles", OptionList)
    assert not options.get_option(role).disabled
    options.highlighted = options.get_option_index(role)
    await pilot.press("enter")
    await wait_for(pilot, showing(app, FormScreen), what="the new user form")
    return options


async def invitation_taken_down(pilot, app, tab: UsersTab, username: str) -> dict:
    """After the new user form was saved: the invitation shown once (its token on screen),
    closed, and the account listed. Returns what was made (the invitation among it)."""
    from strongroom.console.modals.invitation import InvitationShownScreen
    from textual.widgets import Static
    await wait_for(pilot, showing(app, InvitationShownScreen), what="the invitation")
    made = dict(app.screen.made)
    assert made["invitation"] in str(app.screen.query_one("#invitation-token", Static).render())
    await pilot.press("escape")
    await wait_for(pilot, lambda: any(u["username"] == username for u in tab.users.values()),
                   what="the new account listed")
    return made


async def accept_invitation(pilot, app, invitation: str, password: str, repeat: str | None = None) -> Any:
    """At the login screen: F2, the invitation and a password of one's own (typed again
    as `repeat`, by default the same), saved. Returns the invitation form."""
    from strongroom.console.modals.invitation import AcceptInvitationScreen
    from textual.widgets import Input
    await wait_for(pilot, lambda: app.screen.query("#username"), what="the login form")
    await pilot.press("f2")
    await wait_for(pilot, showing(app, AcceptInvitationScreen), what="the invitation form")
    screen = app.screen
    screen.query_one("#accept-invitation", Input).value = invitation
    screen.query_one("#accept-password", Input).value = password
    screen.query_one("#accept-repeat", Input).value = password if repeat is None else repeat
    await pilot.press("ctrl+s")
    return screen


async def open_practice(pilot, app) -> PracticeScreen:
    """The practice screen (Users tab, `p`), once its details have loaded."""
    await wait_for(pilot, lambda: getattr(app.screen, "identity", None), what="identity")
    await pilot.press(*tab_keys("users"))
    await wait_for(pilot, lambda: app.screen.query_one("#users", UsersTab).identity is not None, what="users tab")
    await pilot.press("p")
    await wait_for(pilot, showing(app, PracticeScreen), what="practice screen")
    screen = app.screen
    await wait_for(pilot, lambda: bool(screen.practice), what="practice loaded")
    return screen


async def open_for_client(pilot, app, key: str, screen_type: type, what: str, search: str = "quillfeather"):
    """The practice screen's per-client view that `key` opens (`b` appointments, `f`
    files): the client found by `search` in the client picker (one match), the view
    shown and loaded."""
    from strongroom.console.modals.client_picker import ClientPickerScreen

    await open_practice(pilot, app)
    await pilot.press(key)
    await wait_for(pilot, showing(app, ClientPickerScreen), what="client picker")
    picker = app.screen
    await pilot.press(*search, "enter")
    results = picker.query_one("#picker-results", OptionList)
    await wait_for(pilot, lambda: results.option_count == 1 and results.has_focus, what="one match")
    await pilot.press("enter")
    await wait_for(pilot, showing(app, screen_type), what=what)
    screen = app.screen
    await wait_for(pilot, lambda: screen.loaded, what=f"{what} loaded")
    return screen


async def choices(pilot, what: str = "the job chooser") -> OptionList:
    """The options of the RunJobScreen just opened, once it is shown, to assert on
    before choosing one (what is offered, what is disabled and why)."""
    await wait_for(pilot, showing(pilot.app, RunJobScreen), what=what)
    return pilot.app.screen.query_one(OptionList)


async def choose_kind(pilot, kind: str, what: str = "the job chooser") -> None:
    """Choose the option `kind` (a job kind, or the id of a peer, client or table) of the
    RunJobScreen just opened, by keyboard: highlighted, then enter."""
    options = await choices(pilot, what)
    options.highlighted = options.get_option_index(kind)
    await pilot.press("enter")
