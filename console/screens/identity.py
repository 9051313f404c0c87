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
