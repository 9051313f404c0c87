"""What the PUB socket publishes says that something happened and of what kind, never
who or about whom: every subscriber receives every event, whatever their permissions or
practice (a subscription is not a login), so names, record ids and addresses are read
through the commands that check both (audit.tail, security.event.list, user.list)."""
from __future__ import annotations

import asyncio
import json

from tests.daemon.conftest import FAST_HEALTH, login, make_data_dir, running_daemon

AUDIT_FIELDS = {"id", "occurred_at", "action", "table_name", "outcome"}
SECURITY_ROW_FIELDS = {"id", "occurred_at", "event_type", "severity"}


def test_audit_security_and_login_events_carry_no_name_record_or_address(tmp_path, db_url):
    data_dir = make_data_dir(tmp_path, db_url, extra=FAST_HEALTH)
    with running_daemon(data_dir, tmp_path) as daemon:
        clinician = next(u for u in daemon.call("user.list") if u["username"] == "clinician")

        async def watch() -> list[tuple[str, dict]]:
            client = daemon.client()
            events = client.subscribe("audit", "security", "sync.")
            try:
                await asyncio.sleep(0.5)            # ZeroMQ's slow joiner
                await asyncio.to_thread(login, daemon, "auditor1")
                await asyncio.to_thread(daemon.call, "user.lock", {"username": "clinician", "reason": "on leave"})
                seen: list[tuple[str, dict]] = []
                deadline = asyncio.get_running_loop().time() + 4       # a few tailer intervals
                while (left := deadline - asyncio.get_running_loop().time()) > 0:
                    try:
                        seen.append(await asyncio.wait_for(events.recv(), left))
                    except TimeoutError:
                        break
                return seen
            finally:
                events.close()
                client.close()

        seen = asyncio.run(watch())
    audit = [data for topic, data in seen if topic == "audit"]
    rows = [data for topic, data in seen if topic == "security" and "event_type" in data]
    outcomes = [data for topic, data in seen if topic == "security" and "event" in data]
    assert audit and rows and outcomes, seen
    assert all(set(entry) == AUDIT_FIELDS for entry in audit)
    assert all(set(row) == SECURITY_ROW_FIELDS for row in rows)
    assert {"event": "login", "outcome": "success"} in outcomes
    assert all(set(o) <= {"event", "outcome", "action"} for o in outcomes)
    published = json.dumps(seen, default=str)
    for secret in ("auditor1", "clinician", "203.0.113.7", "test-host", clinician["id"], "on leave"):
        assert secret not in published
