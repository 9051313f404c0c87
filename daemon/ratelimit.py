"""Per-user rate limits on control commands, by command class.

The source's `checkRateLimit(userId, 'export')`, generalised: a command's class is the
first part of its name as the classes were first named (`exports` for export.run and
export.list, which were exports.run and exports.list: `Command.rate_class` takes it from
the command's oldest name, so configured limits keep applying after the renaming); `[auth]
rate_limits` sets how many commands of a class a signed-in person may make per hour,
and a user's profile may set less (core/auth/profiles.py). Only people are limited:
the local operator and the daemon's own jobs are not. Chunk transfers (`*.chunk`) are
part of the command that started them and do not count.

The window slides over the last hour and is kept in this process's memory: a daemon
restart forgets it (the worst case is one extra hour's allowance, for someone who can
restart the daemon anyway). Every reply to a limited class carries `rate` (class,
limit, remaining, seconds until the oldest use leaves the window), so a client can show
what is left. The first refusal in a window is a security event and an audit entry;
repeats within it are not, so a script hammering the daemon cannot flood the log.
"""
from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from strongroom.core.errors import RateLimitedError
from strongroom.core.principal import Principal

WINDOW = 3600.0
LIMITS_TTL = 30.0      # seconds a user's effective limits are reused before re-reading


@dataclass
class _Limits:
    by_class: dict[str, int]
    read_at: float


def command_class(name: str) -> str | None:
    """The class a command name counts towards, or None for one that never counts (chunk
    transfers: files.add.chunk, file.chunk.add)."""
    if "chunk" in name.split("."):
        return None
    return name.split(".", 1)[0]


class RateLimiter:
    def __init__(self, read_limits: Callable[[uuid.UUID], dict[str, int]],
                 record_refusal: Callable[[Principal, str, int], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_limits = read_limits
        self._record_refusal = record_refusal
        self._clock = clock
        self._limits: dict[uuid.UUID, _Limits] = {}
        self._uses: dict[tuple[uuid.UUID, str], collections.deque[float]] = {}
        self._refused: set[tuple[uuid.UUID, str]] = set()

    def cached(self, user_id: uuid.UUID) -> dict[str, int] | None:
        """The user's limits when read recently enough, else None (read them off the loop)."""
        cached = self._limits.get(user_id)
        if cached is None or self._clock() - cached.read_at > LIMITS_TTL:
            return None
        return cached.by_class

    def limits_of(self, user_id: uuid.UUID) -> dict[str, int]:
        limits = self.cached(user_id)
        if limits is None:
            limits = self._read_limits(user_id)
            self._limits[user_id] = _Limits(limits, self._clock())
        return limits

    def forget_limits(self) -> None:
        """A profile or the config changed: read limits afresh on next use."""
        self._limits.clear()

    def needs_limits(self, principal: Principal | None, cls: str | None) -> bool:
        return principal is not None and principal.user_id is not None and cls is not None

    def take(self, principal: Principal, cls: str | None, limits: dict[str, int]) -> dict | None:
        """Count one use of a command of class `cls` (Command.rate_class) by `principal`;
        its `rate` for the reply, or None when the class is not limited. Raises
        RateLimitedError when the hour's allowance is spent."""
        if cls is None or principal.user_id is None or cls not in limits:
            return None
        limit, now = limits[cls], self._clock()
        key = (principal.user_id, cls)
        uses = self._uses.setdefault(key, collections.deque())
        while uses and now - uses[0] >= WINDOW:
            uses.popleft()
        if len(uses) >= limit:
            wait = int(WINDOW - (now - uses[0])) + 1 if uses else int(WINDOW)
            if key not in self._refused:
                self._refused.add(key)
                self._record_refusal(principal, cls, limit)
            raise RateLimitedError(f"rate limit reached: {limit} {cls} commands per hour for this account; "
                                   f"the next is allowed in {max(1, wait // 60)} minute(s)")
        self._refused.discard(key)
        uses.append(now)
        reset = int(WINDOW - (now - uses[0])) + 1
        return {"class": cls, "limit": limit, "remaining": limit - len(uses), "reset_seconds": reset}
