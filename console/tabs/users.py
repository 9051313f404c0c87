"""Users: accounts (users.list) and the selected account's permission grants (user.grants).

Actions, all needing user:manage: lock (l), unlock (u), reset 2FA (f), change role (o),
grant a permission for a limited time (g), revoke the selected grant (x). `p` opens the
practice's details, staff and services (console/modals/practice.py); `s` the security
profile (console/modals/profile.py) of the selected account, or, for a user who may not
manage accounts (and so sees no list), their own, which anyone may read. Destructive
ones confirm first, saying what will happen. An action the user may not take is shown
disabled, and the note under the table says why (no permission, or: it is your own
account). The daemon enforces every rule again (the last administrator, grants beyond
one's own) and its refusal is shown in its words.
"""
from __future__ import annotations

from strongroom.console.helpers.text import when
from strongroom.console.helpers.workers import ask, tab_work
from strongroom.console.modals.confirm import ConfirmScreen
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.modals.invitation import InvitationShownScreen
from strongroom.console.modals.role_picker import RoleScreen
from strongroom.console.tabs.base import Tab
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain, PlainLabel
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label, Static

COLUMNS = (("User", "user"), ("Role", "role"), ("2FA", "totp"), ("State", "state"), ("Last login", "last"))
GRANT_COLUMNS = (("Permission", "permission"), ("State", "state"), ("Until", "until"), ("By", "by"),
                 ("Reason", "reason"))
MANAGE = "user:manage"
PRACTICE = "table:practices:read"      # the practice screen (p): its details, staff and services
USER_ACTIONS = ("lock", "unlock", "reset_2fa", "change_role", "grant")


def user_state(user: dict) -> str:
    if user.get("disabled"):
        return "disabled"
    if user.get("locked_until"):
        if user["locked_until"].startswith("9999"):
            return "locked"
        return f"locked until {when(user['locked_until'])}"
    return f"ok ({user['failed_logins']} failed)" if user.get("failed_logins") else "ok"


def grant_state(grant: dict) -> str:
    if grant.get("revoked_at"):
        return "revoked"
    return "active" if grant.get("active") else "expired"


class UsersTab(Tab, Vertical):
    BINDINGS = [Binding("a", "add_user", "Add user"), Binding("l", "lock", "Lock"), Binding("u", "unlock", "Unlock"),
                Binding("f", "reset_2fa", "Reset 2FA"), Binding("o", "change_role", "Role"),
                Binding("g", "grant", "Grant"), Binding("x", "revoke_grant", "Revoke grant"),
                Binding("p", "practice", "Practice, staff, services"), Binding("s", "profile", "Security profile"),
                Binding("ctrl+r", "reload", "Reload")]
    # What the account and grant selected allow is added in why_not.
    NEEDS = {**{action: MANAGE for action in (*USER_ACTIONS, "revoke_grant", "add_user")}, "practice": PRACTICE}
    TOPICS = ("security",)
    NOTE = "users-note"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.users: dict[str, dict] = {}
        self.grants: dict[str, dict] = {}
        self.roles: dict[str, dict] = {}     # roles.list by value: names, and who may give them

    def compose(self) -> ComposeResult:
        yield ListTable(id="users-table", cursor_type="row", zebra_stripes=True)
        yield Plain("", id="users-note", classes="muted")
        yield PlainLabel("Grants", id="grants-label", classes="section")
        yield ListTable(id="grants-table", cursor_type="row")

    def on_mount(self) -> None:
        for table_id, columns in (("#users-table", COLUMNS), ("#grants-table", GRANT_COLUMNS)):
            table = self.query_one(table_id, DataTable)
            for label, key in columns:
                table.add_column(label, key=key)

    def took_identity(self, status: dict) -> None:
        """The hint line follows the selected account: shown once the list loads."""

    # --- what may be done to the selected account, and why not -------------------------

    def selected(self) -> dict | None:
        table = self.query_one("#users-table", DataTable)
        if not table.row_count:
            return None
        return self.users.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def selected_grant(self) -> dict | None:
        table = self.query_one("#grants-table", DataTable)
        if not table.row_count:
            return None
        return self.grants.get(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def why_not(self, action: str) -> str | None:
        """None when the action can be offered for the selected account, else why not."""
        if action == "profile":
            return self.why_not_profile()
        reason = super().why_not(action)
        if reason or action in ("practice", "add_user"):   # not about the selected account
            return reason
        user = self.selected()
        if user is None:
            return "no account selected"
        own = self.identity.actor == f"user:{user['username']}"
        if action == "lock" and own:
            return "you cannot lock your own account"
        if action == "unlock" and not user.get("locked_until") and not user.get("failed_logins"):
            return f"{user['username']} is not locked"
        if action == "grant" and own:
            return "you cannot grant permissions to yourself"
        if action == "revoke_grant":
            grant = self.selected_grant()
            if grant is None or grant_state(grant) != "active":
                return "select an active grant in the Grants table"
        return None

    def why_not_profile(self) -> str | None:
        """The selected account's profile for an account manager; one's own for anyone
        else (user.profile.show: one's own needs no permission, another's user:manage)."""
        if self.identity is None:
            return "not logged in"
        if self.identity.can(MANAGE):
            return None if self.selected() is not None else "no account selected"
        if not self.identity.actor.startswith("user:"):
            return "the daemon's own operator has no profile"
        return None

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "profile":
            return None if self.why_not_profile() else True
        return super().check_action(action, parameters)

    def note(self) -> str:
        if self.identity.why_not(MANAGE):
            return f"Account management disabled: {self.identity.why_not(MANAGE)}"
        reasons = sorted({r for a in USER_ACTIONS if (r := self.why_not(a)) and r != "no account selected"})
        return ("l lock · u unlock · f reset 2FA · o role · g grant · x revoke grant"
                + (f" — not now: {'; '.join(reasons)}" if reasons else ""))

    # --- loading --------------------------------------------------------------------------

    @tab_work(exclusive=True, group="users")
    async def load(self) -> None:
        reason = self.identity.why_not(MANAGE)
        if reason:
            self.query_one("#users-note", Static).update(f"User list hidden: {reason} · s: your own security profile")
            self.refresh_bindings()
            return
        users = await ask(self, "user.list", failing="Users")
        self.roles = {r["role"]: r for r in await ask(self, "role.list", failing="Users")}
        if not self.is_attached:
            return   # the console closed while the daemon answered
        table = self.query_one("#users-table", DataTable)
        keep = self.selected()
        table.clear()
        self.users = {}
        for user in users:
            self.users[user["id"]] = user
            you = " (you)" if self.identity.actor == f"user:{user['username']}" else ""
            totp = "new" if user.get("totp_pending") else "yes" if user.get("totp_enabled") else "no"
            table.add_row(user["username"] + you, self.role_name(user["role"]), totp,
                          user_state(user), when(user.get("last_login_at")), key=user["id"])
        if keep is not None and keep["id"] in table.rows:          # kept, and not filtered out
            table.move_cursor(row=table.get_row_index(keep["id"]))
        self._selection_changed()

    def role_name(self, value: str) -> str:
        """A role by its one name (practice admin, operator admin...), as roles.list gives it."""
        role = self.roles.get(value)
        return role["name"] if role else value

    @on(DataTable.RowHighlighted, "#users-table")
    def _user_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._selection_changed()

    @on(DataTable.RowHighlighted, "#grants-table")
    def _grant_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.refresh_bindings()

    def _selection_changed(self) -> None:
        self.show_note()
        self.refresh_bindings()
        user = self.selected()
        if user is not None:
            self.load_grants(user["username"])

    @tab_work(exclusive=True, group="grants")
    async def load_grants(self, username: str) -> None:
        grants = await ask(self, "user.grant.list", {"username": username, "include_ended": True}, failing="Grants")
        if not self.is_attached:
            return
        table = self.query_one("#grants-table", DataTable)
        table.clear()
        self.grants = {}
        for grant in grants:
            self.grants[grant["id"]] = grant
            table.add_row(grant["permission"], grant_state(grant), when(grant.get("expires_at")),
                          grant.get("granted_by") or "", grant.get("reason") or "", key=grant["id"])
        active = sum(grant_state(g) == "active" for g in grants)
        self.query_one("#grants-label", Label).update(
            f"Grants of {username}: {active} active, {len(grants) - active} ended" if grants
            else f"Grants of {username}: none (role permissions only)")
        self.refresh_bindings()

    def apply_security(self, data: dict) -> None:
        """A security event (another console locked someone, a login failed): reload."""
        if self.identity is not None and self.identity.can(MANAGE):
            self.load()

    def action_practice(self) -> None:
        """The practice's details, staff and services (console/modals/practice.py)."""
        from strongroom.console.modals.practice import PracticeScreen

        if self.refused("practice"):
            return
        self.app.push_screen(PracticeScreen(self.identity))

    def action_profile(self) -> None:
        """The security profile of the selected account (or one's own): console/modals/profile.py."""
        from strongroom.console.modals.profile import ProfileScreen

        if self.refused("profile"):
            return
        user = self.selected() if self.identity.can(MANAGE) else None
        self.app.push_screen(ProfileScreen(self.identity, user["username"] if user else None))

    # --- actions --------------------------------------------------------------------------

    def _refuse(self, action: str) -> dict | None:
        """The selected account, or None (and why, as a toast) when `action` may not be taken."""
        return None if self.refused(action) else self.selected()

    def action_lock(self) -> None:
        if (user := self._refuse("lock")) is None:
            return
        name = user["username"]
        self.app.push_screen(
            ConfirmScreen(f"Lock {name}?",
                          f"{name} is locked until an administrator unlocks the account: every open session "
                          f"of {name} ends at once and logins are refused. Nothing of theirs is deleted. "
                          "The lock is recorded as a security event under your name.", yes="Lock"),
            lambda yes: self.change("user.lock", {"username": name, "reason": "locked in console"},
                                    f"{name} locked.") if yes else None)

    def action_unlock(self) -> None:
        if (user := self._refuse("unlock")) is None:
            return
        name = user["username"]
        self.app.push_screen(
            ConfirmScreen(f"Unlock {name}?",
                          f"{name} can log in again and the failed-login count is cleared. "
                          "Recorded as a security event under your name.", yes="Unlock"),
            lambda yes: self.change("user.unlock", {"username": name, "reason": "unlocked in console"},
                                    f"{name} unlocked.") if yes else None)

    def action_reset_2fa(self) -> None:
        if (user := self._refuse("reset_2fa")) is None:
            return
        name = user["username"]
        own = " This is YOUR account: the console returns to the login screen." \
            if self.identity.actor == f"user:{name}" else ""
        self.app.push_screen(
            ConfirmScreen(f"Reset {name}'s two-factor authentication?",
                          f"{name}'s authenticator stops working at once and their sessions end. At "
                          f"their next login, after their password, {name} enrols a new one; nobody "
                          f"else sees its secret, you included. Recorded as a security event.{own}",
                          yes="Reset 2FA"),
            lambda yes: self.reset_2fa(name) if yes else None)

    @tab_work(group="users-actions")
    async def reset_2fa(self, username: str) -> None:
        result = await ask(self, "user.totp.reset", {"username": username}, failing="Refused")
        if result.get("pending_enrolment"):
            self.notify(f"{username}'s second factor is reset: they enrol a new one at their next login.")
        self.load()

    def action_change_role(self) -> None:
        if (user := self._refuse("change_role")) is None:
            return
        name, current = user["username"], user["role"]

        def chosen(role: str | None) -> None:
            if role is None:
                return
            old, new = self.role_name(current), self.role_name(role)
            self.app.push_screen(
                ConfirmScreen(f"Make {name} {new}?",
                              f"{name}'s role changes from {old} to {new}: their permissions change "
                              f"and their open sessions end, so they log in again with the new ones. "
                              "Recorded as a security event under your name.", yes="Change role"),
                lambda yes: self.change("user.role.set", {"username": name, "role": role,
                                                          "reason": "changed in console"},
                                        f"{name} is now {new}.") if yes else None)
        self.app.push_screen(RoleScreen(name, current, list(self.roles.values())), chosen)

    def action_add_user(self) -> None:
        """A new account by invitation: the role first (only those within your own
        permissions can be chosen), then who it is for; the invitation is shown once."""
        if self.refused("add_user"):
            return

        def chosen(role: str | None) -> None:
            if role is None:
                return

            answers: list[dict] = []

            def closed(values: dict | None) -> None:     # shown once the form has gone
                if answers:
                    self.app.push_screen(InvitationShownScreen(answers[0]))
                    self.load()
            self.app.push_screen(FormScreen(
                f"Add a {self.role_name(role)}",
                "The person sets their own password at first login with the invitation shown next "
                "(and enrols a second factor then, where the role requires one): nobody else ever "
                "knows either. Recorded as a security event under your name.",
                (("username", "Username", "letters, digits, . _ -"),
                 ("full_name", "Full name (optional)", "as shown to colleagues"),
                 ("email", "Email (optional)", "contact address")), submit="Add user",
                send=daemon_sender(self, "user.add", lambda v: {
                    "username": v["username"].strip(), "role": role, "full_name": v.get("full_name", "").strip(),
                    "email": v.get("email", "").strip() or None}, lambda _values, answer: answers.append(answer))),
                closed)
        self.app.push_screen(RoleScreen("the new account", "", list(self.roles.values())), chosen)

    def action_grant(self) -> None:
        if (user := self._refuse("grant")) is None:
            return
        name = user["username"]

        def submitted(values: dict | None) -> None:
            if values is not None:
                self.change("user.grant.add", {"username": name, **values},
                            f"{values['permission']} granted to {name} for {values['duration']}.")
        self.app.push_screen(
            FormScreen(f"Grant {name} a permission",
                       "One permission beyond their role, until it expires (at most 366 days). You can "
                       "grant only what you hold yourself.",
                       (("permission", "Permission", "e.g. audit:read or table:clients:read"),
                        ("duration", "For how long", "30m, 8h, 2d, 1w"),
                        ("reason", "Reason (optional)", "why, for the audit log")), submit="Grant"),
            submitted)

    def action_revoke_grant(self) -> None:
        if self._refuse("revoke_grant") is None:
            return
        grant = self.selected_grant()
        name = self.selected()["username"]
        self.app.push_screen(
            ConfirmScreen(f"Revoke {grant['permission']} from {name}?",
                          f"The grant of {grant['permission']} to {name} (until {when(grant.get('expires_at'))}) "
                          "ends now; anything it allowed is refused from their next command. "
                          "Recorded as a security event under your name.", yes="Revoke"),
            lambda yes: self.change("user.grant.revoke", {"grant_id": grant["id"], "reason": "revoked in console"},
                                    f"Grant of {grant['permission']} revoked.") if yes else None)

    @tab_work(group="users-actions")
    async def change(self, cmd: str, args: dict, done: str) -> None:
        await ask(self, cmd, args, failing="Refused", notice_seconds=10)
        self.notify(done)
        self.load()
