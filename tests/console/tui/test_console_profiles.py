"""Security profiles on the Users tab (`s`) against a real strongroomd on both engines:
the selected account's settings shown with what is in force, whose it is and the
policy's bound; a stricter setting saved; a looser one refused in the daemon's words
with the form kept and nothing changed; a malformed one refused without repeating it;
and a user who may not manage accounts reads their own profile with editing disabled
and the reason shown."""
from __future__ import annotations

import pytest
from strongroom.console.modals.form import FormScreen
from strongroom.console.modals.profile import ProfileScreen, profile_changes
from strongroom.console.tabs.users import UsersTab
from textual.widgets import DataTable, Input, Static

from tests.console.tui.conftest import drive, in_thread, showing, wait_for
from tests.console.tui.live import at_main_screen, select_user, settle
from tests.daemon.conftest import add_admin, login


def _cells(screen: ProfileScreen) -> dict[str, tuple[str, ...]]:
    """The profile table as drawn: setting -> (in force, whose, bound)."""
    table = screen.query_one("#profile-table", DataTable)
    rows = [tuple(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
    return {row[0]: row[1:] for row in rows}


def _drawn(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def test_profile_changes_send_only_what_changed_and_never_repeat_a_bad_value():
    initial = {"session_idle_minutes": "", "max_sessions": "3", "storage_quota_mb": "", "rate_limits": "exports=5"}
    assert profile_changes("ann", initial, {**initial, "session_idle_minutes": "10", "max_sessions": ""}) == {
        "username": "ann", "session_idle_minutes": 10, "max_sessions": 0}
    assert profile_changes("ann", initial, {**initial, "rate_limits": "exports=2, backups=1"})["rate_limits"] == {
        "exports": 2, "backups": 1}
    assert profile_changes("ann", initial, {**initial, "rate_limits": ""})["rate_limits"] == {}
    for bad in ({"session_idle_minutes": "ten<b>"}, {"max_sessions": "-4"}, {"rate_limits": "exports:ten<b>"}):
        with pytest.raises(ValueError) as refused:
            profile_changes("ann", initial, {**initial, **bad})
        assert "ten" not in str(refused.value) and "-4" not in str(refused.value)
    with pytest.raises(ValueError, match="Nothing changed"):
        profile_changes("ann", initial, dict(initial))


def test_an_admin_tightens_a_profile_and_a_looser_setting_is_refused_unchanged(demo_daemon):
    secret = add_admin(demo_daemon.data_dir, "boss")
    token = login(demo_daemon, "boss", secret)
    drive(lambda: _edit(demo_daemon, token), timeout=120)
    shown = demo_daemon.call("user.profile.show", {"username": "clinician"})
    assert shown["own"]["session_idle_minutes"] == 10 and shown["effective"]["session_idle_minutes"] == 10
    assert shown["own"]["max_sessions"] is None and shown["own"]["rate_limits"] == {"exports": 4}


async def _open_profile(pilot, app) -> ProfileScreen:
    await pilot.press("s")
    await wait_for(pilot, showing(app, ProfileScreen), what="the profile")
    screen = app.screen
    await wait_for(pilot, lambda: bool(screen.profile) and screen.query_one("#profile-table", DataTable).row_count,
                   what="the profile loaded")
    return screen


async def _edit(daemon, token):
    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        await select_user(pilot, tab, "clinician")
        await wait_for(pilot, lambda: app.screen.active_bindings["s"].enabled, what="profile enabled")
        screen = await _open_profile(pilot, app)
        assert _drawn(screen, "#profile-title") == "Security profile of clinician"
        cells = _cells(screen)
        assert cells["Session idle timeout"] == ("30 min", "practice default", "≤ 30 min")
        assert cells["Concurrent sessions"] == ("5", "practice default", "≤ 5")
        assert cells["Rate limit: exports"] == ("30/h", "practice default", "≤ 30/h")
        assert cells["Two-factor"][0] == "no" and cells["Storage quota"][0] == "no limit"
        assert screen.active_bindings["e"].enabled and "e edit" in _drawn(screen, "#profile-note")

        await pilot.press("e")
        await wait_for(pilot, showing(app, FormScreen), what="the form")
        form = app.screen
        form.query_one("#session_idle_minutes", Input).value = "45"         # looser than the policy's 30
        form.query_one("#rate_limits", Input).value = "exports=4"
        await pilot.press("ctrl+s")
        error = form.query_one("#form-error", Static)
        await wait_for(pilot, lambda: "Refused" in str(error.render()), what="the refusal")
        refusal = str(error.render())
        assert "profile.session_idle_minutes" in refusal and "never looser" in refusal and "45" not in refusal
        assert app.screen is form and form.query_one("#rate_limits", Input).value == "exports=4"
        unchanged = await in_thread(daemon.call, "user.profile.show", {"username": "clinician"})
        assert unchanged["own"] == {"session_idle_minutes": None, "max_sessions": None, "rate_limits": None,
                                    "storage_quota_mb": None} and unchanged["updated_at"] is None

        form.query_one("#session_idle_minutes", Input).value = "ten"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "whole number" in str(error.render()), what="the malformed value refused")
        assert "ten" not in str(error.render())

        form.query_one("#session_idle_minutes", Input).value = "10"         # stricter: accepted
        await pilot.press("ctrl+s")
        await wait_for(pilot, showing(app, ProfileScreen), what="back on the profile")
        await wait_for(pilot, lambda: _cells(screen)["Session idle timeout"][0] == "10 min", what="the new timeout")
        cells = _cells(screen)
        assert cells["Session idle timeout"] == ("10 min", "own setting", "≤ 30 min")
        assert cells["Rate limit: exports"] == ("4/h", "own setting", "≤ 30/h")
        assert "by user:boss" in _drawn(screen, "#profile-summary")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ProfileScreen), what="closed")
        await settle(pilot)


def test_a_user_without_user_manage_reads_their_own_profile_with_editing_disabled(demo_daemon):
    drive(lambda: _own(demo_daemon), timeout=90)


async def _own(daemon):
    token = await in_thread(login, daemon, "auditor1")       # auditor: no user:manage, so no list
    async with at_main_screen(daemon, token=token, tab="users") as (app, pilot):
        tab = app.screen.query_one("#users", UsersTab)
        note = tab.query_one("#users-note", Static)
        await wait_for(pilot, lambda: "User list hidden" in str(note.render()), what="the list hidden")
        assert "s: your own security profile" in str(note.render())
        assert app.screen.active_bindings["s"].enabled and not app.screen.active_bindings["l"].enabled
        screen = await _open_profile(pilot, app)
        assert _drawn(screen, "#profile-title") == "Security profile of auditor1"
        assert _cells(screen)["Session idle timeout"] == ("30 min", "practice default", "≤ 30 min")
        assert screen.active_bindings["e"].enabled is False
        assert _drawn(screen, "#profile-note").startswith("Editing disabled: user:auditor1 lacks user:manage")
        await pilot.press("e")                                  # disabled: nothing opens
        await pilot.pause(0.3)
        assert app.screen is screen
        await settle(pilot)
