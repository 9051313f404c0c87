"""A user's security profile (user.profile.show), opened from the Users tab (`s`).

One row per setting: the value in force, whose it is (the practice default, or the
account's own stricter one) and the policy's bound, then storage used, the second
factor and the HIPAA acknowledgement. The practice's policy ([auth]) is both the
default and the bound: an account's own setting may be stricter, never looser.

`e` edits the settings through the form (modals/form.py), for a user holding
user:manage; everyone else sees it disabled with the reason (anyone may read their own
profile; another's needs user:manage, which the Users tab checks before opening this).
The form sends only what changed, an emptied field returns to the policy, and the
daemon's refusal (a value looser than the policy, an account beyond the editor's own
permissions) is shown in the form in its words, with nothing changed.
"""
from __future__ import annotations

from typing import Any

from strongroom.console.client import ClientError
from strongroom.console.helpers.identity import Identity
from strongroom.console.helpers.text import size, when
from strongroom.console.helpers.workers import fetch, tab_work
from strongroom.console.modals.form import FormScreen, daemon_sender
from strongroom.console.widgets.list_table import ListTable
from strongroom.console.widgets.plain import Plain
from strongroom.console.widgets.tables import add_columns
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

MANAGE = "user:manage"
# Fits the 72 cells an 80-column terminal leaves the dialog.
COLUMNS = (("Setting", "setting", 24), ("In force", "value", 12), ("Whose", "whose", 17), ("Bound", "bound", 12))
# (name in the profile, label, unit) for the numeric settings, in the order shown.
NUMBERS = (("session_idle_minutes", "Session idle timeout", " min"), ("max_sessions", "Concurrent sessions", ""),
           ("storage_quota_mb", "Storage quota", " MiB"))
FIELDS = (("session_idle_minutes", "Session idle timeout, minutes (optional)"),
          ("max_sessions", "Concurrent sessions (optional)"),
          ("storage_quota_mb", "Storage quota, MiB (optional)"),
          ("rate_limits", "Rate limits per hour (optional)"))


def shown(value: Any, unit: str = "") -> str:
    return "no limit" if value is None else f"{value}{unit}"


def whose(own: Any, effective: Any) -> str:
    """Whose value is in force: the practice's, or the account's own (stricter) one. An
    own value the policy has since undercut is named: the policy's stricter one applies."""
    if own is None:
        return "practice default"
    return "own setting" if own == effective else f"policy (own {own})"


def rows(profile: dict) -> list[tuple[str, str, str, str]]:
    """The profile as (setting, in force, whose, bound) rows."""
    own, policy, effective = profile["own"], profile["policy"], profile["effective"]
    out = [(label, shown(effective[name], unit), whose(own[name], effective[name]),
            "≤ " + shown(policy[name], unit) if policy[name] is not None else "none")
           for name, label, unit in NUMBERS]
    own_limits = own.get("rate_limits") or {}
    for cls, n in sorted((effective.get("rate_limits") or {}).items()):
        bound = (policy.get("rate_limits") or {}).get(cls)
        out.append((f"Rate limit: {cls}", f"{n}/h", whose(own_limits.get(cls), n),
                    f"≤ {bound}/h" if bound is not None else "none"))
    out.append(("Storage used", size(profile["storage_used_bytes"]), "", ""))
    out.append(("Two-factor", "yes" if profile["two_factor"] else "no", "", ""))
    consent = profile["hipaa_consent"]
    out.append(("HIPAA acknowledgement",
                f"v{consent['version']}" if consent.get("version") else "none",
                when(consent.get("at")) if consent.get("at") else "",
                (f"v{consent['required_version']} " + ("✓" if consent["current"] else "required"))
                if consent.get("required_version") else "not tracked"))
    return out


def form_values(profile: dict) -> dict[str, str]:
    """What the edit form starts with: the account's own settings (empty: the policy's)."""
    own = profile["own"]
    values = {name: "" if own.get(name) is None else str(own[name]) for name, _ in FIELDS if name != "rate_limits"}
    values["rate_limits"] = ", ".join(f"{cls}={n}" for cls, n in sorted((own.get("rate_limits") or {}).items()))
    return values


def _number(text: str, label: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{label}: a whole number (empty returns to the policy's)")
    return int(text)


def _limits(text: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        cls, sep, number = part.partition("=")
        if not sep or not cls.strip() or not number.strip().isdigit():
            raise ValueError("Rate limits: CLASS=N per hour, separated by commas (e.g. exports=5, backups=2)")
        limits[cls.strip()] = int(number.strip())
    return limits


def profile_changes(username: str, initial: dict[str, str], values: dict[str, str]) -> dict:
    """The user.profile.set arguments for what the form changed: a new value as a number
    (or limits), an emptied field as the daemon's "back to the policy" (0, or {}). Raises
    ValueError, naming the field and never repeating what was typed, for a malformed one
    or when nothing changed."""
    args: dict[str, Any] = {}
    labels = dict(FIELDS)
    for name, text in values.items():
        text = text.strip()
        if text == initial.get(name, ""):
            continue
        if name == "rate_limits":
            args[name] = _limits(text)
        else:
            args[name] = 0 if text == "" else _number(text, labels[name].split(",")[0].removesuffix(" (optional)"))
    if not args:
        raise ValueError("Nothing changed")
    return {"username": username, **args}


class ProfileScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ProfileScreen #profile-dialog { width: 96%; max-width: 90; height: 90%; border: thick $primary;
                                    background: $surface; padding: 0 1; }
    ProfileScreen DataTable { height: 1fr; }
    """
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"), Binding("e", "edit", "Edit profile"),
                Binding("ctrl+r", "reload", "Reload")]

    def __init__(self, identity: Identity, username: str | None) -> None:
        """`username`: whose profile (None: the caller's own)."""
        super().__init__()
        self.identity = identity
        self.username = username
        self.profile: dict = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="profile-dialog"):
            yield Plain(f"Security profile of {self.username or 'you'}", id="profile-title", classes="dialog-title")
            yield Plain("Loading…", id="profile-summary", classes="muted")
            yield ListTable(id="profile-table", cursor_type="row", zebra_stripes=True)
            yield Plain("", id="profile-note", classes="muted")

    def on_mount(self) -> None:
        add_columns(self.query_one("#profile-table", DataTable), COLUMNS)
        self.query_one("#profile-table", DataTable).focus()
        self.load()

    def why_not(self, action: str) -> str | None:
        if action != "edit":
            return None
        if not self.profile:
            return "the profile has not loaded"
        return self.identity.why_not(MANAGE)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return None if action == "edit" and self.why_not(action) else True

    def action_reload(self) -> None:
        self.load()

    @tab_work(exclusive=True, group="profile-load")
    async def load(self) -> None:
        args = {} if self.username is None else {"username": self.username}
        try:
            profile = await fetch(self, "user.profile.show", args)
        except ClientError as err:
            self.query_one("#profile-summary", Static).update(f"Profile: {err.message}")
            return
        self.show(profile)

    def show(self, profile: dict) -> None:
        self.profile = profile
        self.query_one("#profile-title", Static).update(f"Security profile of {profile['username']}")
        updated = (f"last changed {when(profile['updated_at'])} by {profile.get('updated_by') or '—'}"
                   if profile.get("updated_at") else "never changed: the practice's policy applies throughout")
        self.query_one("#profile-summary", Static).update(
            f"The practice's policy is the default and the bound: an account's own setting may be "
            f"stricter, never looser. {updated}.")
        table = self.query_one("#profile-table", DataTable)
        table.clear()
        for i, row in enumerate(rows(profile)):
            table.add_row(*row, key=str(i))
        reason = self.why_not("edit")
        self.query_one("#profile-note", Static).update(
            f"Editing disabled: {reason} · esc close" if reason else "e edit · esc close")
        self.refresh_bindings()

    def action_edit(self) -> None:
        reason = self.why_not("edit")
        if reason:
            self.notify(f"Not allowed: {reason}", severity="warning")
            return
        username = self.profile["username"]
        initial = form_values(self.profile)
        policy = self.profile["policy"]
        hints = {"session_idle_minutes": f"1 to {policy['session_idle_minutes']}; empty: the policy's",
                 "max_sessions": f"1 to {policy['max_sessions']}; empty: the policy's",
                 "storage_quota_mb": (f"1 to {policy['storage_quota_mb']}" if policy["storage_quota_mb"]
                                      else "any") + "; empty: the policy's",
                 "rate_limits": "e.g. exports=5, backups=2; empty: the policy's"}
        self.app.push_screen(FormScreen(
            f"Security profile of {username}",
            "Each setting may be stricter than the practice's policy, never looser. Only what you change is "
            "sent; recorded as a security event under your name.",
            tuple((name, label, hints[name]) for name, label in FIELDS), submit="Save", values=initial,
            send=daemon_sender(self, "user.profile.set", lambda v: profile_changes(username, initial, v),
                               lambda _values, answer: self._saved(answer))))

    def _saved(self, profile: dict) -> None:
        self.notify(f"Security profile of {profile['username']} saved.")
        if self.is_attached:
            self.show(profile)
