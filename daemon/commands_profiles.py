"""Per-user security profiles, HIPAA acknowledgements and known devices
(core/auth/profiles.py, core/auth/devices.py).

A person may read their own profile and devices and record their own acknowledgement;
reading or changing anyone else's needs `user:manage`, and changing a profile needs it
always (a user may not loosen, or even tighten, their own limits: the account manager
decides) and is refused, as every account change is, for an account holding a
permission the manager lacks. Changing a profile drops the daemon's cached rate limits
so the new ones apply to the next command.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any


from strongroom.core.auth import devices, management, profiles
from strongroom.core.auth.users import get_user
from strongroom.core.db.engine import transaction
from strongroom.core.errors import NotFoundError

from strongroom.core.protocol.models.users import ConsentArgs, DeviceInfo, ProfileResult, ProfileSetArgs, TargetArgs
from strongroom.daemon.commands import Call, command

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon

MANAGE = "user:manage"


def _whose(d: "Daemon", call: Call, username: str | None) -> str:
    """The account a command is about: the caller's own, or (with user:manage) another."""
    own = call.principal.actor.removeprefix("user:") if call.principal.user_id is not None else None
    if username is None:
        if own is None:
            raise NotFoundError("the daemon's own operator has no profile; name a user (username)")
        return own
    if username != own:
        d.require(call.principal, MANAGE)
    return username


@command("user.profile.show", permission=None, args=TargetArgs, result=ProfileResult)
def profile_show_cmd(d: "Daemon", call: Call) -> dict[str, Any]:
    """A user's security profile: their own settings, the policy, what is in force,
    storage used, second factor and HIPAA acknowledgement."""
    username = _whose(d, call, call.args.username)
    with transaction(d.ctx.engine, read_only=True) as conn:
        return profiles.show(conn, d.ctx.settings.auth, username)


@command("user.profile.set", permission=MANAGE, args=ProfileSetArgs, result=ProfileResult)
def profile_set_cmd(d: "Daemon", call: Call) -> dict[str, Any]:
    """Set a user's own session, rate-limit or quota settings (stricter than the policy,
    never looser; 0 or {} clears one back to the policy)."""
    a: ProfileSetArgs = call.args
    changes = {name: (None if value in (0, {}) else value)
               for name in ("session_idle_minutes", "max_sessions", "storage_quota_mb", "rate_limits")
               if (value := getattr(a, name)) is not None}
    with transaction(d.ctx.engine) as conn:
        management.refuse_stronger(conn, call.principal, get_user(conn, a.username), "change the profile of")
        shown = profiles.update_profile(conn, d.ctx.settings.auth, a.username, changes, actor=call.principal.actor)
    d.control_rates_changed()
    return shown


@command("user.consent.add", permission=None, args=ConsentArgs, result=ProfileResult)
def consent_cmd(d: "Daemon", call: Call) -> dict[str, Any]:
    """Record a HIPAA acknowledgement at a version (one's own; another's with user:manage)."""
    username = _whose(d, call, call.args.username)
    with transaction(d.ctx.engine) as conn:
        return profiles.record_consent(conn, d.ctx.settings.auth, username, call.args.version,
                                       actor=call.principal.actor)


@command("user.device.list", permission=None, args=TargetArgs, result=list[DeviceInfo])
def devices_cmd(d: "Daemon", call: Call) -> list[dict]:
    """The devices an account has logged in from (a label and fingerprint, never the key
    or address), most recent first."""
    username = _whose(d, call, call.args.username)
    with transaction(d.ctx.engine, read_only=True) as conn:
        return devices.list_devices(conn, get_user(conn, username).id)
