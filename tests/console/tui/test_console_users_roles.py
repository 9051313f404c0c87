"""Users: the role picker lists every role once, by one name, grouped, with what it is
for; roles beyond the caller's permissions are disabled; a change reaches the daemon."""
from __future__ import annotations

import pyotp
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.role_picker import RoleScreen
from strongroom.console.tabs.users import UsersTab
from textual.widgets import DataTable, OptionList

from tests.console.tui.conftest import SIZE, drive, showing, tab_keys, wait_for
from tests.console.tui.live import console, main_screen, select_user, settle
from tests.daemon.conftest import PASSWORD, add_admin


def test_practice_admin_picks_a_role_within_their_own_permissions(demo_daemon):
    secret = add_admin(demo_daemon.data_dir, "boss")
    token = demo_daemon.call("auth.login", {"username": "boss", "password": PASSWORD,
                                            "totp": pyotp.TOTP(secret).now()}, token=None)["token"]
    drive(lambda: _pick_role(demo_daemon, token))
    clinician = next(u for u in demo_daemon.call("user.list") if u["username"] == "clinician")
    assert clinician["role"] == "MANAGER"


async def _pick_role(daemon, token):
    app = console(daemon, token=token)
    async with app.run_test(size=SIZE) as pilot:
        await main_screen(pilot)
        await pilot.press(*tab_keys("users"))
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
