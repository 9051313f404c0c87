"""Choose an account's new role (`o` on the Users tab)."""
from __future__ import annotations

from strongroom.console.widgets.plain import Plain
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class RoleScreen(ModalScreen[str | None]):
    """Choose a role from the daemon's `roles.list`: one line per role, by its one name,
    grouped practice / operator, saying what it is for. The current role, and any role
    holding a permission the caller lacks (the daemon would refuse it), are listed
    disabled with the reason."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, username: str, current: str, roles: list[dict]) -> None:
        super().__init__()
        self.username = username
        self.current = current
        self.roles = roles

    def compose(self) -> ComposeResult:
        options: list = []
        for scope in ("practice", "operator"):
            options.append(Option(f"— {scope} roles —", disabled=True))
            for role in (r for r in self.roles if r["scope"] == scope):
                why = (" (current)" if role["role"] == self.current
                       else "" if role["assignable"] else " (beyond your permissions)")
                options.append(Option(f"{role['name']:<15} {role['summary']}{why}", id=role["role"],
                                      disabled=bool(why)))
        with Vertical(classes="dialog"):
            yield Plain(f"New role for {self.username}", classes="dialog-title")
            yield OptionList(*options, id="roles", markup=False)
            yield Plain("enter: choose · esc: close", classes="hint")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
