"""`strongroom user ...`: manage accounts offline, on the data directory.

These commands act as the local operating-system user (`local:<uid>`), who already holds
the data directory and its key; every change is a security event and an audit entry.
A TOTP secret is printed exactly once, when an account is created: it is stored only
encrypted. A 2FA reset prints none: it wipes the secret, and the account's owner enrols a
new one at their next login, so nobody else ever holds it.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from typing import TYPE_CHECKING

import click

from strongroom.console.cli import CliState, emit, json_option, local_actor, pass_state
from strongroom.console.cli.lazy import LazyChoice
from strongroom.core.errors import ValidationError

if TYPE_CHECKING:  # the models load when a command runs, not for `strongroom user --help`
    from strongroom.core.auth import users
    from strongroom.core.auth.totp import Enrolment


def _role_names() -> list[str]:
    from strongroom.core.db.models import Role

    return [r.value for r in Role]


_ROLES = LazyChoice(_role_names, case_sensitive=True)


def _read_password(password_file: str | None, prompt: str) -> str:
    """From a file (first line, for scripts) or a hidden prompt asked twice."""
    if password_file:
        try:
            lines = Path(password_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValidationError(f"--password-file {password_file}: {exc.strerror}") from None
        if not lines:
            raise ValidationError(f"--password-file {password_file}: file is empty")
        return lines[0]
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


def _show_enrolment(username: str, enrolment: Enrolment) -> None:
    click.echo(f"TOTP enrolment for {username!r} (shown once; scan it now):")
    click.echo(enrolment.qr_text)
    click.echo(f"otpauth URI: {enrolment.uri}")
    click.echo(f"secret (manual entry): {enrolment.secret}")


def _user_table(rows: list[users.UserRecord]) -> None:
    from strongroom.core.auth import users

    click.echo(f"{'USERNAME':<20} {'ROLE':<13} {'2FA':<4} {'FAILED':>6}  {'LOCKED UNTIL':<25} LAST LOGIN")
    for u in rows:
        locked = "indefinitely" if u.locked_until == users.INDEFINITE else (u.locked_until or "")
        totp = "new" if u.totp_pending else "yes" if u.totp_enabled else "no"     # new: enrols at next login
        click.echo(f"{u.username:<20} {u.role.value:<13} {totp:<4} "
                   f"{u.failed_logins:>6}  {str(locked):<25} {u.last_login_at or 'never'}")


@click.group(name="user")
def group() -> None:
    """Manage users: add, list, lock, unlock, grants, 2FA reset, passwords."""


@group.command(name="add")
@click.argument("username")
@click.option("--role", required=True, type=_ROLES, help="Clinical or operator role.")
@click.option("--full-name", default="", help="Display name.")
@click.option("--email", default=None, help="Contact address.")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="Read the password from the first line of FILE instead of prompting.")
@click.option("--practice-id", type=click.UUID,
              help="Practice the user belongs to (default: the only one).")
@json_option
@pass_state
def add_cmd(state: CliState, username: str, role: str, full_name: str, email: str | None,
            password_file: str | None, practice_id: uuid.UUID | None, as_json: bool) -> None:
    """Create a user; roles that require 2FA are enrolled in TOTP at once."""
    from strongroom.core.auth import passwords, users
    from strongroom.core.db.engine import transaction

    ctx = state.ctx
    users.validate_username(username)
    password = _read_password(password_file, "Password")
    passwords.check_policy(password, ctx.settings.auth, username=username)
    with transaction(ctx.engine) as conn:
        practice_id = practice_id or users.only_practice_id(conn)
        user, enrolment = users.create_user(conn, ctx.keyring, ctx.settings, practice_id, username,
                                            password, role, full_name, email, actor=local_actor())
    data = {"user": user.as_dict(),
            "totp": None if enrolment is None else {"uri": enrolment.uri, "secret": enrolment.secret}}

    def human(_: dict) -> None:
        click.echo(f"created user {user.username!r} ({user.role.value}), id {user.id}")
        if enrolment is not None:
            _show_enrolment(user.username, enrolment)

    emit(as_json, data, human)


@group.command(name="invite")
@click.argument("username")
@click.option("--role", required=True, type=_ROLES, help="Clinical or operator role.")
@click.option("--full-name", default="", help="Display name.")
@click.option("--email", default=None, help="Contact address.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Write the invitation to this new file (mode 0600), to hand to the person.")
@click.option("--practice-id", type=click.UUID,
              help="Practice the user belongs to (default: the only one).")
@json_option
@pass_state
def invite_cmd(state: CliState, username: str, role: str, full_name: str, email: str | None, out_path: str,
               practice_id: uuid.UUID | None, as_json: bool) -> None:
    """Create a user who sets their own password at first login (`strongroom login
    --invitation-file`, or the console's login screen), enrolling a second factor then
    where the role requires one. Nobody else ever knows either. The invitation is good
    once, for three days, and is written to a file, never printed."""
    from strongroom.core.auth import invitation, users
    from strongroom.core.db.engine import transaction
    from strongroom.core.fsutil import write_atomic

    ctx = state.ctx
    target = Path(out_path)
    if target.exists():
        raise ValidationError("--out: the file exists already; choose a new path")
    with transaction(ctx.engine) as conn:
        practice_id = practice_id or users.only_practice_id(conn)
        made = invitation.invite(conn, ctx.keyring, ctx.settings, practice_id, username, role, full_name, email,
                                 actor=local_actor())
        try:   # inside the transaction: no account is made without its invitation written
            write_atomic(target, made.token.encode() + b"\n", 0o600)
        except OSError as exc:
            raise ValidationError(f"--out: cannot write the invitation there ({exc.strerror})") from None
    data = {"user": made.user.as_dict(), "invitation_file": str(target), "expires_at": made.expires_at.isoformat()}
    emit(as_json, data, lambda _: click.echo(
        f"invited {made.user.username!r} ({made.user.role.value}); invitation in {target}, "
        f"good once until {made.expires_at:%Y-%m-%d %H:%M} UTC"))


@group.command(name="list")
@json_option
@pass_state
def list_cmd(state: CliState, as_json: bool) -> None:
    """All users, with lock and 2FA state."""
    from strongroom.core.auth import users
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine, read_only=True) as conn:
        rows = users.list_users(conn)
    emit(as_json, [u.as_dict() for u in rows], lambda _: _user_table(rows))


@group.command(name="lock")
@click.argument("username")
@click.option("--minutes", type=click.IntRange(1, 525600), help="Lock for N minutes (default: until unlocked).")
@click.option("--reason", default="", help="Why, for the audit log.")
@pass_state
def lock_cmd(state: CliState, username: str, minutes: int | None, reason: str) -> None:
    """Lock an account and end its sessions."""
    from strongroom.core.auth import users
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine) as conn:
        user = users.lock(conn, users.get_user(conn, username), by=local_actor(),
                          minutes=minutes, reason=reason)
    until = "until unlocked" if minutes is None else f"until {user.locked_until:%Y-%m-%d %H:%M:%S} UTC"
    click.echo(f"locked {username!r} {until}")


@group.command(name="unlock")
@click.argument("username")
@click.option("--reason", default="", help="Why, for the audit log.")
@pass_state
def unlock_cmd(state: CliState, username: str, reason: str) -> None:
    """Unlock an account and clear its failed-login count."""
    from strongroom.core.auth import users
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine) as conn:
        users.unlock(conn, users.get_user(conn, username), by=local_actor(), reason=reason)
    click.echo(f"unlocked {username!r}")


@group.command(name="grant")
@click.argument("username")
@click.argument("permission")
@click.option("--for", "duration", required=True, help="How long: 30m, 8h, 2d, 1w.")
@click.option("--reason", default="", help="Why, for the audit log.")
@json_option
@pass_state
def grant_cmd(state: CliState, username: str, permission: str, duration: str, reason: str,
              as_json: bool) -> None:
    """Grant one permission beyond the user's role, for a limited time."""
    from strongroom.core.auth import rbac, users
    from strongroom.core.db.engine import transaction

    delta = rbac.parse_duration(duration)
    with transaction(state.ctx.engine) as conn:
        granted = rbac.grant(conn, users.get_user(conn, username), permission,
                             granted_by=local_actor(), reason=reason, duration=delta)
    emit(as_json, granted.__dict__, lambda g: click.echo(
        f"granted {g['permission']} to {username!r} until "
        f"{g['expires_at']:%Y-%m-%d %H:%M:%S} UTC (grant id {g['id']})"))


@group.command(name="revoke-grant")
@click.argument("grant_id", type=click.UUID)
@click.option("--reason", default="", help="Why, for the audit log.")
@pass_state
def revoke_grant_cmd(state: CliState, grant_id: uuid.UUID, reason: str) -> None:
    """End a grant before it expires."""
    from strongroom.core.auth import rbac
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine) as conn:
        ended = rbac.revoke_grant(conn, grant_id, revoked_by=local_actor(), reason=reason)
    click.echo(f"revoked grant {grant_id} ({ended.permission})")


@group.command(name="reset-2fa")
@click.argument("username")
@pass_state
def reset_2fa_cmd(state: CliState, username: str) -> None:
    """Wipe a user's TOTP secret and end their sessions; they enrol a new one at next login."""
    from strongroom.core.auth import users
    from strongroom.core.db.engine import transaction

    ctx = state.ctx
    with transaction(ctx.engine) as conn:
        users.reset_2fa(conn, ctx.keyring, ctx.settings, users.get_user(conn, username), by=local_actor())
    click.echo(f"second factor of {username!r} reset: the old authenticator no longer works and their "
               "sessions have ended; at their next login, after their password, they enrol a new one")


@group.command(name="passwd")
@click.argument("username")
@click.option("--password-file", type=click.Path(dir_okay=False),
              help="Read the new password from the first line of FILE instead of prompting.")
@pass_state
def passwd_cmd(state: CliState, username: str, password_file: str | None) -> None:
    """Set a new password and end the user's sessions."""
    from strongroom.core.auth import users
    from strongroom.core.db.engine import transaction

    ctx = state.ctx
    with transaction(ctx.engine, read_only=True) as conn:
        user = users.get_user(conn, username)
    password = _read_password(password_file, "New password")
    with transaction(ctx.engine) as conn:
        users.set_password(conn, ctx.settings, user, password, by=local_actor())
    click.echo(f"password changed for {username!r}")


# --- security profiles, HIPAA acknowledgements, devices (core/auth/profiles.py) --------

@group.group(name="profile")
def profile_group() -> None:
    """A user's own security settings: stricter than [auth], never looser."""


def _profile_human(p: dict) -> None:
    eff, own, policy = p["effective"], p["own"], p["policy"]

    def shown(value: object, unit: str) -> str:
        return "no limit" if value is None else f"{value}{unit}"

    def line(label: str, name: str, unit: str = "") -> None:
        whose = (f"own setting; the policy's is {shown(policy[name], unit)}" if own.get(name) is not None
                 else "the policy's")
        click.echo(f"  {label:<24} {shown(eff[name], unit)}   ({whose})")
    click.echo(f"{p['username']}")
    line("session idle timeout", "session_idle_minutes", " min")
    line("concurrent sessions", "max_sessions")
    line("storage quota", "storage_quota_mb", " MiB")
    click.echo(f"  {'storage used':<24} {p['storage_used_bytes'] / 1048576:.1f} MiB")
    limits = ", ".join(f"{cls} {n}/h" for cls, n in sorted(eff["rate_limits"].items())) or "none"
    click.echo(f"  {'command rate limits':<24} {limits}")
    click.echo(f"  {'two-factor':<24} {'yes' if p['two_factor'] else 'no'}")
    consent = p["hipaa_consent"]
    at = consent["at"]
    when = at.strftime("%Y-%m-%d %H:%M UTC") if hasattr(at, "strftime") else str(at)
    state = f"version {consent['version']} on {when}" if consent["version"] else "none recorded"
    if consent["required_version"]:
        state += "" if consent["current"] else f"  (version {consent['required_version']} required)"
    click.echo(f"  {'HIPAA acknowledgement':<24} {state}")


@profile_group.command(name="show")
@click.argument("username")
@json_option
@pass_state
def profile_show_cmd(state: CliState, username: str, as_json: bool) -> None:
    """Settings in force for USERNAME, whose they are, storage used, 2FA and consent."""
    from strongroom.core.auth import profiles
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine, read_only=True) as conn:
        shown = profiles.show(conn, state.ctx.settings.auth, username)
    emit(as_json, shown, _profile_human)


def _rate_limit(spec: str) -> tuple[str, int]:
    cls, sep, number = spec.partition("=")
    if not sep or not number.strip().isdigit():
        raise click.BadParameter("each value must be CLASS=N (commands per hour)", param_hint="--rate-limit")
    return cls.strip(), int(number)


@profile_group.command(name="set")
@click.argument("username")
@click.option("--idle-minutes", type=int, help="Session idle timeout (at most the policy's).")
@click.option("--max-sessions", type=int, help="Concurrent sessions (at most the policy's).")
@click.option("--quota-mb", type=int, help="Client file storage (at most the policy's).")
@click.option("--rate-limit", "rate_limits", multiple=True, metavar="CLASS=N",
              help="Commands of CLASS per hour (e.g. exports=5); repeat for more classes.")
@click.option("--clear", "cleared", multiple=True,
              type=click.Choice(["idle-minutes", "max-sessions", "quota-mb", "rate-limits"]),
              help="Back to the policy for this setting; repeatable.")
@json_option
@pass_state
def profile_set_cmd(state: CliState, username: str, idle_minutes: int | None, max_sessions: int | None,
                    quota_mb: int | None, rate_limits: tuple[str, ...], cleared: tuple[str, ...],
                    as_json: bool) -> None:
    """Make USERNAME's settings stricter than the policy (refused when looser)."""
    from strongroom.core.auth import profiles
    from strongroom.core.db.engine import transaction

    changes: dict = {}
    for name, value in (("session_idle_minutes", idle_minutes), ("max_sessions", max_sessions),
                        ("storage_quota_mb", quota_mb)):
        if value is not None:
            changes[name] = value
    if rate_limits:
        changes["rate_limits"] = dict(_rate_limit(spec) for spec in rate_limits)
    for name in cleared:
        changes[{"idle-minutes": "session_idle_minutes", "max-sessions": "max_sessions",
                 "quota-mb": "storage_quota_mb", "rate-limits": "rate_limits"}[name]] = None
    with transaction(state.ctx.engine) as conn:
        shown = profiles.update_profile(conn, state.ctx.settings.auth, username, changes, actor=local_actor())
    emit(as_json, shown, _profile_human)


@group.command(name="consent")
@click.argument("username")
@click.argument("version")
@json_option
@pass_state
def consent_cmd(state: CliState, username: str, version: str, as_json: bool) -> None:
    """Record that USERNAME acknowledged the practice's HIPAA notice at VERSION."""
    from strongroom.core.auth import profiles
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine) as conn:
        shown = profiles.record_consent(conn, state.ctx.settings.auth, username, version, actor=local_actor())
    emit(as_json, shown, _profile_human)


@group.command(name="devices")
@click.argument("username")
@json_option
@pass_state
def devices_cmd(state: CliState, username: str, as_json: bool) -> None:
    """The devices USERNAME has logged in from, most recent first."""
    from strongroom.core.auth import devices, users
    from strongroom.core.db.engine import transaction

    with transaction(state.ctx.engine, read_only=True) as conn:
        rows = devices.list_devices(conn, users.get_user(conn, username).id)

    def human(_: list) -> None:
        if not rows:
            click.echo("no logins recorded")
        for d in rows:
            click.echo(f"{d['fingerprint']}  {d['kind']:<5}  {d['logins']:>5} logins  "
                       f"first {d['first_seen_at']:%Y-%m-%d %H:%M}  last {d['last_seen_at']:%Y-%m-%d %H:%M}  "
                       f"{d['label']}")
    emit(as_json, rows, human)
