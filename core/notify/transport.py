"""HTTP for webhooks and the dead-man switch: one request with a short timeout, no
redirects followed and no proxy from the environment, and a small bounded retry for
transient failures (5xx, 408, 429, timeouts; never a TLS verification failure).
Details never include the URL: it is a credential."""
from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from strongroom.core.notify.settings import _RETRY_STATUSES, NotifySettings

# Exposed to the SMTP channel, which reports OS errors the same way.
__all__ = ["http_once", "transient", "os_reason", "with_retry"]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would replay our headers (an Authorization token) to wherever a 3xx points;
    # a webhook that moved must be reconfigured, not followed.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


# No ProxyHandler from the environment: where requests go is decided by the config alone.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def http_once(
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
        retry = exc.code >= 500 or exc.code in _RETRY_STATUSES
        what = "redirect not followed" if 300 <= exc.code < 400 else "refused"
        return False, retry, f"HTTP {exc.code} {what}"
    except urllib.error.URLError as exc:
        return False, transient(exc.reason), os_reason(exc.reason)
    except (http.client.HTTPException, OSError) as exc:
        return False, transient(exc), os_reason(exc)


def transient(reason: object) -> bool:
    # A certificate that fails verification will fail the same way a second later.
    return not isinstance(reason, ssl.SSLError)


def os_reason(reason: object) -> str:
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error: {reason.reason or type(reason).__name__}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    # Never str(exception): some messages quote the request, and a URL is a credential.
    return type(reason).__name__ if isinstance(reason, BaseException) else "connection failed"


def with_retry(
    settings: NotifySettings, attempt_once: Callable[[], tuple[bool, bool, str]]
) -> tuple[bool, str, int]:
    """Run `attempt_once` up to retry_attempts times, backing off 1x, 2x, 4x ... while it
    reports a transient failure; a permanent one (4xx, auth refused) stops at once."""
    for attempt in range(1, settings.retry_attempts + 1):
        ok, retry, detail = attempt_once()
        if ok or not retry or attempt == settings.retry_attempts:
            return ok, detail, attempt
        time.sleep(settings.retry_backoff_seconds * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
