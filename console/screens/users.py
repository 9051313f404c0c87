"""Users, read-only: role, second factor, lock state and last login (users.list)."""
from __future__ import annotations

from strongroom.console.client import ClientError
from strongroom.console.screens.identity import Identity
from strongroom.console.screens.text import when
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

COLUMNS = (("User", "user"), ("Role", "role"), ("2FA", "totp"), ("State", "state"), ("Last login", "last"))


def user_state(user: dict) -> str:
    if user.get("disabled"):
        return "disabled"
    if user.get("locked_until"):
        return f"locked until {when(user['locked_until'])}"
    return f"ok ({user['failed_logins']} failed)" if user.get("failed_logins") else "ok"


class UsersTab(Vertical):
    BINDINGS = [Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.identity: Identity | None = None

    def compose(self) -> ComposeResult:
        yield DataTable(id="users-table", cursor_type="row", zebra_stripes=True)
        yield Static("Read-only here; manage accounts with `strongroom user …`.", id="users-note", classes="muted")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    def set_identity(self, identity: Identity, status: dict) -> None:
        self.identity = identity
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="users")
    async def load(self) -> None:
        reason = self.identity.why_not("user:manage")
        if reason:
            self.query_one("#users-note", Static).update(f"User list hidden: {reason}")
            return
        try:
            users = await self.app.call("users.list")
        except ClientError as err:
            self.notify(f"Users: {err.message}", severity="error")
            return
        table = self.query_one(DataTable)
        table.clear()
        for user in users:
            table.add_row(user["username"], user["role"], "yes" if user.get("totp_enabled") else "no",
                          user_state(user), when(user.get("last_login_at")), key=user["id"])
