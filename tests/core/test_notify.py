"""Notifications against real receivers: an HTTP server and an SMTP sink on 127.0.0.1.

Every network wait is bounded (timeouts of 2 s or less, backoff of 10 ms), and nothing
leaves the loopback interface.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pydantic
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from strongroom.core.errors import ValidationError
from strongroom.core.notify import (
    Delivery,
    Event,
    NotifySettings,
    ping_deadman,
    redact_url,
    send,
    send_test,
    should_send,
)

FAST = {"retry_attempts": 3, "retry_backoff_seconds": 0.01}


# --- a real HTTP receiver ---------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers the scripted statuses in order, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            receiver.requests.append(
                Received(self.command, self.path, dict(self.headers.items()), body)
            )
            status = receiver.script.pop(0) if receiver.script else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.url("/elsewhere"))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def receiver():
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(rec))
    rec.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a real SMTP sink -------------------------------------------------------------------


@dataclass
class Sink:
    port: int = 0
    messages: list = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    password: str = "correct horse battery staple"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(
            success=password == self.password, handled=False
        )  # False: sink answers 535


@pytest.fixture
def smtp_sink():
    sink = Sink(port=_closed_port())
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=sink.authenticate,
        auth_require_tls=False,  # loopback only; the settings forbid this elsewhere
        ready_timeout=2.0,
    )
    controller.start()
    yield sink
    controller.stop()


def _email(sink: Sink, **extra) -> dict:
    return {
        "host": "127.0.0.1",
        "port": sink.port,
        "starttls": False,
        "sender": "strongroom@clinic.example",
        "recipients": ["ops@clinic.example", "owner@clinic.example"],
        "timeout_seconds": 2,
        **extra,
    }


def _failure() -> Event:
    return Event(
        kind="backup",
        severity="failure",
        title="Backup failed",
        message="Storage target is full.",
        fields={"job_run": "42", "tables": 7},
    )


def _hook(url: str, **extra) -> dict:
    return {"url": url, "timeout_seconds": 2, **extra}


# --- payloads as received ---------------------------------------------------------------


def test_json_webhook_receives_the_documented_schema(receiver):
    settings = NotifySettings(webhooks=[_hook(receiver.url())], **FAST)
    [delivery] = send(settings, _failure())
    assert delivery == Delivery(
        "webhook", f"http://127.0.0.1:{receiver.port}/...", True, "HTTP 200", 1
    )
    [request] = receiver.requests
    assert (request.method, request.path, request.headers["Content-Type"]) == (
        "POST",
        "/hook",
        "application/json",
    )
    payload = json.loads(request.body)
    assert set(payload) == {
        "source",
        "version",
        "severity",
        "kind",
        "title",
        "message",
        "fields",
        "occurred_at",
        "host",
    }
    assert payload["source"] == "strongroom" and payload["version"] == 1
    assert (payload["severity"], payload["kind"], payload["title"]) == (
        "failure",
        "backup",
        "Backup failed",
    )
    assert payload["message"] == "Storage target is full."
    assert payload["fields"] == {"job_run": "42", "tables": 7}
    assert payload["occurred_at"].endswith("+00:00")
    assert payload["host"] == socket.gethostname()


def test_slack_webhook_receives_text_and_blocks_with_mrkdwn_escaped(receiver):
    settings = NotifySettings(webhooks=[_hook(receiver.url(), style="slack")], **FAST)
    event = Event(
        "sync", "warning", "Conflicts <queued>", "3 conflicts & 1 retry", {"peer": "site-b"}
    )
    [delivery] = send(NotifySettings(level="warnings", webhooks=settings.webhooks, **FAST), event)
    assert delivery.ok
    payload = json.loads(receiver.requests[0].body)
    assert payload["text"].startswith("[WARNING] sync: Conflicts &lt;queued&gt;")
    assert "3 conflicts &amp; 1 retry" in payload["text"] and "peer: site-b" in payload["text"]
    section, context = payload["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "*[WARNING] sync: Conflicts &lt;queued&gt;*" in section["text"]["text"]
    assert context["type"] == "context"


def test_ntfy_webhook_receives_plain_text_with_title_priority_and_tags(receiver):
    settings = NotifySettings(
        webhooks=[_hook(receiver.url("/clinic-alerts"), style="ntfy")], **FAST
    )
    send(settings, _failure())
    [request] = receiver.requests
    assert request.headers["Title"] == "backup: Backup failed"
    assert request.headers["Priority"] == "high"
    assert request.headers["Tags"] == "rotating_light,strongroom,backup"
    assert request.headers["Content-Type"].startswith("text/plain")
    assert request.body.decode().splitlines()[:3] == [
        "Storage target is full.",
        "job_run: 42",
        "tables: 7",
    ]


def test_ntfy_title_outside_ascii_is_rfc2047_encoded(receiver):
    settings = NotifySettings(
        level="everything", webhooks=[_hook(receiver.url(), style="ntfy")], **FAST
    )
    send(settings, Event("export", "info", "Export finished — 3 files", "ok"))
    title = receiver.requests[0].headers["Title"]
    assert title.startswith("=?UTF-8?B?")
    assert str(make_header(decode_header(title))) == "export: Export finished — 3 files"


def test_configured_headers_are_sent(receiver):
    hook = _hook(receiver.url(), style="ntfy", headers={"Authorization": "Bearer tk_secret"})
    send(NotifySettings(webhooks=[hook], **FAST), _failure())
    assert receiver.requests[0].headers["Authorization"] == "Bearer tk_secret"


# --- levels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "sent"),
    [
        ("failures", {"failure"}),
        ("warnings", {"failure", "warning"}),
        ("everything", {"failure", "warning", "info"}),
    ],
)
def test_level_decides_which_severities_are_sent(receiver, level, sent):
    settings = NotifySettings(level=level, webhooks=[_hook(receiver.url())], **FAST)
    for severity in ("failure", "warning", "info"):
        assert should_send(settings, severity) == (severity in sent)
        deliveries = send(settings, Event("backup", severity, "t", "m"))
        assert len(deliveries) == (severity in sent)
    assert {json.loads(r.body)["severity"] for r in receiver.requests} == sent


def test_send_test_reaches_every_channel_whatever_the_level(receiver, smtp_sink):
    settings = NotifySettings(
        level="failures",
        webhooks=[_hook(receiver.url("/a")), _hook(receiver.url("/b"), style="ntfy")],
        email=_email(smtp_sink),
        deadman_url=receiver.url("/ping"),
        **FAST,
    )
    deliveries = send_test(settings)
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("webhook", True),
        ("webhook", True),
        ("email", True),
    ]
    # The dead-man switch is not pinged: a test is not a successful backup.
    assert sorted(r.path for r in receiver.requests) == ["/a", "/b"]
    assert json.loads(receiver.requests[0].body)["severity"] == "info"
    assert "Test notification" in smtp_sink.messages[0][2]["Subject"]


# --- retries and failures ---------------------------------------------------------------


def test_server_error_is_retried_until_success(receiver):
    receiver.script = [500, 503]
    [delivery] = send(NotifySettings(webhooks=[_hook(receiver.url())], **FAST), _failure())
    assert (delivery.ok, delivery.attempts, delivery.detail) == (True, 3, "HTTP 200")
    assert len(receiver.requests) == 3


def test_server_error_every_time_gives_up_after_the_bound(receiver):
    receiver.script = [500] * 10
    [delivery] = send(NotifySettings(webhooks=[_hook(receiver.url())], **FAST), _failure())
    assert (delivery.ok, delivery.attempts, delivery.detail) == (False, 3, "HTTP 500 refused")
    assert len(receiver.requests) == 3


def test_client_error_is_not_retried_and_reported_failed(receiver):
    receiver.script = [404]
    [delivery] = send(NotifySettings(webhooks=[_hook(receiver.url())], **FAST), _failure())
    assert (delivery.ok, delivery.attempts, delivery.detail) == (False, 1, "HTTP 404 refused")
    assert len(receiver.requests) == 1


def test_redirect_is_not_followed(receiver):
    # urllib would resend our headers (a bearer token) to wherever Location points.
    receiver.script = [302]
    hook = _hook(receiver.url(), headers={"Authorization": "Bearer tk_secret"})
    [delivery] = send(NotifySettings(webhooks=[hook], **FAST), _failure())
    assert (delivery.ok, delivery.detail) == (False, "HTTP 302 redirect not followed")
    assert [r.path for r in receiver.requests] == ["/hook"]


def test_unreachable_receiver_is_reported_quickly_without_raising():
    settings = NotifySettings(webhooks=[_hook(f"http://127.0.0.1:{_closed_port()}/hook")], **FAST)
    started = time.monotonic()
    [delivery] = send(settings, _failure())
    assert time.monotonic() - started < 2
    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert delivery.detail == "Connection refused"


def test_silent_receiver_times_out_within_the_configured_timeout():
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        settings = NotifySettings(webhooks=[_hook(url, timeout_seconds=0.3)], retry_attempts=1)
        started = time.monotonic()
        [delivery] = send(settings, _failure())
    assert time.monotonic() - started < 2
    assert (delivery.ok, delivery.detail) == (False, "timed out")


def test_one_failing_channel_does_not_stop_the_others(receiver, smtp_sink):
    dead = _hook(f"http://127.0.0.1:{_closed_port()}/hook")
    settings = NotifySettings(
        webhooks=[dead, _hook(receiver.url())], email=_email(smtp_sink), **FAST
    )
    deliveries = send(settings, _failure())
    assert [(d.channel, d.ok) for d in deliveries] == [
        ("webhook", False),
        ("webhook", True),
        ("email", True),
    ]
    assert len(receiver.requests) == 1 and len(smtp_sink.messages) == 1


# --- email ------------------------------------------------------------------------------


def test_email_reaches_the_sink_with_subject_recipients_and_body(smtp_sink):
    settings = NotifySettings(email=_email(smtp_sink), **FAST)
    [delivery] = send(settings, _failure())
    assert delivery == Delivery(
        "email", f"smtp://127.0.0.1:{smtp_sink.port}", True, "sent to 2 recipients", 1
    )
    [(mail_from, rcpt_tos, message)] = smtp_sink.messages
    assert mail_from == "strongroom@clinic.example"
    assert rcpt_tos == ["ops@clinic.example", "owner@clinic.example"]
    assert message["Subject"] == "[Strongroom FAILURE] backup: Backup failed"
    assert message["To"] == "ops@clinic.example, owner@clinic.example"
    body = message.get_payload(decode=True).decode()
    assert "Storage target is full." in body and "job_run: 42" in body and "tables: 7" in body


def test_email_password_is_read_from_password_file_at_send_time(smtp_sink, tmp_path):
    password_file = tmp_path / "smtp-password"
    password_file.write_text("an old password\n")
    settings = NotifySettings(
        email=_email(smtp_sink, username="strongroom", password_file=password_file), **FAST
    )
    password_file.write_text(smtp_sink.password + "\n")  # rotated after the config was loaded
    [delivery] = send(settings, _failure())
    assert delivery.ok, delivery.detail
    assert smtp_sink.logins == [("strongroom", smtp_sink.password)]
    assert len(smtp_sink.messages) == 1


def test_refused_login_is_not_retried_and_the_password_stays_out_of_the_detail(smtp_sink, tmp_path):
    password_file = tmp_path / "smtp-password"
    password_file.write_text("Wr0ng-but-s3cret")
    settings = NotifySettings(
        email=_email(smtp_sink, username="strongroom", password_file=password_file), **FAST
    )
    [delivery] = send(settings, _failure())
    assert (delivery.ok, delivery.attempts, delivery.detail) == (
        False,
        1,
        "SMTP login refused (535)",
    )
    assert "s3cret" not in repr(delivery)
    assert smtp_sink.messages == []


def test_missing_password_file_is_a_failed_delivery(smtp_sink, tmp_path):
    settings = NotifySettings(
        email=_email(smtp_sink, username="u", password_file=tmp_path / "absent"), **FAST
    )
    [delivery] = send(settings, _failure())
    assert (delivery.ok, delivery.detail) == (
        False,
        "cannot read password_file: No such file or directory",
    )


def test_starttls_is_never_silently_skipped(smtp_sink):
    # The sink offers no STARTTLS: sending in clear instead would be a silent downgrade.
    settings = NotifySettings(email=_email(smtp_sink, starttls=True), **FAST)
    [delivery] = send(settings, _failure())
    assert (delivery.ok, delivery.detail) == (
        False,
        "SMTP server does not support STARTTLS or AUTH",
    )
    assert smtp_sink.messages == []


# --- dead-man switch --------------------------------------------------------------------


def test_deadman_url_is_pinged_after_success_and_fail_url_after_failure(receiver):
    settings = NotifySettings(
        deadman_url=receiver.url("/ping/abc"),
        deadman_fail_url=receiver.url("/ping/abc/fail"),
        **FAST,
    )
    assert ping_deadman(settings, ok=True) == Delivery(
        "deadman", f"http://127.0.0.1:{receiver.port}/...", True, "HTTP 200", 1
    )
    assert ping_deadman(settings, ok=False).ok
    assert [(r.method, r.path) for r in receiver.requests] == [
        ("GET", "/ping/abc"),
        ("GET", "/ping/abc/fail"),
    ]


def test_deadman_without_urls_does_nothing(receiver):
    assert ping_deadman(NotifySettings(), ok=True) is None
    assert ping_deadman(NotifySettings(deadman_url=receiver.url("/ping")), ok=False) is None
    assert receiver.requests == []


def test_deadman_ping_is_retried_on_server_error(receiver):
    receiver.script = [502]
    delivery = ping_deadman(NotifySettings(deadman_url=receiver.url("/ping"), **FAST), ok=True)
    assert (delivery.ok, delivery.attempts) == (True, 2)


# --- secrets ----------------------------------------------------------------------------


def test_webhook_tokens_and_query_strings_never_reach_the_delivery(receiver):
    receiver.script = [404, 500, 500, 500]
    secret_urls = [
        receiver.url("/services/T000/B000/s3cretToken"),
        receiver.url("/topic?auth=s3cretToken"),
    ]
    settings = NotifySettings(webhooks=[_hook(url) for url in secret_urls], **FAST)
    deliveries = send(settings, _failure())
    assert [d.ok for d in deliveries] == [False, False]
    for delivery in deliveries:
        assert delivery.target == f"http://127.0.0.1:{receiver.port}/..."
        assert "s3cret" not in repr(delivery) and "services" not in repr(delivery)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T/B/XYZ", "https://hooks.slack.com/..."),
        ("https://ntfy.sh/my-private-topic", "https://ntfy.sh/..."),
        ("https://hc-ping.com/0f6b-uuid?create=1", "https://hc-ping.com/..."),
        ("https://user:pass@example.org:8443/", "https://example.org:8443"),
        ("http://[::1]:9000/x", "http://[::1]:9000/..."),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_port(url, shown):
    assert redact_url(url) == shown


# --- invalid settings and events --------------------------------------------------------


def _error_locations(exc: pytest.ExceptionInfo) -> list[tuple]:
    return [tuple(err["loc"]) for err in exc.value.errors()]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        ({"webhooks": [{"url": "ftp://example.org/hook"}]}, ("webhooks", 0, "url")),
        (
            {"webhooks": [{"url": "https://example.org/x", "style": "teams"}]},
            ("webhooks", 0, "style"),
        ),
        (
            {"webhooks": [{"url": "https://example.org/x", "headers": {"X-A": "a\r\nX-B: b"}}]},
            ("webhooks", 0, "headers"),
        ),
        ({"deadman_url": "file:///etc/passwd"}, ("deadman_url",)),
        ({"deadman_fail_url": "hc-ping.com/abc/fail"}, ("deadman_fail_url",)),
        ({"level": "all"}, ("level",)),
        ({"levle": "failures"}, ("levle",)),
        (
            {"email": {"host": "mx", "sender": "not-an-address", "recipients": ["a@b.example"]}},
            ("email", "sender"),
        ),
        (
            {
                "email": {
                    "host": "mx",
                    "sender": "a@b.example",
                    "recipients": ["ok@b.example", "x@y, z@w"],
                }
            },
            ("email", "recipients"),
        ),
        (
            {"email": {"host": "mx", "sender": "a@b.example", "recipients": []}},
            ("email", "recipients"),
        ),
        (
            {
                "email": {
                    "host": "mx",
                    "sender": "a@b.example",
                    "recipients": ["c@d.example"],
                    "password": "x",
                }
            },
            ("email", "password"),
        ),
    ],
)
def test_invalid_settings_name_the_field(data, loc):
    with pytest.raises(pydantic.ValidationError) as exc:
        NotifySettings.model_validate(data)
    assert loc in _error_locations(exc)


@pytest.mark.parametrize(
    "email",
    [
        {"ssl": True, "starttls": True},
        {"username": "u"},  # no password_file
        {
            "username": "u",
            "password_file": "/run/secret",
            "starttls": False,
            "host": "mail.example.org",
        },
    ],
)
def test_incoherent_email_settings_are_refused(email):
    data = {
        "host": "mail.example.org",
        "sender": "a@b.example",
        "recipients": ["c@d.example"],
        **email,
    }
    with pytest.raises(pydantic.ValidationError) as exc:
        NotifySettings.model_validate({"email": data})
    assert ("email",) in _error_locations(exc)


def test_settings_are_frozen():
    settings = NotifySettings()
    with pytest.raises(pydantic.ValidationError):
        settings.level = "everything"


def test_events_refuse_an_unknown_severity_or_naive_time():
    from datetime import datetime

    with pytest.raises(ValidationError, match="severity"):
        Event("backup", "critical", "t", "m")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="timezone"):
        Event("backup", "info", "t", "m", occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="field"):
        Event("backup", "info", "t", "m", fields={"rows": [1, 2]})  # type: ignore[dict-item]
