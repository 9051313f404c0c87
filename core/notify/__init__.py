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

Layout: `settings` (the config section), `events` (Event, Delivery, level, redaction),
`transport` (HTTP with retries), one module per channel (`webhook`, `smtp`, `deadman`),
and here the entry points that send to every channel.
"""
from __future__ import annotations

import importlib

from strongroom.core.notify.events import Delivery, Event, redact_url, should_send
from strongroom.core.notify.settings import EmailSettings, Level, NotifySettings, Severity, WebhookSettings

# The channels (HTTP, SMTP and the email package behind them) load on first use: every
# process reads the config, which holds NotifySettings, and most never send anything
# (an export or `clients list` process paid ~30 ms for them at start).
_CHANNELS = {"ping_deadman": "deadman", "email_message": "smtp", "_deliver_email": "smtp",
             "json_payload": "webhook", "ntfy_request": "webhook", "slack_payload": "webhook",
             "_deliver_webhook": "webhook"}


def __getattr__(name: str):
    module = _CHANNELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

__all__ = ["Delivery", "EmailSettings", "Event", "Level", "NotifySettings", "Severity", "WebhookSettings",
           "email_message", "json_payload", "ntfy_request", "ping_deadman", "redact_url", "send", "send_test",
           "should_send", "slack_payload"]


def _deliver_all(settings: NotifySettings, event: Event) -> list[Delivery]:
    from strongroom.core.notify.smtp import _deliver_email
    from strongroom.core.notify.webhook import _deliver_webhook
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
