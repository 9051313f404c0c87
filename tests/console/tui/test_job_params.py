"""A job's "run with options" form is built from the params schema the daemon publishes
(console/helpers/job_params.py, over core.jobs.kinds' models): every param a person may
give becomes a field, typed values are turned into the param's type or refused naming
the field, and on the Jobs tab (`o`) the daemon's own refusal lands under the field."""
from __future__ import annotations

import pytest
from strongroom.console.helpers.job_params import form_fields, params_from
from strongroom.console.modals.form import FormScreen
from strongroom.console.screens.main import MainScreen
from strongroom.core.jobs.kinds import KINDS
from textual.widgets import Input, Static

from tests.console.tui.conftest import SIZE, drive, in_thread, showing, tab_keys, wait_for
from tests.console.tui.live import choose_kind, console


def schema(kind: str) -> dict:
    return KINDS[kind].describe()["params"]


def test_every_param_a_person_may_give_is_a_field_labelled_with_its_title_and_hint():
    fields = {f: (label, hint) for f, label, hint in form_fields(schema("integrity"))}
    assert list(fields) == ["full", "remove_orphans", "checks"]
    assert fields["full"][0] == "Full (optional)" and fields["full"][1].startswith("yes or no (default no) · ")
    assert fields["checks"][1].startswith("comma-separated: audit_chain, row_checksums")
    limit = dict((f, hint) for f, _, hint in form_fields(schema("files_rescan")))["limit"]
    assert limit.startswith("whole number from 1 to 100000 (default 1000)")
    # What only the scheduler sets is not offered.
    assert "scheduled" not in {f for f, _, _ in form_fields(schema("sync"))}


@pytest.mark.parametrize("kind", sorted(k for k, v in KINDS.items() if not v.on_request_only and not v.planned))
def test_every_schedulable_kind_gets_a_form(kind):
    assert form_fields(schema(kind)), kind


def test_typed_values_become_the_params_types_and_empty_fields_keep_their_defaults():
    assert params_from(schema("integrity"), {"full": "Yes", "remove_orphans": "", "checks": "keys, envelopes"}) == {
        "full": True, "checks": ["keys", "envelopes"]}
    assert params_from(schema("files_rescan"), {"limit": " 25 "}) == {"limit": 25}
    assert params_from(schema("verify"), {"configuration": "offsite", "snapshot_id": "", "read_data": "no"}) == {
        "configuration": "offsite", "read_data": False}


@pytest.mark.parametrize("kind, values, message", [
    ("integrity", {"full": "perhaps"}, "full: must be yes or no"),
    ("files_rescan", {"limit": "lots"}, "limit: must be a whole number"),
])
def test_a_value_that_cannot_be_its_type_is_refused_naming_the_field_not_the_value(kind, values, message):
    with pytest.raises(ValueError) as refused:
        params_from(schema(kind), values)
    assert str(refused.value) == message


def test_the_jobs_tab_runs_a_job_with_options_and_shows_a_refusal_under_its_field(tui_daemon):
    drive(lambda: _with_options(tui_daemon), timeout=120)
    runs = tui_daemon.call("job.list", {"limit": 20})
    (run,) = [r for r in runs if r["job_kind"] == "files_rescan"]
    assert run["params"] == {"limit": 5} and run["requested_by"].startswith("local:")


async def _with_options(tui_daemon):
    app = console(tui_daemon, token=tui_daemon.local_token())
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity, what="identity")
        await pilot.press(*tab_keys("jobs"))
        await pilot.press("o")
        await choose_kind(pilot, "files_rescan")
        await wait_for(pilot, showing(app, FormScreen), what="the options form")
        form = app.screen
        limit = form.query_one("#limit", Input)
        assert "whole number from 1 to 100000" in limit.placeholder
        limit.value = "0"                              # the daemon's model says at least 1
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: str(form.query_one("#limit-error", Static).render()).startswith("↑ "),
                       what="the daemon's refusal under the field")
        assert "Refused" in str(form.query_one("#form-error", Static).render()) and form.is_attached
        assert limit.value == "0" and limit.has_class("-refused")
        assert not [r for r in await in_thread(tui_daemon.call, "job.list", {"limit": 20})
                    if r["job_kind"] == "files_rescan"]          # nothing started
        limit.value = "5"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen), what="the form closed")
        await wait_for(pilot, lambda: any(r["job_kind"] == "files_rescan" for r in app.screen.query_one(
            "#jobs").runs.values()), what="the run listed")
