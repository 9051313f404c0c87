"""A fixed stand-in for the daemon, for layout snapshots and offline checks: every answer
comes from FIXED (or, for the management tabs, MANAGE_FIXED), no event ever arrives and
the clock is stopped, so no clock, uptime or random id reaches a frame. Shared by the
snapshot modules (test_console_*_snapshots) and the tests that drive the console
without a daemon; every other console test talks to a real daemon."""
from __future__ import annotations

import asyncio
import datetime

from strongroom.console.app import StrongroomConsole
from strongroom.console.client import ClientError

RUN_ID = "01a2061f-77c9-7000-a71a-77552702252a"
FIXED = {
    "whoami": {"actor": "auditor1", "permissions": ["audit:read", "compliance:read", "security:read"],
               "session_id": "01a2061f-0000-7000-8000-000000000001"},
    "status": {"host": "vault-01", "role": "leader", "job_kinds": ["integrity", "key_rotation"]},
    "health": {"role": "leader", "uptime_seconds": 93784.0, "last_backup_age_seconds": 7260.0,
               "audit_chain_ok": True, "open_conflicts": 2, "sync_peers": 1, "sync_lag_seconds": 840.0,
               "integrity": {"status": "succeeded", "age_seconds": 3900.0},
               "running_jobs": [{"run_id": RUN_ID, "kind": "integrity", "done": 3, "total": 8,
                                 "message": "clients row checksums"}],
               "next_runs": {"backup": "2026-11-24T02:00:00+00:00", "integrity": "2026-11-24T03:30:00+00:00"},
               "compliance": {"score": 84, "threshold": 80, "status": "ok", "not_configured": ["sync"],
                              "generated_at": "2026-11-23T09:00:00+00:00"},
               "backups": {"window_days": 7, "succeeded": 7, "failed": 1},
               "storage": {"database_bytes": 843_000_000, "bytes_per_table": True,
                           "tables": [{"table": "therapy_sessions", "rows": 300_000, "bytes": 612_000_000},
                                      {"table": "clients", "rows": 100_000, "bytes": 171_000_000},
                                      {"table": "audit_logs", "rows": 52_310, "bytes": 24_500_000}],
                           "targets": [{"configuration": "default", "used_bytes": 402_000_000,
                                        "quota_bytes": 500_000_000, "percent": 80.4}]}},
    "compliance.report.get": {"score": 84, "areas": {}, "checks": []},
    "job.list": [{"id": f"run-{i}", "job_kind": "integrity", "status": "succeeded", "duration_seconds": d,
                   "queued_at": "2026-11-22T03:30:00+00:00", "trigger": "schedule", "requested_by": "system",
                   "progress_done": 9, "progress_total": 9, "progress_unit": "checks"}
                  for i, d in enumerate([4.1, 3.9, 5.2, 4.4, 6.8, 4.0, 4.2, 3.8])],
    "audit.verify": {"ok": True, "checked": 5, "head_id": 5, "head_hash": "0" * 64},
    "backup.list": [], "audit.tail": [], "session.list": [], "security.event.list": [], "user.list": [],
    "integrity.report.get": {"latest": None, "checks": [], "running": [], "history": [],
                         "audit_chain": {"ok": True, "head_id": 5, "head_hash": "0" * 64, "last_check": None}},
}


class FixedSubscription:
    async def recv(self):
        await asyncio.Event().wait()    # no events: the frame shows the loaded state only

    def close(self) -> None:
        pass


class FixedClient:
    """Answers like the daemon would, from FIXED."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd not in FIXED:
            raise ClientError("not_found", f"no fixed answer for {cmd}")
        return FIXED[cmd]

    def subscribe(self, *topics: str) -> FixedSubscription:
        return FixedSubscription()

    def close(self) -> None:
        pass


def fixed_clock() -> datetime.datetime:
    """The time snapshots show in the status line's "updated" stamp."""
    return datetime.datetime(2026, 11, 23, 9, 0, 5)


def fixed_app(token: str | None) -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock,
                             client=FixedClient(token))


USER = "01a2061f-0000-7000-8000-0000000000{:02d}"
MANAGE_FIXED = {
    **FIXED,
    "whoami": {"actor": "user:boss", "session_id": "01a2061f-0000-7000-8000-000000000001",
               "permissions": ["table:*:*", "phi:read", "user:manage", "session:revoke", "audit:read",
                               "security:read", "compliance:read", "config:read", "job:backup:run",
                               "job:integrity:run"]},
    "user.list": [
        {"id": USER.format(1), "username": "boss", "role": "ADMIN", "totp_enabled": True, "failed_logins": 0,
         "locked_until": None, "disabled": False, "last_login_at": "2026-11-23T08:01:12+00:00"},
        {"id": USER.format(2), "username": "dr.hollis", "role": "PRACTITIONER", "totp_enabled": False,
         "failed_logins": 2, "locked_until": None, "disabled": False, "last_login_at": "2026-11-22T16:40:00+00:00"},
        {"id": USER.format(3), "username": "frontdesk", "role": "STAFF", "totp_enabled": False, "failed_logins": 0,
         "locked_until": "9999-12-31T00:00:00+00:00", "disabled": False, "last_login_at": None},
        {"id": USER.format(4), "username": "ops", "role": "operator", "totp_enabled": True, "failed_logins": 0,
         "locked_until": None, "disabled": False, "last_login_at": "2026-11-20T03:30:00+00:00"},
    ],
    "user.grant.list": [
        {"id": "g-1", "permission": "audit:read", "granted_by": "user:boss", "reason": "case review",
         "expires_at": "2026-11-24T08:00:00+00:00", "revoked_at": None, "active": True},
        {"id": "g-2", "permission": "table:client_files:read", "granted_by": "local:0", "reason": "",
         "expires_at": "2026-10-01T00:00:00+00:00", "revoked_at": "2026-09-30T12:00:00+00:00", "active": False},
    ],
    "integrity.report.get": {
        "latest": {"id": "run-7", "status": "failed", "trigger": "schedule", "requested_by": "system",
                   "finished_at": "2026-11-23T03:30:09+00:00", "duration_seconds": 9.2,
                   "error": "IntegrityFailure: integrity checks failed: therapy_sessions row checksums"},
        "checks": [
            {"name": "audit chain", "status": "passed", "expected": "every entry links and hashes",
             "actual": "intact", "evidence": {"checked": 5120, "broken_id": None, "reason": None}},
            {"name": "practices row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 1, "mismatched": 0, "ids": []}},
            {"name": "clients row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 240, "mismatched": 0, "ids": []}},
            {"name": "therapy_sessions row checksums", "status": "failed", "expected": "0 mismatches",
             "actual": "1 mismatches", "evidence": {"checked": 1920, "mismatched": 1,
                                                    "ids": ["01a2061f-5555-7000-8000-000000000042"]}},
            {"name": "client_files row checksums", "status": "passed", "expected": "0 mismatches",
             "actual": "0 mismatches", "evidence": {"checked": 0, "mismatched": 0, "ids": []}},
        ],
        "running": [],
        "history": [{"id": f"run-{i}", "status": s} for i, s in enumerate(["failed", "succeeded", "succeeded"])],
        "audit_chain": {"ok": True, "head_id": 5120, "head_hash": "0" * 64,
                        "last_check": {"status": "passed", "completed_at": "2026-11-23T03:30:02+00:00"}},
    },
    "practice.show": {"id": "01a2061f-0000-7000-8000-00000000aa01", "name": "Harbour Street Therapy",
                      "timezone": "Europe/London", "address": "12 Harbour Street, Leith", "phone": "+44 131 555 0100",
                      "email": "office@harbour.example", "tax_id": "GB123456789", "license_number": "HCPC-0042"},
    "staff.list": {"items": [
        {"id": "01a2061f-0000-7000-8000-00000000bb01", "first_name": "Mara", "last_name": "Hollis",
         "role": "PRACTITIONER", "email": "m.hollis@harbour.example", "phone": None, "hourly_rate_cents": 9500,
         "active": True},
        {"id": "01a2061f-0000-7000-8000-00000000bb02", "first_name": "Theo", "last_name": "Grant", "role": "STAFF",
         "email": None, "phone": "+44 131 555 0101", "hourly_rate_cents": None, "active": False}]},
    "service.list": {"items": [
        {"id": "01a2061f-0000-7000-8000-00000000cc01", "name": "Individual session", "category": "therapy",
         "description": None, "duration_minutes": 50, "price_cents": 9000, "active": True},
        {"id": "01a2061f-0000-7000-8000-00000000cc02", "name": "Couples intake", "category": "assessment",
         "description": "first visit", "duration_minutes": 80, "price_cents": 13500, "active": True}]},
}


def _roles(permissions: list[str]) -> list[dict]:
    """roles.list as the daemon answers it for a caller holding `permissions`."""
    from strongroom.core.principal import Principal
    from strongroom.daemon.commands import Call
    from strongroom.daemon.commands_users import roles_list_cmd

    call = Call(principal=Principal(actor="user:boss", permissions=frozenset(permissions)), args=None, peer=None)
    return roles_list_cmd(None, call)


MANAGE_FIXED["role.list"] = _roles(MANAGE_FIXED["whoami"]["permissions"])


class ManageClient(FixedClient):
    async def call(self, cmd: str, args: dict | None = None, *, timeout: float | None = None):
        if cmd in MANAGE_FIXED:
            return MANAGE_FIXED[cmd]
        return await super().call(cmd, args, timeout=timeout)


def manage_app() -> StrongroomConsole:
    return StrongroomConsole("ipc:///nonexistent", "ipc:///nonexistent-events", clock=fixed_clock, client=ManageClient("fixed-token"))
