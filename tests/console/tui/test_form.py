"""The small modal form (console/modals/form.py): a refusal that names one of its fields
is shown right under that field, its input marked and focused, with everything typed
kept; a required field left empty is marked the same way; a refusal naming no field
stays in the line under the form. No daemon: `send` answers as the daemon would."""
from __future__ import annotations

import pytest
from strongroom.console.modals.form import FormScreen, named_field
from textual.app import App
from textual.widgets import Input, Static

from tests.console.tui.conftest import drive, wait_for

FIELDS = (("name", "Name", ""), ("price_cents", "Price in cents", ""), ("notes", "Notes (optional)", ""))


def drawn(screen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


@pytest.mark.parametrize("refusal, named", [
    ("Refused: price_cents: must be at least 0", ("price_cents", "must be at least 0")),
    ("price_cents (the price): must be at least 0", ("price_cents", "must be at least 0")),
    ("Refused: filters.name: too long", ("name", "too long")),
    ("Refused: the service is retired", None),
    ("Refused: unit_price_cents: must be at least 0", None),       # a longer name is not this field
])
def test_a_refusal_names_a_field_the_daemons_way_or_none(refusal, named):
    assert named_field(refusal, [f for f, _, _ in FIELDS]) == named


def _form(answers: list[str | None], sent: list[dict]) -> FormScreen:
    async def send(values: dict) -> str | None:
        sent.append(values)
        return answers.pop(0)
    return FormScreen("New service", "Name and price.", FIELDS, send=send)


def test_the_daemons_refusal_is_shown_under_the_field_it_names_and_the_values_stay():
    sent: list[dict] = []

    async def scenario():
        app = App()
        async with app.run_test(size=(100, 40)) as pilot:
            form = _form(["Refused: price_cents: must be at least 0", None], sent)
            closed: list = []
            app.push_screen(form, closed.append)
            await pilot.pause()
            await pilot.press(*"Intake", "enter", *"-5", "enter", "enter")
            await wait_for(pilot, lambda: drawn(form, "#price_cents-error") == "↑ must be at least 0",
                           what="the reason under the price")
            assert drawn(form, "#form-error") == "Refused: price_cents: must be at least 0"
            price = form.query_one("#price_cents", Input)
            assert price.has_class("-refused") and price.has_focus and price.value == "-5"
            assert form.query_one("#name", Input).value == "Intake"
            assert drawn(form, "#name-error") == "" and not form.query_one("#name", Input).has_class("-refused")
            price.value = "9000"
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: closed, what="the form closed once accepted")
            assert closed == [{"name": "Intake", "price_cents": "9000", "notes": ""}]
    drive(scenario)
    assert [v["price_cents"] for v in sent] == ["-5", "9000"]


def test_a_required_field_left_empty_is_marked_and_nothing_is_sent():
    sent: list[dict] = []

    async def scenario():
        app = App()
        async with app.run_test(size=(100, 40)) as pilot:
            form = _form([], sent)
            app.push_screen(form)
            await pilot.pause()
            await pilot.press(*"Intake", "ctrl+s")
            await wait_for(pilot, lambda: drawn(form, "#price_cents-error") == "↑ required", what="the mark")
            assert drawn(form, "#form-error") == "Required: Price in cents"
            assert drawn(form, "#notes-error") == ""                       # optional: never required
            assert form.query_one("#price_cents", Input).has_focus
    drive(scenario)
    assert sent == []


def test_a_refusal_naming_no_field_stays_under_the_form_and_clears_old_marks():
    sent: list[dict] = []

    async def scenario():
        app = App()
        async with app.run_test(size=(100, 40)) as pilot:
            form = _form(["Refused: price_cents: must be at least 0", "Refused: the service is retired"], sent)
            app.push_screen(form)
            await pilot.pause()
            await pilot.press(*"Intake", "enter", *"-5", "ctrl+s")
            await wait_for(pilot, lambda: drawn(form, "#price_cents-error"), what="the first refusal")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: drawn(form, "#form-error") == "Refused: the service is retired",
                           what="the second refusal")
            assert drawn(form, "#price_cents-error") == ""
            assert not form.query_one("#price_cents", Input).has_class("-refused")
    drive(scenario)
    assert len(sent) == 2
