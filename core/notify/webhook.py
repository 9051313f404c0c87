"""Webhook channel: a POST in one of three dialects (our JSON schema, Slack-compatible,
ntfy), with the configured extra headers."""
from __future__ import annotations

import base64
import json
import socket
from datetime import UTC

from strongroom.core.notify.events import Delivery, Event, redact_url
from strongroom.core.notify.settings import _CONTROL, NotifySettings, WebhookSettings
from strongroom.core.notify.transport import http_once, with_retry


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


def _deliver_webhook(settings: NotifySettings, hook: WebhookSettings, event: Event) -> Delivery:
    body, headers = _webhook_request(hook, event)
    ok, detail, attempts = with_retry(
        settings, lambda: http_once(hook.url, "POST", body, headers, hook.timeout_seconds)
    )
    return Delivery("webhook", redact_url(hook.url), ok, detail, attempts)
