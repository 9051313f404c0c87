"""Keeping practices apart: what a caller bound to a practice may name.

A logged-in user is a row of one practice (`users.practice_id`), and their Principal
carries it (core.auth.rbac.principal). Such a caller reaches only their own practice's
rows; the local operator (`local:<uid>`, the daemon's own account on its machine) and
`system` carry no practice and reach every practice, as before.

Enforced here, in one place, for every command: `check_args` looks at each argument
that names a practice-scoped object (OWNERS: a practice, client, staff member,
service, appointment, file, pair, hold, erasure request, account, grant or login
session) and refuses the call unless that object is of the caller's practice. A
foreign object and one that exists nowhere get the same `not_found`, naming the
argument and never its value: `forbidden` would tell a prober that another practice's
id is real. Commands that default to "the caller's practice" ask `practice_for`, and
lists narrow themselves with `scope_of`.

The check reads only ids and practice ids, in a read-only transaction of its own
before the handler runs; an object's practice never changes, so the answer holds.

What a caller reads is narrowed (`narrowed_to`) only when the database holds several
practices; with one there is nobody to keep apart and nothing changes:
- job.list/job.get/job.cancel: a run naming the caller's practice (or a client of it)
  whole; a whole-database run (backup, verify, integrity, sync...) without its params,
  result, message or error; another practice's not at all (`run_shown`).
- export.list/export.show, export configurations (list, set, the form's catalogue):
  by the practice their filters name; a new configuration is checked as export.run is.
- audit.tail: entries made by the practice's people or about its rows (`audit_shown`);
  security.event.list: events about its accounts (`security_scope`).
- retention.plan.get: its rows and holds; retention.policy.set and a key rotation of every
  client are refused (they reach every practice); integrity.report.get: verdicts and counts,
  evidence (row ids of every practice) withheld; sync conflicts and quarantine: rows of
  its own (`row_shown`); key rotation: its own clients only (`job_params`).
Whole-database on purpose, for every caller with the permission: backups, snapshots and
their requests, retention policies (one per table for the installation), sync peers and
status, the compliance report and its documents (the installation's safeguards, which
every practice in it shares; scores and counts, no rows), config and health.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, select

from strongroom.core.db.engine import transaction
from strongroom.core.db.models import (AuthSession, Client, ClientFile, ErasureRequest, ExportConfiguration,
                                       LegalHold, Practice, ReconcilePair, RoleGrant, SecurityEvent, Service, Staff,
                                       TherapySession, User)
from strongroom.core.errors import NotFoundError, PermissionDenied, ValidationError
from strongroom.core.principal import Principal
from strongroom.core.repository.practices import only_practice

Owner = Callable[[Connection, Any], "uuid.UUID | None"]


def _by_id(table) -> Owner:
    """The practice of the row of `table` whose id is the value (deleted or not)."""
    def owner(conn: Connection, value: Any) -> uuid.UUID | None:
        column = table.c.id if table.name == "practices" else table.c.practice_id
        return conn.execute(select(column).where(table.c.id == _uuid(value))).scalar()
    return owner


def _via_user(table, column: str) -> Owner:
    """The practice of the account a row of `table` belongs to (through `column`)."""
    users = User.__table__

    def owner(conn: Connection, value: Any) -> uuid.UUID | None:
        query = (select(users.c.practice_id).join(table, table.c.user_id == users.c.id)
                 .where(table.c[column] == (_uuid(value) if column == "id" else value)))
        return conn.execute(query).scalar()
    return owner


def _by_username(conn: Connection, value: Any) -> uuid.UUID | None:
    users = User.__table__
    return conn.execute(select(users.c.practice_id).where(users.c.username == value)).scalar()


def _erasure_request(conn: Connection, value: Any) -> uuid.UUID | None:
    requests, clients = ErasureRequest.__table__, Client.__table__
    return conn.execute(select(clients.c.practice_id).join(requests, requests.c.client_id == clients.c.id)
                        .where(requests.c.id == _uuid(value))).scalar()


# Argument name -> (what it names, how to find its practice).
OWNERS: dict[str, tuple[str, Owner]] = {
    "practice_id": ("practice", _by_id(Practice.__table__)),
    "client_id": ("client", _by_id(Client.__table__)),
    "survivor": ("client", _by_id(Client.__table__)),
    "staff_id": ("staff member", _by_id(Staff.__table__)),
    "service_id": ("service", _by_id(Service.__table__)),
    "appointment_id": ("appointment", _by_id(TherapySession.__table__)),
    "file_id": ("file", _by_id(ClientFile.__table__)),
    "pair_id": ("pair", _by_id(ReconcilePair.__table__)),
    "hold_id": ("hold", _by_id(LegalHold.__table__)),
    "request_id": ("request", _erasure_request),
    "username": ("user", _by_username),
    "user_id": ("user", _by_id(User.__table__)),
    "grant_id": ("grant", _via_user(RoleGrant.__table__, "id")),
    "session_id": ("session", _via_user(AuthSession.__table__, "id")),
}

# Arguments these commands do not have checked here. Some name no existing
# practice-scoped object: a new account's name (usernames are unique across practices;
# user.add files it under the caller's practice), a backup prune request (backups are
# the whole database's). The rest are links the repository already checks against the
# practice of the row they hang on, which is checked here (an appointment's service and
# staff member, a staff member's account, a merge's survivor, one of the pair's
# clients), answering a foreign one exactly as a missing one (bad_request): checking
# them here too would only change that answer.
_LINKS = frozenset({"service_id", "staff_id"})
NOT_OWNED: dict[str, frozenset[str]] = {
    "user.add": frozenset({"username"}),
    "backup.request.approve": frozenset({"request_id"}),
    "appointment.add": _LINKS,
    "appointment.set": _LINKS,
    "staff.add": frozenset({"user_id"}),
    "staff.set": frozenset({"user_id"}),
    "reconcile.merge": frozenset({"survivor"}),
}


def _uuid(value: Any) -> Any:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def named_objects(command: str, args: Any) -> list[tuple[str, Any]]:
    """(argument, value) for each argument of `args` naming a practice-scoped object."""
    skip = NOT_OWNED.get(command, frozenset())
    return [(name, value) for name in OWNERS if name not in skip
            and (value := getattr(args, name, None)) is not None]


def not_found(argument: str) -> NotFoundError:
    """The one refusal for a foreign or missing object: names the argument, never its value."""
    return NotFoundError(f"{argument}: no such {OWNERS[argument][0]}")


def check_args(engine: Engine, principal: Principal | None, command: str, args: Any) -> None:
    """Refuse (not_found) unless every object `args` names is of the caller's practice.
    A caller without a practice (local operator, system, public commands) is not checked."""
    if principal is None or principal.practice_id is None:
        return
    named = named_objects(command, args)
    if not named:
        return
    with transaction(engine, read_only=True) as conn:
        for argument, value in named:
            if OWNERS[argument][1](conn, value) != principal.practice_id:
                raise not_found(argument)


def practice_for(conn: Connection, principal: Principal, given: uuid.UUID | None) -> uuid.UUID:
    """The practice a command acts on: the caller's own when bound to one (naming another
    is not_found, as for one that does not exist); else the one given, or the only one."""
    if principal.practice_id is None:
        return given or only_practice(conn)
    if given is not None and given != principal.practice_id:
        raise not_found("practice_id")
    return principal.practice_id


def scope_of(principal: Principal, given: uuid.UUID | None = None) -> uuid.UUID | None:
    """The practice a list is narrowed to: the caller's own when bound to one (naming
    another is not_found), else the one given, or None for every practice."""
    if principal.practice_id is None:
        return given
    if given is not None and given != principal.practice_id:
        raise not_found("practice_id")
    return principal.practice_id


def check_export(engine: Engine, principal: Principal, filters: dict) -> None:
    """An export by a caller bound to a practice reads that practice only: a practice or
    client of another one is not_found; with several practices in the database the
    caller must name theirs (filters.practice_id), since the job reads every practice
    it is not told otherwise. One practice: nothing changes."""
    if principal.practice_id is None:
        return
    with transaction(engine, read_only=True) as conn:
        for argument in ("practice_id", "client_id"):
            if filters.get(argument) and OWNERS[argument][1](conn, filters[argument]) != principal.practice_id:
                raise not_found(argument)
        if not filters.get("practice_id") and _practices(conn) > 1:
            raise ValidationError("export: filters.practice_id: name your practice (the database holds several)")


def _practices(conn: Connection) -> int:
    practices = Practice.__table__
    return len(conn.execute(select(practices.c.id).where(practices.c.deleted_at.is_(None)).limit(2)).all())


def narrowed_to(conn: Connection, principal: Principal | None) -> uuid.UUID | None:
    """The practice what a caller reads is narrowed to: theirs when they are bound to one
    and the database holds several; None (everything, as before) otherwise. With one
    practice there is nobody else to keep apart, so the common case costs one indexed
    query and changes nothing."""
    if principal is None or principal.practice_id is None or _practices(conn) < 2:
        return None
    return principal.practice_id


def practices_named(conn: Connection, params: dict | None, memo: dict | None = None) -> set[uuid.UUID | None]:
    """The practices a run's params, or an export's filters, name: through practice_id,
    client_id, client_ids (a key rotation), an export's filters or the saved
    configuration an export ran by name. Empty: they name none, the run is the whole
    database's (a backup, an integrity run). A name that resolves to no row counts as
    None, so it matches no caller. `memo` (a dict the caller keeps for one read) answers
    each name looked up before without asking again: a scan of many runs names the same
    few practices, clients and configurations over and over."""
    params = params or {}
    memo = {} if memo is None else memo

    def looked_up(kind: str, value: Any) -> Any:
        key = (kind, str(value))
        if key not in memo:
            memo[key] = (OWNERS[kind][1](conn, value) if kind in OWNERS else conn.execute(
                select(ExportConfiguration.__table__.c.filters)
                .where(ExportConfiguration.__table__.c.name == value)).scalar() or {})
        return memo[key]

    named: set[uuid.UUID | None] = set()
    filters = params.get("filters") if isinstance(params.get("filters"), dict) else {}
    if not filters and isinstance(params.get("configuration"), str):
        # An export run by a saved configuration's name (by hand or by its schedule)
        # carries the name, not the filters: the run is the configuration's practice's.
        # Names are unique and a configuration's filters never change once saved.
        filters = looked_up("configuration", params["configuration"])
    for source in (params, filters):
        if source.get("practice_id"):
            named.add(looked_up("practice_id", source["practice_id"]))
        clients = source.get("client_ids") if isinstance(source.get("client_ids"), list) else []
        for client in ([source["client_id"]] if source.get("client_id") else []) + clients:
            named.add(looked_up("client_id", client))
    return named


def export_shown(conn: Connection, practice: uuid.UUID | None, filters: dict | None) -> bool:
    """Whether a caller narrowed to `practice` (None: not narrowed) may see an export or
    a saved configuration with these filters: one that names their practice only."""
    return practice is None or practices_named(conn, {"filters": filters or {}}) == {practice}


WHOLE, WITHHELD, HIDDEN = "whole", "withheld", "hidden"
# What a withheld run says of itself, so empty params and no result read as a rule, not a fault.
WITHHELD_WHY = "this run covers every practice: its params, result, message and error are the operator's"


def run_verdict(conn: Connection, practice: uuid.UUID | None, params: dict | None,
                memo: dict | None = None) -> str:
    """How a caller narrowed to `practice` (None: not narrowed) may see a run with these
    params: WHOLE when it names that practice only (or the caller is not narrowed);
    WITHHELD when it names none (a backup's or integrity run's figures and evidence are
    the whole database's: kind, state and times only); HIDDEN when it names another
    practice. The one rule behind job.list, job.get, `status` and `health`."""
    if practice is None:
        return WHOLE
    named = practices_named(conn, params, memo)
    if named == {practice}:
        return WHOLE
    return HIDDEN if named else WITHHELD


def run_shown(conn: Connection, practice: uuid.UUID | None, run: dict, memo: dict | None = None) -> dict | None:
    """A job run as a caller narrowed to `practice` may see it (run_verdict): whole;
    with params, result, message and error withheld; or None."""
    verdict = run_verdict(conn, practice, run.get("params"), memo)
    if verdict == WHOLE:
        return run
    if verdict == HIDDEN:
        return None
    return {**run, "params": {}, "result": None, "message": None,
            "error": "withheld: this run covers every practice" if run.get("error") else None,
            "withheld": WITHHELD_WHY}


def running_shown(conn: Connection, practice: uuid.UUID | None, running: list[dict],
                  params_of: Callable[[str], dict | None]) -> list[dict]:
    """The runs in progress (`status`, `health`) as a caller narrowed to `practice` may
    see them (run_verdict): their practice's whole, a whole-database run without its
    message, another practice's left out."""
    if practice is None:
        return running
    shown = []
    for job in running:
        verdict = run_verdict(conn, practice, params_of(job["run_id"]))
        if verdict == WHOLE:
            shown.append(job)
        elif verdict == WITHHELD:
            shown.append({**job, "message": None, "withheld": WITHHELD_WHY})
    return shown


# Audit entries name the row they touched by table and id: the practice of each table's rows.
_TABLE_OWNERS: dict[str, Owner] = {
    "practices": OWNERS["practice_id"][1], "clients": OWNERS["client_id"][1],
    "staff": OWNERS["staff_id"][1], "services": OWNERS["service_id"][1],
    "therapy_sessions": OWNERS["appointment_id"][1], "client_files": OWNERS["file_id"][1],
    "legal_holds": OWNERS["hold_id"][1], "erasure_requests": OWNERS["request_id"][1],
    "users": OWNERS["user_id"][1], "reconcile_pairs": OWNERS["pair_id"][1],
}


def whole_database(conn: Connection, principal: Principal, what: str) -> None:
    """Refuse a change that reaches every practice (a table's retention policy) to a
    caller bound to one practice of several; with one practice it is theirs alone."""
    if narrowed_to(conn, principal) is not None:
        raise PermissionDenied(f"{what} applies to every practice in this database: the operator changes it")


def row_shown(conn: Connection, practice: uuid.UUID | None, table: str | None, row_id: Any) -> bool:
    """Whether a caller narrowed to `practice` (None: not narrowed) may see a row named
    by table and id (a sync conflict's, a quarantined row's): only a row of theirs; a
    row of a table no practice owns, or one this site does not hold, is the
    installation's."""
    if practice is None:
        return True
    owner = _TABLE_OWNERS.get(table or "")
    return owner is not None and _uuid(row_id) is not None and owner(conn, row_id) == practice


def _usernames(conn: Connection, practice: uuid.UUID) -> set[str]:
    users = User.__table__
    return set(conn.execute(select(users.c.username).where(users.c.practice_id == practice)).scalars())


def audit_shown(conn: Connection, practice: uuid.UUID, entries: list) -> list:
    """The audit entries a caller narrowed to `practice` may read: those its own people
    made, and those about a row of its own (by table and record id). Entries about no
    row of a practice (the daemon's jobs, backups, logins of another practice's people)
    belong to the installation and are left to callers bound to no practice. Audit rows
    carry no practice column: adding one would change what the hash chain covers."""
    actors = {f"user:{name}" for name in _usernames(conn, practice)}
    owners: dict[tuple[str, str], uuid.UUID | None] = {}
    shown = []
    for entry in entries:
        if entry.actor in actors:
            shown.append(entry)
            continue
        owner = _TABLE_OWNERS.get(entry.table_name or "")
        if owner is None or not entry.record_id:
            continue
        key = (entry.table_name, entry.record_id)
        if key not in owners:
            owners[key] = owner(conn, entry.record_id) if _uuid(entry.record_id) else None
        if owners[key] == practice:
            shown.append(entry)
    return shown


def security_scope(practice: uuid.UUID):
    """A WHERE clause for security events about `practice`'s own accounts (by id or by
    the username a failed login gave); events about nobody's account are the
    installation's, shown to callers bound to no practice."""
    users, events = User.__table__, SecurityEvent.__table__
    return (events.c.user_id.in_(select(users.c.id).where(users.c.practice_id == practice))
            | events.c.username.in_(select(users.c.username).where(users.c.practice_id == practice)))


def job_params(ctx: Any, principal: Principal, kind: str, params: dict | None) -> dict | None:
    """job.run's params for a caller bound to a practice: a reconcile runs over their
    practice only (another is not_found), an export is checked as export.run checks it,
    a key rotation's clients must be theirs."""
    if principal.practice_id is None:
        return params
    if kind == "key_rotation" and not (params or {}).get("client_ids"):
        with transaction(ctx.engine, read_only=True) as conn:
            if narrowed_to(conn, principal) is not None:
                raise PermissionDenied("key_rotation: rotating every client's keys reaches every practice in this "
                                       "database; name client_ids of your practice (or ask the operator)")
    if kind == "key_rotation" and (params or {}).get("client_ids"):
        with transaction(ctx.engine, read_only=True) as conn:
            if any(OWNERS["client_id"][1](conn, client) != principal.practice_id
                   for client in params["client_ids"]):
                raise NotFoundError("client_ids: no such client")
    if kind == "reconcile":
        given = (params or {}).get("practice_id")
        return {**(params or {}), "practice_id": str(scope_of(principal, _uuid(given) if given else None))}
    if kind == "export":
        from strongroom.core.jobs import export as export_job
        check_export(ctx.engine, principal, export_job.build_request(ctx, dict(params or {})).filters)
    return params
