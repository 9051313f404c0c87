"""The console shows what the daemon sends as it is: a name, label or refusal holding
something that looks like markup ("Intake [/x]", "[red]Ann") is drawn character for
character and never raises MarkupError (which took the console down)."""
from __future__ import annotations

import ast
from pathlib import Path

from strongroom.console.app import StrongroomConsole
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen
from strongroom.console.modals.typed_confirm import TypedConfirmScreen
from strongroom.console.widgets.plain import Plain
from textual.app import App
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from tests.console.tui.conftest import drive

CONSOLE = Path(__file__).resolve().parents[3] / "console"
TRICKY = "Intake [/x] for [red]Ann[/red] [b]"


def drawn(widget: Static) -> str:
    return str(widget.render())


class Host(App):
    pass


def test_a_confirmation_shows_names_that_look_like_markup_as_they_are():
    async def scenario():
        app = Host()
        async with app.run_test(size=(100, 30)) as pilot:
            app.push_screen(ConfirmScreen(f"Delete {TRICKY}?", f"The file {TRICKY} goes."))
            await pilot.pause()
            assert drawn(app.screen.query_one("#consequence", Static)) == f"The file {TRICKY} goes."
            assert drawn(app.screen.query_one(".dialog-title", Static)) == f"Delete {TRICKY}?"
    drive(scenario)


def test_a_typed_confirmation_and_a_form_show_data_and_refusals_as_they_are():
    async def scenario():
        app = Host()
        async with app.run_test(size=(100, 30)) as pilot:
            async def refuse(values):
                return f"refused: no snapshot named {TRICKY}"
            app.push_screen(TypedConfirmScreen(f"Restore {TRICKY}", f"Replaces {TRICKY}.", "restore",
                                               yes="Restore", send=refuse))
            await pilot.pause()
            assert drawn(app.screen.query_one("#consequence", Static)) == f"Replaces {TRICKY}."
            await pilot.press(*"restore", "enter")
            await pilot.pause(0.2)
            assert drawn(app.screen.query_one("#typed-error", Static)) == f"refused: no snapshot named {TRICKY}"
            assert "[b]" not in drawn(app.screen.query_one("#typed-prompt", Static))   # its own markup still works
            app.pop_screen()
            app.push_screen(FormScreen(f"Rename {TRICKY}", f"Was {TRICKY}.", (("name", "Name", ""),)))
            await pilot.pause()
            assert drawn(app.screen.query_one("#form-explanation", Static)) == f"Was {TRICKY}."
    drive(scenario)


def test_notifications_carry_the_daemons_words_as_they_are():
    async def scenario():
        app = StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", client=_Offline())
        async with app.run_test(size=(100, 30)) as pilot:
            app.screen.notify(f"Could not delete {TRICKY}", severity="error")
            await pilot.pause()
            (toast,) = [n for n in app._notifications if "Could not delete" in n.message]
            assert not toast.markup
    drive(scenario)


def test_option_lists_of_names_show_them_as_they_are():
    async def scenario():
        app = Host()
        async with app.run_test(size=(100, 30)) as pilot:
            from strongroom.console.modals.client_picker import ClientPickerScreen
            app.push_screen(ClientPickerScreen())
            await pilot.pause()
            results = app.screen.query_one("#picker-results", OptionList)
            results.add_option(Option(TRICKY, id="c1"))      # a client named so must not crash it
            await pilot.pause()
            lines = [results.render_line(y).text for y in range(results.size.height)]
            assert any(TRICKY in line for line in lines), lines
    drive(scenario)


def test_every_text_widget_of_the_console_is_plain_unless_it_asks_for_markup():
    """Static, Label and OptionList read their text as markup by default; the console's
    text comes from the daemon, so each is built as Plain/PlainLabel or with markup=False,
    and one that wants markup says markup=True (and escapes what it puts in)."""
    offenders = []
    for path in sorted(CONSOLE.rglob("*.py")):
        if "cli" in path.relative_to(CONSOLE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("Static", "Label", "OptionList") \
                    and not any(k.arg == "markup" for k in node.keywords):
                offenders.append(f"{path.relative_to(CONSOLE)}:{node.lineno} {node.func.id}(...)")
    assert offenders == [], "use Plain/PlainLabel or pass markup=False:\n" + "\n".join(offenders)
    assert issubclass(Plain, Static)


class _Offline:
    """A client that is never reached: the test only shows a notification."""

    token = None
    events = None

    def close(self) -> None:
        pass
