"""Notification settings: the `[notify]` section of the config, checked as it loads.

A local copy of core.config's base model: config.py imports this module to nest
NotifySettings, so importing back from it would be circular.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Severity = Literal["info", "warning", "failure"]
Level = Literal["failures", "warnings", "everything"]

# Which severities each level lets through.
_LEVELS: dict[str, frozenset[str]] = {
    "failures": frozenset({"failure"}),
    "warnings": frozenset({"failure", "warning"}),
    "everything": frozenset({"failure", "warning", "info"}),
}
# 408 and 429 are the server saying "later", the rest of 4xx is "never".
_RETRY_STATUSES = frozenset({408, 429})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Deliberately loose: one @, no spaces, commas or angle brackets (which would let one
# setting smuggle extra recipients or headers). Deliverability is the server's business.
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces or control characters")
    return value


def _check_address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError("must be a plain email address like name@example.org")
    return value


class WebhookSettings(_Section):
    url: str = Field(description="http(s) URL the notification is POSTed to")
    style: Literal["json", "slack", "ntfy"] = "json"
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra request headers, e.g. Authorization"
    )
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("headers")
    @classmethod
    def _single_line_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not re.fullmatch(r"[A-Za-z0-9-]+", name) or _CONTROL.search(text):
                raise ValueError(
                    f"header {name!r}: names are letters, digits and '-', values one line"
                )
        return value


class EmailSettings(_Section):
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_file: Path | None = Field(
        default=None, description="file holding the SMTP password, read at send time"
    )
    sender: str
    recipients: Annotated[list[str], Field(min_length=1)]
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0

    @field_validator("sender")
    @classmethod
    def _sender_address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [_check_address(item) for item in value]

    @model_validator(mode="after")
    def _coherent(self) -> EmailSettings:
        if self.ssl and self.starttls:
            raise ValueError("ssl (implicit TLS, port 465) and starttls exclude each other")
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        # A password sent in clear over the network is a disclosure; a relay on this
        # machine (postfix on localhost) is the one place that is acceptable.
        if self.username and not (self.ssl or self.starttls) and self.host not in _LOOPBACK_HOSTS:
            raise ValueError("SMTP login needs starttls or ssl unless the host is loopback")
        return self


class NotifySettings(_Section):
    level: Level = "failures"
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    email: EmailSettings | None = None
    deadman_url: str | None = Field(default=None, description="GET after each successful backup")
    deadman_fail_url: str | None = Field(
        default=None, description="GET after a failed backup, e.g. <url>/fail"
    )
    deadman_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    retry_attempts: Annotated[int, Field(ge=1, le=5)] = 3
    retry_backoff_seconds: Annotated[float, Field(ge=0, le=10)] = 0.5

    @field_validator("deadman_url", "deadman_fail_url")
    @classmethod
    def _deadman_http(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)
