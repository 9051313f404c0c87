"""Notifications: tell a person when a job fails, and tell a dead-man switch when it didn't.

Channels are webhooks (a JSON POST in one of three dialects: our own JSON schema,
Slack-compatible, ntfy) and email over SMTP. A dead-man URL (healthchecks.io style) is
pinged after each successful backup, so silence itself raises an alarm elsewhere.

Rules this module keeps:

- Delivery never raises. A notification that cannot be sent must not turn a finished
  backup into a crashed daemon; `send` returns one `Delivery` per channel instead, and
  every channel is tried whatever happened to the others.
- Secrets never leave in a result. Webhook URLs carry their credentials in the path or
  query (Slack's /services/T/B/secret, an ntfy topic, a healthchecks UUID), so a URL is
  shown as scheme://host[:port]/... only; the SMTP password is read from its file at send
  time and never appears in a detail string.
- Payloads carry only what the caller put in the `Event`. The caller guarantees there is
  no PHI in it; this module adds nothing but the host name and a timestamp.
- Only the standard library talks to the network (urllib.request, smtplib), with short
  timeouts and a small bounded retry for transient failures.

JSON payload (style "json"), schema version 1; keys are only ever added, never changed::

    {"source": "strongroom", "version": 1,
     "severity": "info" | "warning" | "failure",
     "kind": "<job kind or 'daemon'>", "title": str, "message": str,
     "fields": {str: str | int}, "occurred_at": "<ISO 8601, UTC>", "host": str}
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from strongroom.core.errors import ValidationError

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


# A local copy of core.config's base: config.py will import this module to nest
# NotifySettings, so importing back from it would be circular.
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


# --- payloads ---------------------------------------------------------------------------


def json_payload(event: Event, host: str | None = None) -> dict:
    """The documented schema (see the module docstring); the one to build tools on."""
    return {
        "source": "strongroom",
        "version": 1,
        "severity": event.severity,
        "kind": event.kind,
        "title": event.title,
        "message": event.message,
        "fields": dict(event.fields),
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
        "host": host or socket.gethostname(),
    }


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters (links, mentions).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(event: Event, host: str | None = None) -> dict:
    """Slack incoming-webhook body. `text` carries everything, because Slack-compatible
    receivers (Mattermost, Rocket.Chat, Discord's /slack) ignore blocks."""
    host = host or socket.gethostname()
    headline = f"[{event.severity.upper()}] {event.kind}: {event.title}"
    lines = [f"{key}: {value}" for key, value in event.fields.items()]
    text = "\n".join(
        [headline, event.message, *lines, f"host {host} at {event.occurred_at.isoformat()}"]
    )
    body = "\n".join([f"*{_slack_escape(headline)}*", _slack_escape(event.message)])
    if lines:
        body += "\n" + "\n".join(f"• {_slack_escape(line)}" for line in lines)
    context = _slack_escape(f"{host} · {event.occurred_at.isoformat()}")
    return {
        "text": _slack_escape(text),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


_NTFY_PRIORITY = {"failure": "high", "warning": "default", "info": "low"}
_NTFY_TAG = {"failure": "rotating_light", "warning": "warning", "info": "white_check_mark"}


def _header_text(text: str) -> str:
    """One line, and RFC 2047 encoded when not ASCII (ntfy decodes it; http.client
    would otherwise send latin-1 or refuse)."""
    line = _CONTROL.sub(" ", text).strip()
    if line.isascii():
        return line
    return (
        "=?UTF-8?B?" + base64.b64encode(line.encode("utf-8")).decode("ascii") + "?="
    )  # one word, never folded


def ntfy_request(event: Event, host: str | None = None) -> tuple[bytes, dict[str, str]]:
    """ntfy publish: the body is the message, metadata goes in ntfy's headers."""
    host = host or socket.gethostname()
    lines = [
        event.message,
        *(f"{key}: {value}" for key, value in event.fields.items()),
        f"host: {host}",
    ]
    headers = {
        "Title": _header_text(f"{event.kind}: {event.title}"),
        "Priority": _NTFY_PRIORITY[event.severity],
        "Tags": ",".join([_NTFY_TAG[event.severity], "strongroom", _header_text(event.kind)]),
        "Content-Type": "text/plain; charset=utf-8",
    }
    return "\n".join(lines).encode("utf-8"), headers


def _webhook_request(hook: WebhookSettings, event: Event) -> tuple[bytes, dict[str, str]]:
    if hook.style == "ntfy":
        body, headers = ntfy_request(event)
    else:
        payload = slack_payload(event) if hook.style == "slack" else json_payload(event)
        body, headers = json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json"}
    return body, {**headers, "User-Agent": "strongroom-notify", **hook.headers}


# --- HTTP -------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would replay our headers (an Authorization token) to wherever a 3xx points;
    # a webhook that moved must be reconfigured, not followed.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# No ProxyHandler from the environment: where requests go is decided by the config alone.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def _http_once(
    url: str, method: str, body: bytes | None, headers: dict[str, str], timeout: float
) -> tuple[bool, bool, str]:
    """One request -> (ok, worth retrying, detail). Details never include the URL."""
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return True, False, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        exc.close()
        transient = exc.code >= 500 or exc.code in _RETRY_STATUSES
        what = "redirect not followed" if 300 <= exc.code < 400 else "refused"
        return False, transient, f"HTTP {exc.code} {what}"
    except urllib.error.URLError as exc:
        return False, _transient(exc.reason), _os_reason(exc.reason)
    except (http.client.HTTPException, OSError) as exc:
        return False, _transient(exc), _os_reason(exc)


def _transient(reason: object) -> bool:
    # A certificate that fails verification will fail the same way a second later.
    return not isinstance(reason, ssl.SSLError)


def _os_reason(reason: object) -> str:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason.reason or type(reason).__name__}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    # Never str(exception): some messages quote the request, and a URL is a credential.
    return type(reason).__name__ if isinstance(reason, BaseException) else "connection failed"


def _with_retry(
    settings: NotifySettings, attempt_once: Callable[[], tuple[bool, bool, str]]
) -> tuple[bool, str, int]:
    """Run `attempt_once` up to retry_attempts times, backing off 1x, 2x, 4x ... while it
    reports a transient failure; a permanent one (4xx, auth refused) stops at once."""
    for attempt in range(1, settings.retry_attempts + 1):
        ok, transient, detail = attempt_once()
        if ok or not transient or attempt == settings.retry_attempts:
            return ok, detail, attempt
        time.sleep(settings.retry_backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _deliver_webhook(settings: NotifySettings, hook: WebhookSettings, event: Event) -> Delivery:
    body, headers = _webhook_request(hook, event)
    ok, detail, attempts = _with_retry(
        settings, lambda: _http_once(hook.url, "POST", body, headers, hook.timeout_seconds)
    )
    return Delivery("webhook", redact_url(hook.url), ok, detail, attempts)


# --- email ------------------------------------------------------------------------------


def email_message(mail: EmailSettings, event: Event, host: str | None = None) -> EmailMessage:
    """A plain-text message; the subject leads with the severity so a filter can sort."""
    host = host or socket.gethostname()
    message = EmailMessage()
    message["Subject"] = _CONTROL.sub(
        " ", f"[Strongroom {event.severity.upper()}] {event.kind}: {event.title}"
    )
    message["From"] = mail.sender
    message["To"] = ", ".join(mail.recipients)
    message["Date"] = formatdate(event.occurred_at.timestamp(), localtime=False)
    message["Message-ID"] = make_msgid(domain=mail.sender.rsplit("@", 1)[1])
    lines = [event.message, ""]
    lines += [f"{key}: {value}" for key, value in event.fields.items()]
    lines += [
        "",
        f"host: {host}",
        f"occurred at: {event.occurred_at.isoformat()}",
        f"severity: {event.severity}",
    ]
    message.set_content("\n".join(lines))
    return message


def _read_password(path: Path) -> str:
    # Read at every send so a rotated password needs no restart; only the line ending
    # is stripped, a password may legitimately end in spaces.
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def _smtp_once(mail: EmailSettings, message: EmailMessage) -> tuple[bool, bool, str]:
    """One SMTP session -> (ok, worth retrying, detail). Server replies are reduced to
    their code: they can echo the login name and, on some servers, what was sent."""
    try:
        password = _read_password(mail.password_file) if mail.password_file else None
    except OSError as exc:
        return False, False, f"cannot read password_file: {_os_reason(exc)}"
    except UnicodeDecodeError:
        return False, False, "cannot read password_file: not UTF-8"
    context = ssl.create_default_context()
    try:
        if mail.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                mail.host, mail.port, timeout=mail.timeout_seconds, context=context
            )
        else:
            client = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_seconds)
        with client:
            if mail.starttls:
                client.starttls(context=context)
            if mail.username and password is not None:
                client.login(mail.username, password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        return False, False, f"SMTP login refused ({exc.smtp_code})"
    except smtplib.SMTPRecipientsRefused as exc:
        return False, False, f"SMTP refused all {len(exc.recipients)} recipients"
    except smtplib.SMTPResponseException as exc:
        return False, 400 <= exc.smtp_code < 500, f"SMTP error {exc.smtp_code}"
    except smtplib.SMTPNotSupportedError:
        return False, False, "SMTP server does not support STARTTLS or AUTH"
    except smtplib.SMTPException as exc:
        return False, True, f"SMTP {type(exc).__name__}"
    except OSError as exc:
        return False, _transient(exc), _os_reason(exc)
    if refused:
        return True, False, f"sent; {len(refused)} of {len(mail.recipients)} recipients refused"
    return True, False, f"sent to {len(mail.recipients)} recipients"


def _deliver_email(settings: NotifySettings, mail: EmailSettings, event: Event) -> Delivery:
    message = email_message(mail, event)
    ok, detail, attempts = _with_retry(settings, lambda: _smtp_once(mail, message))
    return Delivery("email", f"smtp://{mail.host}:{mail.port}", ok, detail, attempts)


# --- public entry points ----------------------------------------------------------------


def _deliver_all(settings: NotifySettings, event: Event) -> list[Delivery]:
    deliveries = [_deliver_webhook(settings, hook, event) for hook in settings.webhooks]
    if settings.email is not None:
        deliveries.append(_deliver_email(settings, settings.email, event))
    return deliveries


def send(settings: NotifySettings, event: Event) -> list[Delivery]:
    """Deliver `event` to every channel when the level allows it; [] when it does not.

    Channels run one after another, each with its own retries, so the worst case is
    about channels x attempts x timeout: call this off any latency-sensitive thread."""
    if not should_send(settings, event.severity):
        return []
    return _deliver_all(settings, event)


def send_test(settings: NotifySettings) -> list[Delivery]:
    """Send a test event to every channel whatever the level (`strongroom notify test`).
    The dead-man URL is left alone: a test ping would report a backup that never ran."""
    event = Event(
        kind="daemon",
        severity="info",
        title="Test notification",
        message="Strongroom can reach this channel. No action is needed.",
    )
    return _deliver_all(settings, event)


def ping_deadman(settings: NotifySettings, ok: bool) -> Delivery | None:
    """GET the dead-man URL after a successful backup (or the fail URL after a failed
    one), so an external monitor notices when backups stop, including when this host is
    down and cannot send anything itself. None when no URL is configured for `ok`."""
    url = settings.deadman_url if ok else settings.deadman_fail_url
    if url is None:
        return None
    headers = {"User-Agent": "strongroom-notify"}
    timeout = settings.deadman_timeout_seconds
    delivered, detail, attempts = _with_retry(
        settings, lambda: _http_once(url, "GET", None, headers, timeout)
    )
    return Delivery("deadman", redact_url(url), delivered, detail, attempts)
