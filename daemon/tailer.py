"""The audit and security-event tailer: new rows, written by any process, become events.

Audit entries and security events are written to the database by whichever process
acts (the CLI, a standby, this daemon's commands); the daemon's PUB socket is how a
console watching the `audit` and `security` topics hears of them. Each health
interval the tailer reads the rows past the last id it published (at most 500 of
each), in id order. It starts at the newest rows present, so a restart does not
replay history. A medium-severity `new_device` event also sends the new-device
notification, from the leader only (one mail, not one per daemon).

What is published says that something happened and of what kind, never who or about
whom: no actor, record id, username or address. Every subscriber of the PUB socket
receives every event, whatever their permissions or practice (a subscription is not a
login), so the tabs that listen reload through the commands that check both.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select

from strongroom.core.context import Context
from strongroom.core.db.models import AuditLog, SecurityEvent
from strongroom.daemon.notifications import new_device


class Tailer:
    """Publishes audit entries and security events newer than the last seen ids."""

    def __init__(self, ctx: Context, publish: Callable[[str, dict], None],
                 is_leader: Callable[[], bool]) -> None:
        self.ctx = ctx
        self.publish = publish
        self.is_leader = is_leader
        self.last_audit_id = 0
        self.last_security_id = 0

    def publish_new_rows(self) -> None:
        """New audit entries and security events, from any process, become PUB events."""
        logs_t, events_t = AuditLog.__table__, SecurityEvent.__table__
        with self.ctx.engine.connect() as conn:
            if not self.last_audit_id:
                self.last_audit_id = conn.execute(select(func.max(logs_t.c.id))).scalar() or 0
                self.last_security_id = conn.execute(select(func.max(events_t.c.id))).scalar() or 0
                return
            for row in conn.execute(select(logs_t.c.id, logs_t.c.occurred_at, logs_t.c.action,
                                           logs_t.c.table_name, logs_t.c.outcome)
                                    .where(logs_t.c.id > self.last_audit_id).order_by(logs_t.c.id).limit(500)).mappings():
                self.last_audit_id = row["id"]
                self.publish("audit", dict(row))
            for row in conn.execute(select(events_t.c.id, events_t.c.occurred_at, events_t.c.event_type,
                                           events_t.c.severity, events_t.c.username, events_t.c.ip_address)
                                    .where(events_t.c.id > self.last_security_id).order_by(events_t.c.id).limit(500)).mappings():
                self.last_security_id = row["id"]
                self.publish("security", {k: row[k] for k in ("id", "occurred_at", "event_type", "severity")})
                if (row["event_type"] == "new_device" and row["severity"] == "medium"
                        and self.ctx.settings.auth.notify_new_device and self.is_leader()):
                    new_device(self.ctx.settings, row["username"], row["occurred_at"])
