"""What is sent (an `Event`, never with PHI) and what came of it (a `Delivery` per
channel, safe to log), the level filter, and URL redaction: a webhook's path and query
are its credentials."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from strongroom.core.errors import ValidationError
from strongroom.core.notify.settings import _LEVELS, NotifySettings, Severity

@dataclass(frozen=True)
class Event:
    """Something worth telling a person. Must not contain PHI: name tables, job ids and
    counts, never a client's data."""

    kind: str
    severity: Severity
    title: str
    message: str
    fields: dict[str, str | int] = field(default_factory=dict)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.severity not in _LEVELS["everything"]:
            raise ValidationError(
                f"event severity must be info, warning or failure, not {self.severity!r}"
            )
        if self.occurred_at.tzinfo is None:
            raise ValidationError("event occurred_at must be timezone-aware")
        for key, value in self.fields.items():
            if not isinstance(key, str) or not isinstance(value, (str, int)):
                raise ValidationError(f"event field {key!r} must map a str to a str or int")


@dataclass(frozen=True)
class Delivery:
    """The outcome of one channel. `target` and `detail` are safe to log and expose:
    no password, no URL path or query."""

    channel: Literal["webhook", "email", "deadman"]
    target: str
    ok: bool
    detail: str
    attempts: int


def should_send(settings: NotifySettings, severity: Severity) -> bool:
    """True when the configured level lets an event of this severity through."""
    return severity in _LEVELS[settings.level]


def redact_url(url: str) -> str:
    """scheme://host[:port]/... — the path and query of a webhook are its credentials."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    rest = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"
