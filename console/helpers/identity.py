"""Who is logged in and what they may do, from `whoami`; decides which actions are enabled."""
from __future__ import annotations

from dataclasses import dataclass

from strongroom.core.principal import permission_matches


@dataclass(frozen=True)
class Identity:
    actor: str
    permissions: tuple[str, ...]
    session_id: str | None = None

    @classmethod
    def from_whoami(cls, data: dict) -> Identity:
        return cls(data["actor"], tuple(data.get("permissions") or ()), data.get("session_id"))

    def can(self, permission: str) -> bool:
        return any(permission_matches(granted, permission) for granted in self.permissions)

    def why_not(self, permission: str) -> str | None:
        """None when allowed, else the reason to show next to the disabled action."""
        if self.can(permission):
            return None
        return f"{self.actor} lacks {permission}"


def why_not_job(identity: Identity | None, kind: str, kinds: list[str]) -> str | None:
    """None when `identity` may start a `kind` run on a daemon offering `kinds`, else why
    not: shown beside the disabled action, worded the same on every tab."""
    if identity is None:
        return "not logged in"
    if kind not in kinds:
        return f"this daemon has no {kind} job"
    return identity.why_not(f"job:{kind}:run")
