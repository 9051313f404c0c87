"""What the daemon tells people, built on strongroom.core.notify.

Deliveries can take seconds (retries, slow SMTP), so every send runs in a short-lived
thread and never holds up a job or the control loop; outcomes are logged (targets are
already redacted by core.notify) for the sysadmin to see why a message did not arrive.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import datetime

from strongroom.core.config import Settings
from strongroom.core.jobs.runs import Run
from strongroom.core.notify import Event, ping_deadman, send
from strongroom.core.notify import send_test as _send_test

log = logging.getLogger("strongroom.notify")


def _log(deliveries) -> None:
    for d in deliveries:
        if d is None:
            continue
        (log.info if d.ok else log.warning)("notification delivery", extra={
            "channel": d.channel, "target": d.target, "ok": d.ok, "detail": d.detail, "attempts": d.attempts})


def _background(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=lambda: _log(fn(*args)), name="notify", daemon=True)
    thread.start()
    return thread


def job_failed(settings: Settings, run: Run) -> threading.Thread:
    event = Event(kind=run.job_kind, severity="failure",
                  title=f"{run.job_kind} run {run.status}",
                  message=f"The {run.job_kind} run {run.id} ({run.trigger}) ended {run.status}: {run.error or 'no detail'}",
                  fields={"run_id": str(run.id), "status": run.status, "trigger": run.trigger})

    def deliver():
        out = send(settings.notify, event)
        if run.job_kind == "backup":
            out.append(ping_deadman(settings.notify, ok=False))
        return out
    return _background(deliver)


def backup_succeeded(settings: Settings, run: Run) -> threading.Thread:
    event = Event(kind="backup", severity="info", title="backup succeeded",
                  message=f"Backup run {run.id} succeeded.", fields={"run_id": str(run.id)})
    return _background(lambda: send(settings.notify, event) + [ping_deadman(settings.notify, ok=True)])


def runs_missed(settings: Settings, kind: str, count: int, first: datetime) -> threading.Thread:
    event = Event(kind=kind, severity="warning", title=f"{count} scheduled {kind} run(s) missed",
                  message=f"The daemon was down when {count} scheduled {kind} run(s) were due "
                          f"(first at {first.isoformat()}).",
                  fields={"missed": count, "first_due": first.isoformat()})
    return _background(send, settings.notify, event)


def send_test(settings: Settings) -> list[dict]:
    """Synchronous: the caller (notification.test) wants to see each channel's outcome."""
    deliveries = _send_test(settings.notify)
    _log(deliveries)
    return [dataclasses.asdict(d) for d in deliveries]


def sync_peer_failing(settings: Settings, peer: str, failures: int, last_error: str | None) -> threading.Thread:
    """A peer's passes failed `failures` times in a row ([sync] notify_after_failures).
    The peer's name and the engine's own error text (no address, no rows) only."""
    event = Event(kind="sync", severity="failure", title=f"sync with {peer} failing",
                  message=f"{failures} sync passes in a row with peer {peer} failed; the last: "
                          f"{last_error or 'no detail'}. Scheduled passes go on retrying with backoff; "
                          "see `strongroom sync status`.",
                  fields={"peer": peer, "failures": failures})
    return _background(send, settings.notify, event)


def new_device(settings: Settings, username: str | None, occurred_at: datetime) -> threading.Thread:
    """An account logged in from a device it had not used before ([auth]
    notify_new_device). The account name only: which device is in the security event."""
    who = username or "an account"
    event = Event(kind="security", severity="warning", title=f"new device for {who}",
                  message=f"{who} logged in from a device it has not used before. If that was not them, "
                          "lock the account (`strongroom user lock`) and see `strongroom user devices`.",
                  fields={"user": who, "at": occurred_at.isoformat()})
    return _background(send, settings.notify, event)
