"""Users: the role picker lists every role once, by one name, grouped, with what it is
for; roles beyond the caller's permissions are disabled; a change reaches the daemon."""
from __future__ import annotations

from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.role_picker import RoleScreen
from strongroom.console.tabs.users import UsersTab
from textual.widgets import DataTable, OptionList

from tests.console.tui.conftest import SIZE, drive, showing, wait_for
from tests.console.tui.live import (accept_invitation, admin_token, at_main_screen, console, invitation_taken_down,
                                    new_user_form, select_user, settle)


def test_practice_admin_picks_a_role_within_their_own_permissions(demo_daemon):
    token = admin_token(demo_daemon)
    drive(lambda: _pick_role(demo_daemon, token))
    clinician = next(u for u in demo_daemon.call("user.list") if u["username"] == "clinician")
    assert clinician["role"] == "MANAGER"


async def _pick_role(daemon, token):
    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        await select_user(pilot, tab, "clinician")
        table = tab.query_one("#users-table", DataTable)
        row = next(k for k, u in tab.users.items() if u["username"] == "clinician")
        assert str(table.get_cell(row, "role")) == "practitioner"
        await wait_for(pilot, lambda: app.screen.active_bindings["o"].enabled, what="role change enabled")
        await pilot.press("o")
        await wait_for(pilot, showing(app, RoleScreen), what="role picker")
        options = app.screen.query_one("#roles", OptionList)
        lines = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        names = [line.split("  ")[0].strip() for line in lines if not line.startswith("—")]
        assert len(names) == len(set(n.lower() for n in names)) == 7       # one spelling per role
        assert "practice admin" in names and "operator admin" in names
        assert "ADMIN" not in " ".join(lines) and not any(n == "admin" for n in names)
        assert lines.index("— practice roles —") == 0 and "— operator roles —" in lines
        by_id = {options.get_option_at_index(i).id: options.get_option_at_index(i)
                 for i in range(options.option_count)}
        assert by_id["PRACTITIONER"].disabled and "(current)" in str(by_id["PRACTITIONER"].prompt)
        assert by_id["admin"].disabled and "beyond your permissions" in str(by_id["admin"].prompt)
        assert not by_id["MANAGER"].disabled
        options.highlighted = options.get_option_index("MANAGER")
        await pilot.press("enter")
        await wait_for(pilot, showing(app, ConfirmScreen), what="confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: str(table.get_cell(row, "role")) == "manager", what="manager shown")
        await settle(pilot)


def test_an_admin_adds_a_user_who_sets_their_own_password_at_the_login_screen(demo_daemon):
    """Users `a`: the role (within the admin's own permissions), then who; a taken name is
    refused in the form with everything kept; the invitation is shown once. The person
    takes it up with F2 at the login screen and a password of their own, and is in."""
    token = admin_token(demo_daemon)
    made: dict = {}
    drive(lambda: _add_user(demo_daemon, token, made))
    drive(lambda: _first_login(demo_daemon, made["invitation"]))
    newhire = next(u for u in demo_daemon.call("user.list") if u["username"] == "newhire")
    assert newhire["role"] == "STAFF" and newhire["full_name"] == "New Hire" and newhire["last_login_at"]


async def _add_user(daemon, token, made: dict):
    from textual.widgets import Input, Static

    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        options = await new_user_form(pilot, app, tab, "STAFF")
        assert options.get_option("admin").disabled                  # beyond a practice admin
        form = app.screen
        form.query_one("#username", Input).value = "clinician"       # taken: refused, form kept
        form.query_one("#full_name", Input).value = "New Hire"
        await pilot.press("ctrl+s")
        error = form.query_one("#form-error", Static)
        await wait_for(pilot, lambda: "already exists" in str(error.render()), what="the refusal")
        assert app.screen is form and form.query_one("#full_name", Input).value == "New Hire"
        form.query_one("#username", Input).value = "newhire"
        await pilot.press("ctrl+s")
        made.update(await invitation_taken_down(pilot, app, tab, "newhire"))
        await settle(pilot)


async def _first_login(daemon, invitation):
    from strongroom.console.screens.main import MainScreen
    from textual.widgets import Input, Static

    app = console(daemon)
    async with app.run_test(size=SIZE) as pilot:
        screen = await accept_invitation(pilot, app, invitation, "my own passphrase 123",
                                         repeat="my own passphrase 124")
        assert "differ" in str(screen.query_one("#accept-message", Static).render())
        screen.query_one("#accept-repeat", Input).value = "my own passphrase 123"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="logged in")
        assert app.screen.identity.actor == "user:newhire"
        await settle(pilot)
