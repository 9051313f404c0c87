"""The command registry: every control command, its arguments and the permission it needs.

The transport (control.py) only routes: it parses the frame, authenticates the token,
checks the permission named here and calls the handler. A handler's docstring is its
help text (`help` lists them). Handlers run in a worker thread, so they may block on
the database; they return JSON-ready data or raise a StrongroomError, which the
transport maps to the protocol's error code.
"""
from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strongroom.core import audit, checkpoints, compliance
from strongroom.core.retention import certificate
from strongroom.core.auth import management
from strongroom.core.auth import login as auth_login
from strongroom.core.auth import sessions as auth_sessions
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.auth.users import list_users
from strongroom.core.db.engine import transaction
from strongroom.core.db.models import Backup, SecurityEvent
from strongroom.core.jobs import KINDS
from strongroom.core.jobs import kind as job_kind
from strongroom.core.jobs.kinds import check_request
from strongroom.core.jobs import runs
from strongroom.core.principal import Principal
from sqlalchemy import select

if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class NoArgs(Args):
    pass


@dataclass(frozen=True)
class Call:
    principal: Principal | None
    args: Any
    peer: str | None
    token: str | None = None
    peer_key: str | None = None     # over TCP: the caller's CURVE public key (a login's device)


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[["Daemon", Call], Any]
    permission: str | None        # None: any authenticated caller
    args: type[Args]
    public: bool = False          # True: no token needed (auth.login, help)
    inline: bool = False          # True: cheap, answered on the event loop (no thread hop)
    pool: Literal["general", "login"] = "general"   # login: the login pool (control.LoginPool)

    @property
    def help(self) -> str:
        return (self.handler.__doc__ or "").strip().splitlines()[0] if self.handler.__doc__ else ""


REGISTRY: dict[str, Command] = {}


def command(name: str, *, permission: str | None, args: type[Args] = NoArgs,
            public: bool = False, inline: bool = False, pool: Literal["general", "login"] = "general"):
    def register(handler):
        if name in REGISTRY:
            raise RuntimeError(f"command {name} registered twice")
        REGISTRY[name] = Command(name, handler, permission, args, public, inline, pool)
        return handler
    return register


# --- session ----------------------------------------------------------------------------

class ClientInfo(Args):
    host: str | None = Field(default=None, max_length=255)
    ssh_connection: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, max_length=64)
    version: str | None = Field(default=None, max_length=32)


class LoginArgs(Args):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=12)
    client: ClientInfo = ClientInfo()


@command("auth.login", permission=None, args=LoginArgs, public=True, pool="login")
def auth_login_cmd(d: "Daemon", call: Call) -> dict:
    """Log in with password and TOTP; returns a session token (shown once), or, for an
    account that must first enrol a second factor, `enrolment_required` with a new secret
    and the token auth.enrol confirms it with."""
    a: LoginArgs = call.args
    try:
        token, session = auth_login.login(d.ctx.engine, d.ctx.keyring, d.ctx.settings, a.username, a.password,
                                          a.totp, **_client(a.client, call))
    except EnrolmentRequired as needed:
        d.publish_security("login", {"username": a.username, "outcome": "enrolment_required"})
        return {"enrolment_required": True, "message": str(needed), "enrolment": needed.pending.as_dict()}
    d.publish_security("login", {"username": a.username, "outcome": "success"})
    return _session_reply(token, session)


class EnrolArgs(Args):
    enrolment_token: str = Field(min_length=1, max_length=1024)
    totp: str = Field(min_length=1, max_length=12)
    client: ClientInfo = ClientInfo()


@command("auth.enrol", permission=None, args=EnrolArgs, public=True, pool="login")
def auth_enrol_cmd(d: "Daemon", call: Call) -> dict:
    """Confirm the second factor offered at login with a code from it; returns a session token."""
    a: EnrolArgs = call.args
    token, session = auth_login.confirm_enrolment(d.ctx.engine, d.ctx.keyring, d.ctx.settings, a.enrolment_token,
                                                  a.totp, **_client(a.client, call))
    d.publish_security("login", {"user_id": str(session.user_id), "outcome": "enrolled"})
    return _session_reply(token, session)


def _client(client: ClientInfo, call: Call) -> dict:
    """Where a login comes from: the address is the transport's (the ipc peer's uid or
    the TCP peer's IP), which the login rate limit keys on; the SSH client address the
    client reports is kept beside it, labelled as reported, and trusted for nothing."""
    ssh = (client.ssh_connection or "").split()
    return {"client_host": client.host, "client_addr": call.peer, "reported_addr": ssh[0][:64] if ssh else None,
            "client_name": client.name, "client_version": client.version, "device_key": call.peer_key}


def _session_reply(token: str, session) -> dict:
    return {"token": token, "session_id": str(session.id), "expires_at": session.expires_at.isoformat(),
            "idle_timeout_seconds": session.idle_timeout_seconds}


@command("auth.logout", permission=None)
def auth_logout_cmd(d: "Daemon", call: Call) -> dict:
    """End the calling session."""
    if call.token is None or call.principal.session_id is None:
        return {"logged_out": False}
    session = auth_login.logout(d.ctx.engine, call.token)
    d.forget_token(call.token)
    return {"logged_out": True, "session_id": str(session.id)}


@command("whoami", permission=None, inline=True)
def whoami_cmd(d: "Daemon", call: Call) -> dict:
    """Who the token belongs to and what it may do."""
    p = call.principal
    return {"actor": p.actor, "permissions": sorted(p.permissions), "session_id": p.session_id}


@command("help", permission=None, public=True, inline=True)
def help_cmd(d: "Daemon", call: Call) -> list[dict]:
    """List every command with its permission."""
    return [{"cmd": c.name, "permission": c.permission, "help": c.help}
            for c in sorted(REGISTRY.values(), key=lambda c: c.name)]


# --- state ----------------------------------------------------------------------------

@command("status", permission=None, inline=True)
def status_cmd(d: "Daemon", call: Call) -> dict:
    """Daemon state: role, uptime, running jobs, next scheduled runs."""
    return d.status()


@command("health", permission=None)   # not inline: the first read may query the database
def health_cmd(d: "Daemon", call: Call) -> dict:
    """The last health snapshot (the same one published on the `health` topic): role,
    running jobs, last backup, audit chain, integrity, sync; storage per table (rows,
    bytes) and per backup target (used, quota, percent), backup runs succeeded and failed
    in the last 7 days, and the compliance score (these refreshed at most once a minute)."""
    return d.health_snapshot()


class JobsListArgs(Args):
    kind: str | None = None
    status: Literal["queued", "running", "succeeded", "failed", "interrupted", "cancelled"] | None = None
    limit: int = Field(default=50, ge=1, le=1000)


@command("jobs.list", permission="audit:read", args=JobsListArgs)
def jobs_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Recent job runs, newest first."""
    a: JobsListArgs = call.args
    return [r.as_dict() for r in runs.recent(d.ctx.engine, job_kind=a.kind, status=a.status, limit=a.limit)]


@command("jobs.kinds", permission=None, inline=True)
def jobs_kinds_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Every job kind: what it does, how it may be started, its params as a JSON schema."""
    return [k.describe() for k in KINDS.values()]


class JobRunArgs(Args):
    kind: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)


@command("job.run", permission=None, args=JobRunArgs)
def job_run_cmd(d: "Daemon", call: Call) -> dict:
    """Start a job now (needs job:<kind>:run); returns the run id. The params are
    checked against the kind's model (`jobs.kinds`) before anything is stored."""
    a: JobRunArgs = call.args
    job_kind(a.kind)        # an unknown kind is not_found, before its name can reach a message
    d.require(call.principal, f"job:{a.kind}:run")
    # e.g. a restore's target: a mistake refused now, by name, not as a failed run
    check_request(a.kind, a.params or {}, live=d.ctx.engine)
    run = d.submit_if_leader(a.kind, trigger="manual", params=a.params, requested_by=call.principal.actor)
    return run.as_dict()


class RunIdArgs(Args):
    run_id: uuid.UUID


@command("job.get", permission="audit:read", args=RunIdArgs)
def job_get_cmd(d: "Daemon", call: Call) -> dict:
    """One job run with its progress, result and error."""
    return runs.get(d.ctx.engine, call.args.run_id).as_dict()


@command("job.cancel", permission=None, args=RunIdArgs)
def job_cancel_cmd(d: "Daemon", call: Call) -> dict:
    """Ask a running job to stop at its next safe point."""
    run = runs.get(d.ctx.engine, call.args.run_id)
    d.require(call.principal, f"job:{run.job_kind}:run")
    return d.runner.cancel(run.id, by=call.principal.actor)


class LimitArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)


@command("backups.list", permission="audit:read", args=LimitArgs)
def backups_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Snapshots, newest first, with how far each has been proven."""
    table = Backup.__table__
    with d.ctx.engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.started_at.desc()).limit(call.args.limit)).mappings()
        return [dict(r) for r in rows]


# --- audit and security -----------------------------------------------------------------

class AuditTailArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=2 ** 63 - 1)
    actor: str | None = Field(default=None, max_length=120)
    action: str | None = Field(default=None, max_length=24)
    table_name: str | None = Field(default=None, max_length=64)


@command("audit.tail", permission="audit:read", args=AuditTailArgs)
def audit_tail_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Newest audit entries first; page back with before_id."""
    a: AuditTailArgs = call.args
    with d.ctx.engine.connect() as conn:
        entries = audit.tail(conn, limit=a.limit, before_id=a.before_id, actor=a.actor,
                             action=a.action, table_name=a.table_name)
    return [e.__dict__ for e in entries]


@command("audit.verify", permission="audit:read")
def audit_verify_cmd(d: "Daemon", call: Call) -> dict:
    """Re-hash the whole audit chain, check every seal, compare it with the newest
    checkpoint kept outside the database and check every erasure certificate; names the
    first broken entry and the entries missing after the checkpoint."""
    result, cp = checkpoints.verify_against_newest(d.ctx)
    verdicts = certificate.verify_all(d.ctx.engine)
    bad = [v.__dict__ for v in verdicts if not v.ok]
    ok = result.ok and not bad
    with transaction(d.ctx.engine) as conn:
        audit.append(conn, actor=call.principal.actor, action="VERIFY", table_name="audit_logs",
                     outcome="success" if ok else "failure", session_id=call.principal.session_id,
                     details={"checked": result.checked, "broken_id": result.broken_id,
                              "rows_missing_after": result.rows_missing_after,
                              "checkpoint_head_id": cp["head_id"] if cp else None,
                              "certificates": len(verdicts), "certificates_failed": len(bad)})
    d.note_audit_result(ok)
    return {**result.__dict__, "checkpoint": checkpoints.summary(cp),
            "certificates": {"checked": len(verdicts), "failed": bad}}


class SecurityEventsArgs(Args):
    limit: int = Field(default=50, ge=1, le=1000)
    before_id: int | None = Field(default=None, ge=1, le=2 ** 63 - 1)
    event_type: str | None = Field(default=None, max_length=40)


@command("security.events", permission="security:read", args=SecurityEventsArgs)
def security_events_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Security events (logins, failures, lockouts, grants), newest first."""
    a: SecurityEventsArgs = call.args
    table = SecurityEvent.__table__
    query = select(table).order_by(table.c.id.desc()).limit(a.limit)
    if a.before_id:
        query = query.where(table.c.id < a.before_id)
    if a.event_type:
        query = query.where(table.c.event_type == a.event_type)
    with d.ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


class SessionsListArgs(Args):
    active_only: bool = True


@command("sessions.list", permission="security:read", args=SessionsListArgs)
def sessions_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Login sessions with the client's host, address and program."""
    with d.ctx.engine.connect() as conn:
        names = {u.id: u.username for u in list_users(conn)}
    return [{**s.__dict__, "username": names.get(s.user_id)}
            for s in auth_sessions.list_sessions(d.ctx.engine, active_only=call.args.active_only)]


class SessionRevokeArgs(Args):
    session_id: uuid.UUID
    reason: str = Field(default="revoked by operator", max_length=64)


@command("session.revoke", permission="session:revoke", args=SessionRevokeArgs)
def session_revoke_cmd(d: "Daemon", call: Call) -> dict:
    """End another session now (not one of an account holding a permission the caller lacks)."""
    with transaction(d.ctx.engine) as conn:
        management.may_revoke_session(conn, call.principal, call.args.session_id)
    record = auth_sessions.revoke(d.ctx.engine, call.args.session_id, by=call.principal.actor,
                                  reason=call.args.reason)
    d.forget_session(record.id)
    d.publish_security("session_revoked", {"session_id": str(record.id)})
    return record.__dict__


@command("users.list", permission="user:manage")
def users_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Accounts with role, 2FA, lock state and last login (no secrets)."""
    with d.ctx.engine.connect() as conn:
        return [u.as_dict() for u in list_users(conn)]


@command("config.show", permission="config:read", inline=True)
def config_show_cmd(d: "Daemon", call: Call) -> dict:
    """The running configuration, with secrets and credentials redacted."""
    return d.redacted_config()


@command("compliance.report", permission="compliance:read")
def compliance_report_cmd(d: "Daemon", call: Call) -> dict:
    """Compliance score by the source's weights, with every check's evidence and the
    daily score history (this report becomes today's entry)."""
    result = compliance.report(d.ctx.settings, d.ctx.engine)
    compliance.record_history(d.ctx.engine, result)
    return {**result.as_dict(), "history": compliance.history(d.ctx.engine)}


class ComplianceDocumentArgs(Args):
    format: str = Field(max_length=16)
    since: str | None = Field(default=None, max_length=40)
    until: str | None = Field(default=None, max_length=40)


@command("compliance.document", permission="compliance:read", args=ComplianceDocumentArgs)
def compliance_document_cmd(d: "Daemon", call: Call) -> dict:
    """A signed compliance report (pdf, md or json) an auditor keeps: the score with its
    evidence, the HIPAA safeguards, the audit-chain proof and the period's erasures."""
    from strongroom.core.reports import compliance_report

    produced = compliance_report.produce(d.ctx, fmt=call.args.format, actor=call.principal.actor,
                                         since=call.args.since, until=call.args.until)
    return {"format": produced.format, "sha256": produced.sha256, "size": len(produced.data),
            "score": produced.content["score"], "data": base64.b64encode(produced.data).decode()}


@command("notify.test", permission="config:read")
def notify_test_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Send a test notification to every configured channel."""
    return d.notify_test(call.principal.actor)
from strongroom.daemon import commands_integrity, commands_users  # noqa: F401 registers their commands
from strongroom.daemon import commands_sync  # noqa: F401,E402 registers the sync commands
from strongroom.daemon import commands_backup  # noqa: F401,E402 registers the backup commands
from strongroom.daemon import commands_retention  # noqa: F401,E402 registers the retention commands
from strongroom.daemon import commands_exports  # noqa: F401,E402 registers the export commands
from strongroom.daemon import commands_files  # noqa: F401,E402 registers the client file commands
from strongroom.daemon import commands_profiles  # noqa: F401,E402 registers the security profile commands
from strongroom.daemon import commands_reconcile  # noqa: F401,E402 registers the reconcile commands
from strongroom.daemon import commands_practice  # noqa: F401,E402 registers the practice, staff and services commands
from strongroom.daemon import commands_clients  # noqa: F401,E402 registers the client picker's lookup
