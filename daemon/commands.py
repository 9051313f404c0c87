"""The command registry: every control command, its arguments and the permission it needs.

The transport (control.py) only routes: it parses the frame, authenticates the token,
checks the permission named here and calls the handler. A handler's docstring is its
help text (`help` lists them). Handlers run in a worker thread, so they may block on
the database; they return JSON-ready data matching the result model they declare, or
raise a StrongroomError, which the transport maps to the protocol's error code.

Every command declares its argument and result models (core/protocol/models, which the
console and CLI import too) and keeps the naming rule of core/protocol/names.py, checked
here when it registers; the old names that file lists stay registered as aliases.
"""
from __future__ import annotations

import base64
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from strongroom.core.protocol.models import audit as m_audit
from strongroom.core.protocol.models import auth as m_auth
from strongroom.core.protocol.models import backup as m_backup
from strongroom.core.protocol.models import compliance as m_compliance
from strongroom.core.protocol.models import jobs as m_jobs
from strongroom.core.protocol.models import security as m_security
from strongroom.core.protocol.models import status as m_status
from strongroom.core.protocol.models import users as m_users
from strongroom.core.protocol.models.audit import AuditTailArgs
from strongroom.core.protocol.models.auth import ClientInfo, EnrolArgs, LoginArgs
from strongroom.core.protocol.models.backup import LimitArgs
from strongroom.core.protocol.models.base import Args, NoArgs
from strongroom.core.protocol.models.compliance import ComplianceDocumentArgs
from strongroom.core.protocol.models.jobs import JobListArgs, JobRunArgs, RunIdArgs
from strongroom.core.protocol.models.security import SecurityEventListArgs, SessionListArgs, SessionRevokeArgs
from strongroom.core.protocol.names import aliases_of, naming_problem
from strongroom.daemon import tenancy
from strongroom.daemon.ratelimit import command_class

from strongroom.core import audit, checkpoints, compliance
from strongroom.core.retention import certificate
from strongroom.core.auth import invitation, management
from strongroom.core.auth import login as auth_login
from strongroom.core.auth import sessions as auth_sessions
from strongroom.core.auth.enrolment import EnrolmentRequired
from strongroom.core.auth.users import list_users
from strongroom.core.db.engine import transaction
from strongroom.core.errors import NotFoundError
from strongroom.core.db.models import Backup, SecurityEvent
from strongroom.core.jobs import KINDS
from strongroom.core.jobs import kind as job_kind
from strongroom.core.jobs.kinds import check_request
from strongroom.core.jobs import runs
from strongroom.core.principal import Principal
from sqlalchemy import select


if TYPE_CHECKING:
    from strongroom.daemon.lifecycle import Daemon


@dataclass(frozen=True)
class Call:
    principal: Principal | None
    args: Any
    peer: str | None
    token: str | None = None
    peer_key: str | None = None     # over TCP: the caller's CURVE public key (a login's device)
    content: memoryview | None = None   # the request's binary frame (commands with takes_content)


@dataclass(frozen=True)
class Framed:
    """A handler's answer with content: `result` goes in the JSON reply frame and
    `content` (a bytes-like object, sent without copying) in a binary frame after it."""
    result: Any
    content: Any


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable[["Daemon", Call], Any]
    permission: str | None        # None: any authenticated caller
    args: type[Args]
    result: Any                   # a Result model, or list[...] of one: what a success answers
    public: bool = False          # True: no token needed (auth.login, help)
    inline: bool = False          # True: cheap, answered on the event loop (no thread hop)
    pool: Literal["general", "login"] = "general"   # login: the login pool (control.LoginPool)
    aliases: tuple[str, ...] = ()  # old names (core/protocol/names.py RENAMED), deprecated
    takes_content: bool = False   # True: the request may carry one binary frame after the JSON

    @property
    def help(self) -> str:
        return (self.handler.__doc__ or "").strip().splitlines()[0] if self.handler.__doc__ else ""

    @property
    def rate_class(self) -> str | None:
        """The `[auth] rate_limits` class this command counts towards: the first part of
        the name it had when the classes were named (its oldest name), so `exports = 30`
        still limits export.run; None for chunk transfers (daemon/ratelimit.py)."""
        return command_class(self.aliases[0] if self.aliases else self.name)

    @cached_property
    def result_adapter(self) -> TypeAdapter:
        return TypeAdapter(self.result)


def given_changes(args: Args, skip: tuple[str, ...]) -> dict[str, Any]:
    """The fields a `*.set`/`*.add` caller gave (not the model's defaults), less `skip`,
    with those named in `clear` set to None: what an update may change."""
    changes = {name: getattr(args, name) for name in args.model_fields_set if name not in (*skip, "clear")}
    for name in getattr(args, "clear", None) or ():
        changes[name] = None
    return changes


REGISTRY: dict[str, Command] = {}
ALIASES: dict[str, str] = {}      # old name -> current name, registered with the command


def lookup(name: str) -> Command | None:
    """The command a request names, by its current name or a deprecated alias."""
    return REGISTRY.get(ALIASES.get(name, name))


def command(name: str, *, permission: str | None, args: type[Args] = NoArgs, result: Any,
            public: bool = False, inline: bool = False, pool: Literal["general", "login"] = "general",
            takes_content: bool = False):
    """Register a handler under `name` (which must keep the naming rule of
    core/protocol/names.py), with its argument and result models; the old names RENAMED
    maps to it are registered as its aliases. `takes_content`: the request may carry one
    binary frame after its JSON frame (Call.content); every other command refuses one."""
    problem = naming_problem(name)
    if problem:
        raise RuntimeError(f"command {name}: {problem}")
    if result is None or result is Any:
        raise RuntimeError(f"command {name}: declare its result model")

    def register(handler):
        if name in REGISTRY or name in ALIASES:
            raise RuntimeError(f"command {name} registered twice")
        aliases = aliases_of(name)
        REGISTRY[name] = Command(name, handler, permission, args, result, public, inline, pool, aliases,
                                 takes_content)
        for old in aliases:
            ALIASES[old] = name
        return handler
    return register


# --- session ----------------------------------------------------------------------------

@command("auth.login", permission=None, args=LoginArgs, public=True, pool="login", result=m_auth.LoginResult)
def auth_login_cmd(d: "Daemon", call: Call) -> dict:
    """Log in with password and TOTP; returns a session token (shown once), or, for an
    account that must first enrol a second factor, `enrolment_required` with a new secret
    and the token auth.enrol confirms it with."""
    a: LoginArgs = call.args
    try:
        token, session = auth_login.login(d.ctx.engine, d.ctx.keyring, d.ctx.settings, a.username, a.password,
                                          a.totp, **_client(a.client, call))
    except EnrolmentRequired as needed:
        d.publish_security("login", outcome="enrolment_required")
        return {"enrolment_required": True, "message": str(needed), "enrolment": needed.pending.as_dict()}
    d.publish_security("login", outcome="success")
    return _session_reply(token, session)


@command("auth.enrol", permission=None, args=EnrolArgs, public=True, pool="login", result=m_auth.SessionToken)
def auth_enrol_cmd(d: "Daemon", call: Call) -> dict:
    """Confirm the second factor offered at login with a code from it; returns a session token."""
    a: EnrolArgs = call.args
    token, session = auth_login.confirm_enrolment(d.ctx.engine, d.ctx.keyring, d.ctx.settings, a.enrolment_token,
                                                  a.totp, **_client(a.client, call))
    d.publish_security("login", outcome="enrolled")
    return _session_reply(token, session)


@command("auth.invitation.accept", permission=None, args=m_auth.InvitationAcceptArgs, public=True, pool="login",
         result=m_auth.LoginResult)
def auth_invitation_accept_cmd(d: "Daemon", call: Call) -> dict:
    """Take up an invitation (`user.add`): store the holder's own password, then log in
    with it, answering as auth.login does (a session, or `enrolment_required`)."""
    a: m_auth.InvitationAcceptArgs = call.args
    try:
        token, session = invitation.accept(d.ctx.engine, d.ctx.keyring, d.ctx.settings, a.invitation, a.password,
                                           **_client(a.client, call))
    except EnrolmentRequired as needed:
        d.publish_security("login", outcome="enrolment_required")
        return {"enrolment_required": True, "message": str(needed), "enrolment": needed.pending.as_dict()}
    d.publish_security("login", outcome="invitation_accepted")
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


@command("auth.logout", permission=None, result=m_auth.LogoutResult)
def auth_logout_cmd(d: "Daemon", call: Call) -> dict:
    """End the calling session."""
    if call.token is None or call.principal.session_id is None:
        return {"logged_out": False}
    session = auth_login.logout(d.ctx.engine, call.token)
    d.forget_token(call.token)
    return {"logged_out": True, "session_id": str(session.id)}


@command("whoami", permission=None, inline=True, result=m_auth.WhoamiResult)
def whoami_cmd(d: "Daemon", call: Call) -> dict:
    """Who the token belongs to and what it may do."""
    p = call.principal
    return {"actor": p.actor, "permissions": sorted(p.permissions), "session_id": p.session_id}


@command("help", permission=None, public=True, inline=True, result=list[m_status.HelpEntry])
def help_cmd(d: "Daemon", call: Call) -> list[dict]:
    """List every command with its permission; a deprecated alias (an old name kept for
    one release) names the command it stands for in `alias_of`."""
    listed = [{"cmd": c.name, "permission": c.permission, "help": c.help, "alias_of": None}
              for c in REGISTRY.values()]
    listed += [{"cmd": old, "permission": REGISTRY[new].permission, "alias_of": new,
                "help": f"deprecated alias of {new}; it goes in the next release"} for old, new in ALIASES.items()]
    return sorted(listed, key=lambda c: c["cmd"])


# --- state ----------------------------------------------------------------------------

@command("status", permission=None, inline=True, result=m_status.StatusResult)
def status_cmd(d: "Daemon", call: Call) -> dict:
    """Daemon state: role, uptime, running jobs, next scheduled runs. A caller bound to
    one practice of several sees running jobs by tenancy.running_shown."""
    return _running_narrowed(d, call, d.status())


@command("health", permission=None, result=m_status.HealthResult)   # not inline: the first read may query the database
def health_cmd(d: "Daemon", call: Call) -> dict:
    """The last health snapshot (the same one published on the `health` topic): role,
    running jobs, last backup, audit chain, integrity, sync; storage per table (rows,
    bytes) and per backup target (used, quota, percent), backup runs succeeded and failed
    in the last 7 days, and the compliance score (these refreshed at most once a minute)."""
    return _running_narrowed(d, call, d.health_snapshot())


def _running_narrowed(d: "Daemon", call: Call, state: dict) -> dict:
    """`state` with its running jobs narrowed to the caller's practice. Callers bound to
    no practice (the operator, most installations' users) never touch the database
    here, so `status` stays an inline command."""
    if call.principal is None or call.principal.practice_id is None or not state.get("running_jobs"):
        return state
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
        return {**state, "running_jobs": tenancy.running_shown(conn, practice, state["running_jobs"],
                                                               d.runner.params_of)}


@command("job.list", permission="audit:read", args=JobListArgs, result=list[m_jobs.JobRun])
def jobs_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Recent job runs, newest first. A caller bound to one practice of several sees
    their practice's runs whole, whole-database runs without params, result or error,
    and no other practice's (tenancy.run_shown)."""
    a: JobListArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
        if practice is None:
            return [r.as_dict() for r in runs.recent(d.ctx.engine, job_kind=a.kind, status=a.status, limit=a.limit)]
        # Narrowed: other practices' runs are left out, so read on, as far back as it
        # takes, until the page is full (a practice whose last run lies behind thousands
        # of another's still sees it); one memo of the names looked up serves the scan.
        memo: dict = {}
        shown = (tenancy.run_shown(conn, practice, r.as_dict(), memo)
                 for r in runs.newest_first(conn, job_kind=a.kind, status=a.status))
        return list(itertools.islice((r for r in shown if r is not None), a.limit))


@command("job.kind.list", permission=None, inline=True, result=list[m_jobs.JobKindInfo])
def jobs_kinds_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Every job kind: what it does, how it may be started, its params as a JSON schema."""
    return [k.describe() for k in KINDS.values()]


@command("job.run", permission=None, args=JobRunArgs, result=m_jobs.JobRun)
def job_run_cmd(d: "Daemon", call: Call) -> dict:
    """Start a job now (needs job:<kind>:run); returns the run id. The params are
    checked against the kind's model (`job.kind.list`) before anything is stored."""
    a: JobRunArgs = call.args
    job_kind(a.kind)        # an unknown kind is not_found, before its name can reach a message
    d.require(call.principal, f"job:{a.kind}:run")
    # e.g. a restore's target: a mistake refused now, by name, not as a failed run
    check_request(a.kind, a.params or {}, live=d.ctx.engine)
    params = tenancy.job_params(d.ctx, call.principal, a.kind, a.params)
    run = d.submit_if_leader(a.kind, trigger="manual", params=params, requested_by=call.principal.actor)
    return run.as_dict()


@command("job.get", permission="audit:read", args=RunIdArgs, result=m_jobs.JobRun)
def job_get_cmd(d: "Daemon", call: Call) -> dict:
    """One job run with its progress, result and error (narrowed as job.list is: another
    practice's run is not_found, exactly as a run that does not exist)."""
    return _run_for(d, call)


def _run_for(d: "Daemon", call: Call) -> dict:
    run = runs.get(d.ctx.engine, call.args.run_id).as_dict()
    with transaction(d.ctx.engine, read_only=True) as conn:
        shown = tenancy.run_shown(conn, tenancy.narrowed_to(conn, call.principal), run)
    if shown is None:
        raise NotFoundError(f"job run {call.args.run_id} not found")     # runs.get's own words
    return shown


@command("job.cancel", permission=None, args=RunIdArgs, result=m_jobs.CancelResult)
def job_cancel_cmd(d: "Daemon", call: Call) -> dict:
    """Ask a running job to stop at its next safe point."""
    run = _run_for(d, call)
    d.require(call.principal, f"job:{run['job_kind']}:run")
    return d.runner.cancel(run["id"], by=call.principal.actor)


@command("backup.list", permission="audit:read", args=LimitArgs, result=list[m_backup.BackupRow])
def backups_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Snapshots, newest first, with how far each has been proven."""
    table = Backup.__table__
    with d.ctx.engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.started_at.desc()).limit(call.args.limit)).mappings()
        return [dict(r) for r in rows]


# --- audit and security -----------------------------------------------------------------

AUDIT_SCAN = 20_000

@command("audit.tail", permission="audit:read", args=AuditTailArgs, result=list[m_audit.AuditEntry])
def audit_tail_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Newest audit entries first; page back with before_id. A caller bound to one
    practice of several reads its own people's entries and those about its own rows."""
    a: AuditTailArgs = call.args
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
        if practice is None:
            entries = audit.tail(conn, limit=a.limit, before_id=a.before_id, actor=a.actor,
                                 action=a.action, table_name=a.table_name)
            return [e.__dict__ for e in entries]
        # Narrowed (tenancy.audit_shown): read back in pages until the page is full, at
        # most AUDIT_SCAN entries per call (a shorter page then; page on from its last id).
        shown: list = []
        before, scanned = a.before_id, 0
        while len(shown) < a.limit and scanned < AUDIT_SCAN:
            batch = audit.tail(conn, limit=500, before_id=before, actor=a.actor, action=a.action,
                               table_name=a.table_name)
            if not batch:
                break
            shown += tenancy.audit_shown(conn, practice, batch)
            before, scanned = batch[-1].id, scanned + len(batch)
        return [e.__dict__ for e in shown[:a.limit]]


@command("audit.verify", permission="audit:read", result=m_audit.AuditVerifyResult)
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


@command("security.event.list", permission="security:read", args=SecurityEventListArgs, result=list[m_security.SecurityEvent])
def security_events_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Security events (logins, failures, lockouts, grants), newest first; a caller bound
    to one practice of several sees its own accounts' only."""
    a: SecurityEventListArgs = call.args
    table = SecurityEvent.__table__
    query = select(table).order_by(table.c.id.desc()).limit(a.limit)
    with transaction(d.ctx.engine, read_only=True) as conn:
        practice = tenancy.narrowed_to(conn, call.principal)
    if practice is not None:
        query = query.where(tenancy.security_scope(practice))
    if a.before_id:
        query = query.where(table.c.id < a.before_id)
    if a.event_type:
        query = query.where(table.c.event_type == a.event_type)
    with d.ctx.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


@command("session.list", permission="security:read", args=SessionListArgs, result=list[m_security.SessionListed])
def sessions_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Login sessions with the client's host, address and program."""
    practice = call.principal.practice_id     # a caller bound to a practice sees its people's only
    with d.ctx.engine.connect() as conn:
        names = {u.id: u.username for u in list_users(conn, practice_id=practice)}
    return [{**s.__dict__, "username": names.get(s.user_id)}
            for s in auth_sessions.list_sessions(d.ctx.engine, active_only=call.args.active_only)
            if practice is None or s.user_id in names]


@command("session.revoke", permission="session:revoke", args=SessionRevokeArgs, result=m_security.SessionInfo)
def session_revoke_cmd(d: "Daemon", call: Call) -> dict:
    """End another session now (not one of an account holding a permission the caller lacks)."""
    with transaction(d.ctx.engine) as conn:
        management.may_revoke_session(conn, call.principal, call.args.session_id)
    record = auth_sessions.revoke(d.ctx.engine, call.args.session_id, by=call.principal.actor,
                                  reason=call.args.reason)
    d.forget_session(record.id)
    d.publish_security("session_revoked")
    return record.__dict__


@command("user.list", permission="user:manage", result=list[m_users.UserInfo])
def users_list_cmd(d: "Daemon", call: Call) -> list[dict]:
    """Accounts with role, 2FA, lock state and last login (no secrets); a caller bound
    to a practice sees its accounts only."""
    with d.ctx.engine.connect() as conn:
        return [u.as_dict() for u in list_users(conn, practice_id=call.principal.practice_id)]


@command("config.show", permission="config:read", inline=True, result=m_status.ConfigResult)
def config_show_cmd(d: "Daemon", call: Call) -> dict:
    """The running configuration, with secrets and credentials redacted."""
    return d.redacted_config()


@command("compliance.report.get", permission="compliance:read", result=m_compliance.ComplianceReport)
def compliance_report_cmd(d: "Daemon", call: Call) -> dict:
    """Compliance score by the source's weights, with every check's evidence and the
    daily score history (this report becomes today's entry)."""
    result = compliance.report(d.ctx.settings, d.ctx.engine)
    compliance.record_history(d.ctx.engine, result)
    return {**result.as_dict(), "history": compliance.history(d.ctx.engine)}


@command("compliance.document.create", permission="compliance:read", args=ComplianceDocumentArgs, result=m_compliance.ComplianceDocument)
def compliance_document_cmd(d: "Daemon", call: Call) -> dict:
    """A signed compliance report (pdf, md or json) an auditor keeps: the score with its
    evidence, the HIPAA safeguards, the audit-chain proof and the period's erasures."""
    from strongroom.core.reports import compliance_report

    produced = compliance_report.produce(d.ctx, fmt=call.args.format, actor=call.principal.actor,
                                         since=call.args.since, until=call.args.until)
    return {"format": produced.format, "sha256": produced.sha256, "size": len(produced.data),
            "score": produced.content["score"], "data": base64.b64encode(produced.data).decode()}


@command("notification.test", permission="config:read", result=list[m_compliance.Delivery])
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
from strongroom.daemon import commands_encryption  # noqa: F401,E402 registers the encryption level commands
from strongroom.daemon import commands_appointments  # noqa: F401,E402 registers the appointment commands
