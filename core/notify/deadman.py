"""Dead-man switch: a GET after each backup (healthchecks.io style), so silence itself
raises an alarm elsewhere, even when this host is down."""
from __future__ import annotations

from strongroom.core.notify.events import Delivery, redact_url
from strongroom.core.notify.settings import NotifySettings
from strongroom.core.notify.transport import http_once, with_retry


def ping_deadman(settings: NotifySettings, ok: bool) -> Delivery | None:
    """GET the dead-man URL after a successful backup (or the fail URL after a failed
    one), so an external monitor notices when backups stop, including when this host is
    down and cannot send anything itself. None when no URL is configured for `ok`."""
    url = settings.deadman_url if ok else settings.deadman_fail_url
    if url is None:
        return None
    headers = {"User-Agent": "strongroom-notify"}
    timeout = settings.deadman_timeout_seconds
    delivered, detail, attempts = with_retry(
        settings, lambda: http_once(url, "GET", None, headers, timeout)
    )
    return Delivery("deadman", redact_url(url), delivered, detail, attempts)
