"""Keys that need a permission (or a selection): shown disabled while they may not be
used, and a refusal that says why when one is pressed anyway.

Shared by the tabs (tabs/base.py) and the modals whose keys are gated the same way
(practice, appointments). A class lists its gated actions in NEEDS and says in
`why_not` why one may not be taken now (None when it may).
"""
from __future__ import annotations

from typing import Any, ClassVar


class Gated:
    NEEDS: ClassVar[dict[str, Any]] = {}
    REFUSED: ClassVar[str] = "Not allowed"  # how a refusal's toast begins, unless the action says

    def why_not(self, action: str) -> str | None:
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Textual asks before showing or running a key: None shows it disabled."""
        if action in self.NEEDS and self.why_not(action):
            return None
        return True

    def refused(self, action: str, *, saying: str | None = None, severity: str = "warning") -> bool:
        """True, after saying why as a toast, when `action` may not be taken now."""
        reason = self.why_not(action)
        if reason:
            self.notify(f"{saying or self.REFUSED}: {reason}", severity=severity)
        return reason is not None
