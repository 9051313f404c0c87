"""Email channel: a plain-text message over SMTP (implicit TLS or STARTTLS), the
password read from its file at send time and never reported."""
from __future__ import annotations

import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from strongroom.core.notify.events import Delivery, Event
from strongroom.core.notify.settings import _CONTROL, EmailSettings, NotifySettings
from strongroom.core.notify.transport import os_reason, transient, with_retry


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
        return False, False, f"cannot read password_file: {os_reason(exc)}"
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
        return False, transient(exc), os_reason(exc)
    if refused:
        return True, False, f"sent; {len(refused)} of {len(mail.recipients)} recipients refused"
    return True, False, f"sent to {len(mail.recipients)} recipients"


def _deliver_email(settings: NotifySettings, mail: EmailSettings, event: Event) -> Delivery:
    message = email_message(mail, event)
    ok, detail, attempts = with_retry(settings, lambda: _smtp_once(mail, message))
    return Delivery("email", f"smtp://{mail.host}:{mail.port}", ok, detail, attempts)
