"""The practice's encryption level on the Compliance tab (`e`) against a real strongroomd
on both engines: the level in force, met or not, with each requirement's evidence; a
level the configuration cannot meet chosen, confirmed, and refused in the daemon's words
naming what is missing, with nothing changed; a level it meets put in force; and a user
who may read compliance but not manage keys sees the choice disabled with the reason."""
from __future__ import annotations

import pytest
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.encryption import EncryptionScreen, LevelScreen
from strongroom.console.tabs.compliance import ComplianceTab
from textual.widgets import OptionList, Static

from tests.console.tui.conftest import drive, in_thread, showing, tab_keys, wait_for
from tests.console.tui.live import at_main_screen, main_screen, settle
from tests.daemon.conftest import LOCKED, login, make_data_dir, running_daemon


def _drawn(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def _open_level(pilot, app) -> EncryptionScreen:
    await main_screen(pilot)
    await pilot.press(*tab_keys("compliance"))
    tab = app.screen.query_one("#compliance", ComplianceTab)
    await wait_for(pilot, lambda: "Encryption level standard: met (2/2 requirements)" in _drawn(tab, "#encryption-level"),
                   what="the level on the tab")
    await pilot.press("e")
    await wait_for(pilot, showing(app, EncryptionScreen), what="the encryption level")
    screen = app.screen
    await wait_for(pilot, lambda: bool(screen.status), what="the level loaded")
    return screen


async def _choose(pilot, app, level: str) -> str:
    """c, pick `level`, and answer the confirmation yes; returns what it said."""
    await pilot.press("c")
    await wait_for(pilot, showing(app, LevelScreen), what="the level picker")
    options = app.screen.query_one("#levels", OptionList)
    assert options.get_option("standard").disabled and "in force" in str(options.get_option("standard").prompt)
    options.highlighted = options.get_option_index(level)
    await pilot.press("enter")
    await wait_for(pilot, showing(app, ConfirmScreen), what="the confirmation")
    said = _drawn(app.screen, "#consequence")
    await pilot.press("y")
    return said


def test_the_level_is_shown_with_evidence_and_one_not_met_is_refused_with_its_reason(demo_daemon):
    drive(lambda: _refused(demo_daemon), timeout=120)


async def _refused(daemon):
    async with at_main_screen(daemon) as (app, pilot):
        screen = await _open_level(pilot, app)
        assert _drawn(screen, "#encryption-summary").startswith("Encryption level standard: met")
        shown = _drawn(screen, "#encryption-requirements")
        assert "[✓] standard: each client's records sealed with AES-256-GCM under a data key of their own" in shown
        assert "evidence: cipher: AES-256-GCM; live_clients_with_keys: 12; keys_shared_by_several_clients: 0" in shown
        assert "kek_file_mode: 0600" in shown
        assert _drawn(screen, "#encryption-note").startswith("c choose another level")

        said = await _choose(pilot, app, "high")
        assert "Level high requires all of standard, plus:" in said
        assert "• backups kept on an immutable copy (S3 Object Lock) (NOT met now)" in said
        await wait_for(pilot, showing(app, EncryptionScreen), what="back on the level")
        error = screen.query_one("#encryption-error", Static)
        await wait_for(pilot, lambda: "Refused" in str(error.render()), what="the refusal")
        refusal = str(error.render())
        assert refusal.startswith("Refused: encryption level high is not met by this configuration")
        assert "immutable copy (S3 Object Lock)" in refusal and "object_lock_days" in refusal
        assert _drawn(screen, "#encryption-summary").startswith("Encryption level standard: met")
        assert (await in_thread(daemon.call, "practice.encryption.show"))["level"] == "standard"
        await settle(pilot)


@pytest.fixture
def locked_daemon(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra=LOCKED)
    with running_daemon(data_dir, tmp_path) as proc:
        yield proc


def test_a_level_the_configuration_meets_is_put_in_force_and_shown(locked_daemon):
    drive(lambda: _put(locked_daemon), timeout=120)
    assert locked_daemon.call("practice.encryption.show")["level"] == "high"


async def _put(daemon):
    async with at_main_screen(daemon) as (app, pilot):
        screen = await _open_level(pilot, app)
        said = await _choose(pilot, app, "high")
        assert "(NOT met now)" not in said
        await wait_for(pilot, lambda: _drawn(screen, "#encryption-summary").startswith("Encryption level high: met"),
                       what="high in force")
        assert "vault s3 object lock 30 days" in _drawn(screen, "#encryption-requirements")
        assert _drawn(screen, "#encryption-error") == ""
        await pilot.press("escape")
        tab = app.screen.query_one("#compliance", ComplianceTab)
        await wait_for(pilot, lambda: "Encryption level high: met (4/4 requirements)" in _drawn(tab, "#encryption-level"),
                       what="the tab showing high")
        await settle(pilot)


def test_an_auditor_reads_the_level_but_choosing_another_is_disabled_with_the_reason(demo_daemon):
    drive(lambda: _auditor(demo_daemon), timeout=90)


async def _auditor(daemon):
    token = await in_thread(login, daemon, "auditor1")
    async with at_main_screen(daemon, token=token) as (app, pilot):
        screen = await _open_level(pilot, app)
        assert screen.active_bindings["c"].enabled is False
        assert _drawn(screen, "#encryption-note").startswith(
            "Choosing another level disabled: user:auditor1 lacks keys:manage")
        await pilot.press("c")
        await pilot.pause(0.3)
        assert app.screen is screen
        await settle(pilot)
