"""Who is acting: the identity every repository call and audit entry carries."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field


def permission_matches(granted: str, wanted: str) -> bool:
    """`job:*:run` grants `job:backup:run`; `*` grants everything; segments match 1:1."""
    if granted == "*" or granted == wanted:
        return True
    g, w = granted.split(":"), wanted.split(":")
    return len(g) == len(w) and all(a == "*" or a == b for a, b in zip(g, w))


@dataclass(frozen=True)
class Principal:
    actor: str                       # "user:alice", "local:0", "system"
    permissions: frozenset[str] = field(default_factory=frozenset)
    user_id: uuid.UUID | None = None
    practice_id: uuid.UUID | None = None
    session_id: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None

    def can(self, permission: str) -> bool:
        return any(permission_matches(g, permission) for g in self.permissions)


SYSTEM = Principal(actor="system", permissions=frozenset({"*"}))

# Four eyes are two named people who logged in. The local operator (`local:<uid>`) is
# whoever holds the daemon's account or root on its machine, one person under any number
# of names, and `system` (the scheduler) is nobody: neither files nor decides a request
# that needs a second person.
NOT_A_PERSON = ("needs a named, logged-in person (four-eyes rule); the local operator and the "
                "scheduler are not one: log in with `strongroom login`")


def is_person(actor: str) -> bool:
    """True for a named account that authenticated (`user:<name>`)."""
    return actor.startswith("user:")
