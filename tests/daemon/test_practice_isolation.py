"""Two practices in one database, over a real daemon (both engines): a person logged in to
practice A can neither read nor change practice B's details, staff, services,
appointments, encryption level, clients, holds, erasure requests or accounts by naming
B's ids, and B's rows do not turn up in A's lists.

Why `not_found`, and the very same answer a made-up id gets: `forbidden` would confirm
that B's id exists (and so that B is a customer, or that a client is on its books),
which is itself confidential; answering exactly as for an id that exists nowhere makes
probing ids teach nothing. The refusal changes nothing and never echoes the ids or names
the caller typed. The local operator (`local:<uid>`, the daemon's own account on its
machine) is bound to no practice and keeps naming any practice, as before.

The prober is an operator admin of A (`*`: every permission), so nothing here is
refused for a missing permission: only for being another practice's.
"""
from __future__ import annotations

import contextlib
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from strongroom.core import demo
from strongroom.core.auth.users import create_user
from strongroom.core.db.models import Role
from strongroom.core.principal import SYSTEM
from strongroom.core.repository import services as services_repo
from strongroom.core.repository import staff as staff_repo
from strongroom.core.repository.clients import insert_clients
from strongroom.core.repository.practices import create_practice, only_practice
from strongroom.core.repository.sessions import create_session
from strongroom.core.retention import erasure, holds
from tests.conftest import per_engine_per_module
from tests.daemon.conftest import (PASSWORD, data_transaction, error_of, login, make_data_dir, running_daemon,
                                   seed_sync_demo, wait_run)

WHEN = "2031-05-06T10:00:00+00:00"


def _seed_practice(ctx, conn, practice: uuid.UUID, tag: str) -> dict:
    """A client, a staff member, a service, an appointment and a client hold in PRACTICE."""
    clients: list = []
    insert_clients(conn, ctx.keyring, SYSTEM, practice, demo.client_records(2), created=clients)
    staff = staff_repo.create_staff(conn, SYSTEM, practice, {"first_name": "Sam", "last_name": tag, "role": "STAFF"})
    service = services_repo.create_service(conn, SYSTEM, practice, {"name": f"Intake {tag}", "category": "intake",
                                                                    "duration_minutes": 50, "price_cents": 9000})
    appointment = create_session(conn, ctx.keyring, SYSTEM, {
        "client_id": clients[0], "starts_at": datetime(2031, 1, 2, 9, tzinfo=timezone.utc),
        "service_id": service, "staff_id": staff})
    hold = holds.place_hold(conn, actor="test", reason=f"matter {tag}", client_id=clients[0])
    erasure.request_erasure(conn, client_id=clients[1], actor=f"user:seed{tag}", reason=f"asked {tag}")
    return {"practice": str(practice), "client": str(clients[0]), "other_client": str(clients[1]),
            "staff": str(staff), "service": str(service), "appointment": str(appointment), "hold": str(hold.id)}


@contextlib.contextmanager
def _two_practices_daemon(tmp_path: Path, db_url: str):
    """A daemon over practice A (`opa`, an operator admin of A) and practice B (`bossb`,
    B's owner), each with its own client, staff, service, appointment, hold and request."""
    data_dir = make_data_dir(tmp_path, db_url)
    with data_transaction(data_dir) as (ctx, conn):
        a = only_practice(conn)
        _, op_enrol = create_user(conn, ctx.keyring, ctx.settings, a, "opa", PASSWORD, Role.OP_ADMIN, actor="test")
        seeded_a = _seed_practice(ctx, conn, a, "A")
        b = create_practice(conn, SYSTEM, "Second Practice")
        _, b_enrol = create_user(conn, ctx.keyring, ctx.settings, b, "bossb", PASSWORD, Role.ADMIN, actor="test")
        seeded_b = _seed_practice(ctx, conn, b, "B")
    with running_daemon(data_dir, tmp_path) as proc:
        proc.a, proc.b = seeded_a, seeded_b
        proc.opa = login(proc, "opa", op_enrol.secret)
        proc.bossb = login(proc, "bossb", b_enrol.secret)
        yield proc


@pytest.fixture
def two_practices(tmp_path, db_url):
    with _two_practices_daemon(tmp_path, db_url) as proc:
        yield proc


probed_practices = per_engine_per_module(
    "probed_practices", _two_practices_daemon,
    "`two_practices` shared by the probes of one engine (each refused, changing nothing, and "
    "checking so itself: B's state before and after) and by the tests that only read or are "
    "refused (no row, run, login or policy of theirs reaches another).")


def _b_state(d) -> list:
    """Everything of B's the probes could touch, as B's owner sees it."""
    b, token = d.b, d.bossb
    return [d.call("practice.show", token=token),
            d.call("staff.list", {"include_inactive": True}, token=token),
            d.call("service.list", {"include_inactive": True}, token=token),
            d.call("appointment.list", {"client_id": b["client"]}, token=token),
            d.call("appointment.list", {"client_id": b["other_client"]}, token=token),
            d.call("practice.encryption.show", token=token)["level"],
            d.call("hold.list", {"include_released": True}, token=token),
            d.call("erasure.list", {"include_closed": True}, token=token),
            [(u["username"], u["role"], u["locked_until"]) for u in d.call("user.list", token=token)],
            d.call("user.grant.list", {"username": "bossb", "include_ended": True}, token=token)]


# (command, args naming B's objects by key of d.b; "{x}" is replaced by B's id)
PROBES = [
    ("practice.show", {"practice_id": "{practice}"}),
    ("practice.set", {"practice_id": "{practice}", "phone": "+1 555 0199"}),
    ("practice.encryption.show", {"practice_id": "{practice}"}),
    ("practice.encryption.set", {"practice_id": "{practice}", "level": "standard"}),
    ("staff.list", {"practice_id": "{practice}"}),
    ("staff.add", {"practice_id": "{practice}", "first_name": "Eve", "last_name": "Probe", "role": "STAFF"}),
    ("staff.set", {"staff_id": "{staff}", "phone": "+1 555 0198"}),
    ("service.list", {"practice_id": "{practice}"}),
    ("service.add", {"practice_id": "{practice}", "name": "Probe", "category": "x", "duration_minutes": 30,
                     "price_cents": 1}),
    ("service.set", {"service_id": "{service}", "price_cents": 1}),
    ("appointment.list", {"client_id": "{client}"}),
    ("appointment.show", {"appointment_id": "{appointment}"}),
    ("appointment.add", {"client_id": "{client}", "starts_at": WHEN}),
    ("appointment.set", {"appointment_id": "{appointment}", "price_cents": 1}),
    ("file.list", {"client_id": "{client}"}),
    ("file.add", {"client_id": "{client}", "name": "probe.pdf", "content_type": "application/pdf", "size": 10}),
    ("reconcile.list", {"practice_id": "{practice}"}),
    ("reconcile.run", {"practice_id": "{practice}"}),
    ("hold.place", {"client_id": "{other_client}", "reason": "probe"}),
    ("hold.place", {"practice_id": "{practice}", "reason": "probe"}),
    ("hold.release", {"hold_id": "{hold}"}),
    ("erasure.request", {"client_id": "{client}", "reason": "probe"}),
]

# Accounts are named by username; B's owner is `bossb`.
USER_PROBES = [
    ("user.lock", {"username": "bossb", "reason": "probe"}),
    ("user.unlock", {"username": "bossb"}),
    ("user.role.set", {"username": "bossb", "role": "staff"}),
    ("user.totp.reset", {"username": "bossb"}),
    ("user.grant.add", {"username": "bossb", "permission": "audit:read", "duration": "1h"}),
    ("user.grant.list", {"username": "bossb"}),
    ("user.profile.show", {"username": "bossb"}),
    ("user.profile.set", {"username": "bossb", "max_sessions": 1}),
    ("user.consent.add", {"username": "bossb", "version": "2024-01"}),
    ("user.device.list", {"username": "bossb"}),
]


def _fill(args: dict, ids: dict) -> dict:
    """ARGS with each "{key}" replaced by ids[key]."""
    return {k: (ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v) for k, v in args.items()}


def _made_up(args: dict) -> dict:
    """ARGS naming objects that exist nowhere: fresh ids, and a username nobody has."""
    fresh = {k: str(uuid.uuid4()) for k in ("practice", "client", "other_client", "staff", "service",
                                             "appointment", "hold")}
    filled = _fill(args, fresh)
    return {**filled, "username": "nobody-such"} if "username" in args else filled


@pytest.mark.parametrize("cmd, args", PROBES + USER_PROBES, ids=lambda v: v if isinstance(v, str) else "")
def test_a_user_of_practice_a_cannot_reach_practice_b_by_naming_its_ids(probed_practices, cmd, args):
    d = probed_practices
    before = _b_state(d)
    naming_b = _fill(args, d.b)
    refused = error_of(d, cmd, naming_b, d.opa)
    # The same answer as for ids (or a name) that exist nowhere: nothing to learn from it.
    nowhere = error_of(d, cmd, _made_up(args), d.opa)
    assert refused.code == "not_found", (cmd, refused.code, refused.message)
    assert (refused.code, refused.message) == (nowhere.code, nowhere.message)
    for typed in naming_b.values():
        assert str(typed) not in refused.message
    assert _b_state(d) == before


def test_lists_without_ids_show_only_the_callers_practice(probed_practices):
    d = probed_practices
    assert {u["username"] for u in d.call("user.list", token=d.opa)} == {"auditor1", "clinician", "opa"}
    assert {h["id"] for h in d.call("hold.list", token=d.opa)} == {d.a["hold"]}
    assert {r["client_id"] for r in d.call("erasure.list", token=d.opa)} == {d.a["other_client"]}
    assert {s["username"] for s in d.call("session.list", token=d.opa)} == {"opa"}
    assert d.call("practice.show", token=d.opa)["id"] == d.a["practice"]
    assert [s["id"] for s in d.call("staff.list", token=d.opa)["items"]] == [d.a["staff"]]
    assert d.call("practice.show", token=d.bossb)["id"] == d.b["practice"]
    assert [s["id"] for s in d.call("service.list", token=d.bossb)["items"]] == [d.b["service"]]


def test_naming_ones_own_practice_works_and_ones_own_objects_do(two_practices):
    d = two_practices
    assert d.call("practice.show", {"practice_id": d.a["practice"]}, token=d.opa)["id"] == d.a["practice"]
    assert d.call("appointment.show", {"appointment_id": d.a["appointment"]}, token=d.opa)["id"] == d.a["appointment"]
    added = d.call("appointment.add", {"client_id": d.a["client"], "starts_at": WHEN}, token=d.opa)
    assert added["client_id"] == d.a["client"]
    d.call("staff.set", {"staff_id": d.b["staff"], "phone": "+1 555 0197"}, token=d.bossb)


def test_an_own_client_cannot_be_booked_with_the_other_practices_service_or_staff(probed_practices):
    d = probed_practices
    for field in ("service_id", "staff_id"):
        refused = error_of(d, "appointment.add", {"client_id": d.a["client"], "starts_at": WHEN,
                                                  field: d.b[field.removesuffix("_id")]}, d.opa)
        assert refused.code in ("not_found", "bad_request") and d.b[field.removesuffix("_id")] not in refused.message


def test_the_local_operator_still_names_any_practice(probed_practices):
    d = probed_practices
    assert d.call("practice.show", {"practice_id": d.b["practice"]})["id"] == d.b["practice"]
    assert d.call("appointment.show", {"appointment_id": d.b["appointment"]})["id"] == d.b["appointment"]
    assert {u["username"] for u in d.call("user.list")} == {"auditor1", "clinician", "opa", "bossb"}


def test_an_export_or_a_job_reads_only_the_callers_practice(two_practices):
    """The export and reconcile jobs read every practice unless told one: a caller bound
    to a practice may name only theirs, and with two practices must name it."""
    d = two_practices
    def started() -> list:
        return [r["id"] for r in d.call("job.list", {"limit": 50}) if r["job_kind"] in ("export", "reconcile")]
    runs_before = started()
    for cmd, args in (("export.run", {"tables": ["clients"], "format": "csv", "filters": {"practice_id": d.b["practice"]}}),
                      ("export.run", {"tables": ["clients"], "format": "csv", "filters": {"client_id": d.b["client"]}}),
                      ("job.run", {"kind": "export", "params": {"tables": ["clients"], "format": "csv",
                                                                "filters": {"practice_id": d.b["practice"]}}}),
                      ("job.run", {"kind": "reconcile", "params": {"practice_id": d.b["practice"]}})):
        refused = error_of(d, cmd, args, d.opa)
        assert refused.code == "not_found", (cmd, args, refused.message)
        assert d.b["practice"] not in refused.message and d.b["client"] not in refused.message
    unnamed = error_of(d, "export.run", {"tables": ["clients"], "format": "csv"}, d.opa)
    assert unnamed.code == "bad_request" and "practice_id" in unnamed.message
    assert started() == runs_before
    mine = d.call("export.run", {"tables": ["clients"], "format": "csv", "filters": {"practice_id": d.a["practice"]}}, token=d.opa)
    assert mine["job_kind"] == "export"


# --- what a practice's people read: runs, exports, audit, security events, plans --------

def _run_practice_jobs(d):
    """A finished export and reconcile of B's (started by B's owner), an export of A's
    and a whole-database integrity run (started by the local operator), as `d.runs`."""
    def run(cmd: str, args: dict, token: str | None = "local") -> str:   # one export at a time
        return wait_run(d, d.call(cmd, args, token=token)["id"])["id"]
    b_export = run("export.run", {"tables": ["clients"], "format": "csv",
                                  "filters": {"practice_id": d.b["practice"]}}, d.bossb)
    b_reconcile = run("job.run", {"kind": "reconcile"}, d.bossb)
    a_export = run("export.run", {"tables": ["clients"], "format": "csv",
                                  "filters": {"practice_id": d.a["practice"]}}, d.opa)
    machine = run("job.run", {"kind": "integrity"})
    d.runs = {"b_export": b_export, "b_reconcile": b_reconcile, "a_export": a_export, "machine": machine}
    return d


@pytest.fixture
def practice_runs(two_practices):
    """`two_practices` with the runs of `_run_practice_jobs`."""
    return _run_practice_jobs(two_practices)


@contextlib.contextmanager
def _two_practices_with_runs(tmp_path: Path, db_url: str):
    with _two_practices_daemon(tmp_path, db_url) as proc:
        yield _run_practice_jobs(proc)


read_runs = per_engine_per_module(
    "read_runs", _two_practices_with_runs,
    "`practice_runs` shared by one engine's tests that only read what the runs left (and are "
    "refused the rest): none starts, cancels or configures anything.")


def test_job_runs_of_another_practice_are_neither_listed_nor_shown(read_runs):
    d = read_runs
    seen = {r["id"]: r for r in d.call("job.list", {"limit": 50}, token=d.opa)}
    assert d.runs["a_export"] in seen and seen[d.runs["a_export"]]["params"]["filters"]["practice_id"] == d.a["practice"]
    assert d.runs["b_export"] not in seen and d.runs["b_reconcile"] not in seen
    for run_id in (d.runs["b_export"], d.runs["b_reconcile"]):
        refused = error_of(d, "job.get", {"run_id": run_id}, d.opa)
        nowhere = error_of(d, "job.get", {"run_id": str(uuid.uuid4())}, d.opa)
        assert refused.code == nowhere.code == "not_found"
        assert error_of(d, "job.cancel", {"run_id": run_id}, d.opa).code == "not_found"
    assert d.call("job.get", {"run_id": d.runs["b_reconcile"]}, token=d.bossb)["params"]["practice_id"] == d.b["practice"]
    # Everyone's run: visible as a run, its figures and evidence withheld.
    machine = seen[d.runs["machine"]]
    assert machine["status"] == "succeeded" and machine["params"] == {} and machine["result"] is None
    assert "every practice" in machine["withheld"] and seen[d.runs["a_export"]].get("withheld") is None
    assert d.call("job.get", {"run_id": d.runs["machine"]})["result"] is not None      # the local operator
    local = {r["id"] for r in d.call("job.list", {"limit": 50})}
    assert set(d.runs.values()) <= local


def test_a_practices_run_behind_many_of_anothers_still_fills_its_page(two_practices, db_url):
    """job.list leaves other practices' runs out and reads on until the page is full: a
    run of A's behind thirty newer runs of B's is still A's to see with limit 1."""
    from datetime import timedelta
    from sqlalchemy import insert
    from strongroom.core.db.models import JobRun, JobStatus
    from strongroom.core.ids import new_id
    d = two_practices
    start = datetime(2031, 1, 1, tzinfo=timezone.utc)
    a_run = new_id()

    def run(run_id, practice: str, minutes: int) -> dict:
        return {"id": run_id, "job_kind": "reconcile", "trigger": "manual", "status": JobStatus.SUCCEEDED,
                "params": {"practice_id": practice}, "progress_done": 0, "queued_at": start + timedelta(minutes=minutes),
                "finished_at": start + timedelta(minutes=minutes)}

    with data_transaction(d.data_dir) as (_ctx, conn):
        conn.execute(insert(JobRun.__table__), [run(a_run, d.a["practice"], 0)]
                     + [run(new_id(), d.b["practice"], 1 + i) for i in range(30)])
    shown = d.call("job.list", {"kind": "reconcile", "limit": 1}, token=d.opa)
    assert [r["id"] for r in shown] == [str(a_run)]
    assert len(d.call("job.list", {"kind": "reconcile", "limit": 5}, token=d.bossb)) == 5


def test_exports_and_their_configurations_of_another_practice_stay_hidden(practice_runs):
    d = practice_runs
    mine = d.call("export.list", token=d.opa)
    assert mine["total"] == 1 and [e["filters"]["practice_id"] for e in mine["items"]] == [d.a["practice"]]
    theirs = d.call("export.list", token=d.bossb)["items"]
    assert [e["filters"]["practice_id"] for e in theirs] == [d.b["practice"]]
    refused = error_of(d, "export.show", {"export_id": theirs[0]["id"]}, d.opa)
    nowhere = error_of(d, "export.show", {"export_id": str(uuid.uuid4())}, d.opa)
    assert refused.code == nowhere.code == "not_found" and theirs[0]["id"] not in refused.message
    assert d.call("export.list")["total"] == 2                               # the local operator: both
    d.call("export.configuration.create", {"name": "b-weekly", "tables": ["clients"], "format": "csv",
                                           "filters": {"practice_id": d.b["practice"]}}, token=d.bossb)
    assert [c["name"] for c in d.call("export.configuration.list", token=d.opa)["items"]] == []
    assert [c["name"] for c in d.call("export.table.list", token=d.opa)["configurations"]] == []
    assert [c["name"] for c in d.call("export.configuration.list", token=d.bossb)["items"]] == ["b-weekly"]
    changed = error_of(d, "export.configuration.set", {"name": "b-weekly", "retention_days": 3}, d.opa)
    missing = error_of(d, "export.configuration.set", {"name": "no-such", "retention_days": 3}, d.opa)
    assert (changed.code, changed.message) == (missing.code, missing.message) == (missing.code, missing.message)
    assert changed.code == "not_found"
    saved = error_of(d, "export.configuration.create", {"name": "a-takes-b", "tables": ["clients"], "format": "csv",
                                                         "filters": {"practice_id": d.b["practice"]}}, d.opa)
    assert saved.code == "not_found" and d.b["practice"] not in saved.message


def test_an_export_run_by_a_saved_configurations_name_belongs_to_that_configurations_practice(practice_runs):
    """Run by name, an export's params carry the configuration, not its filters: the run
    is still B's (hidden from A like any other of B's runs), not a whole-database run
    that every practice sees listed."""
    d = practice_runs
    d.call("export.configuration.create", {"name": "b-nightly", "tables": ["clients"], "format": "csv",
                                           "filters": {"practice_id": d.b["practice"]}}, token=d.bossb)
    run_id = wait_run(d, d.call("export.run", {"configuration": "b-nightly"}, token=d.bossb)["id"])["id"]
    assert run_id not in {r["id"] for r in d.call("job.list", {"limit": 50}, token=d.opa)}
    assert error_of(d, "job.get", {"run_id": run_id}, d.opa).code == "not_found"
    assert d.call("job.get", {"run_id": run_id}, token=d.bossb)["params"]["configuration"] == "b-nightly"
    refused = error_of(d, "export.run", {"configuration": "b-nightly"}, d.opa)
    assert refused.code == "not_found" and "b-nightly" not in refused.message


def test_the_audit_trail_and_security_events_show_only_the_callers_practice(read_runs):
    d = read_runs
    entries = d.call("audit.tail", {"limit": 500}, token=d.opa)
    assert entries and all(e["actor"] != "user:bossb" for e in entries)
    assert any(e["actor"] == "user:opa" for e in entries)
    b_rows = {d.b[k] for k in ("practice", "client", "other_client", "staff", "service", "appointment", "hold")}
    assert not [e for e in entries if e["record_id"] in b_rows]
    assert any(e["actor"] == "user:bossb" for e in d.call("audit.tail", {"limit": 500}, token=d.bossb))
    assert any(e["actor"] == "user:bossb" for e in d.call("audit.tail", {"limit": 500}))      # local: everything
    events = d.call("security.event.list", {"limit": 500}, token=d.opa)
    assert events and {e["username"] for e in events} <= {"opa", "auditor1", "clinician"}     # A's people
    assert "bossb" in {e["username"] for e in d.call("security.event.list", {"limit": 500})}


def test_a_retention_plan_and_integrity_evidence_cover_the_callers_practice_only(two_practices):
    d = two_practices
    policy = {"table_name": "clients", "archive_after_days": 1, "delete_after_days": 1}
    refused = error_of(d, "retention.policy.set", policy, d.opa)     # a policy reaches every practice
    assert refused.code == "forbidden" and d.call("retention.policy.list") == []
    d.call("retention.policy.set", policy)                                 # the local operator
    plan = d.call("retention.plan.get", {"horizon_days": 3650}, token=d.opa)
    assert plan["actions"] and {a["practice_id"] for a in plan["actions"]} == {d.a["practice"]}
    assert plan["holds_in_force"] == 1                      # A's client hold, not B's
    everyone = d.call("retention.plan.get", {"horizon_days": 3650})
    assert {a["practice_id"] for a in everyone["actions"]} == {d.a["practice"], d.b["practice"]}
    assert everyone["holds_in_force"] == 2
    wait_run(d, d.call("job.run", {"kind": "integrity"})["id"])
    narrowed = d.call("integrity.report.get", token=d.opa)["checks"]
    assert narrowed and all(c["evidence"] == {"withheld": "names rows of every practice"} for c in narrowed)
    assert all("withheld" not in c["evidence"] for c in d.call("integrity.report.get")["checks"])


def test_a_key_rotation_names_only_the_callers_clients(two_practices):
    d = two_practices
    before = [r["id"] for r in d.call("job.list", {"kind": "key_rotation"})]
    refused = error_of(d, "job.run", {"kind": "key_rotation", "params": {"client_ids": [d.a["client"], d.b["client"]]}},
                       d.opa)
    assert refused.code == "not_found" and "client_ids" in refused.message and d.b["client"] not in refused.message
    assert [r["id"] for r in d.call("job.list", {"kind": "key_rotation"})] == before
    every = error_of(d, "job.run", {"kind": "key_rotation"}, d.opa)        # every client: every practice
    assert every.code == "forbidden" and "client_ids" in every.message
    assert [r["id"] for r in d.call("job.list", {"kind": "key_rotation"})] == before
    mine = d.call("job.run", {"kind": "key_rotation", "params": {"client_ids": [d.a["client"]]}}, token=d.opa)
    assert wait_run(d, mine["id"])["status"] == "succeeded"


def test_sync_conflicts_over_another_practices_rows_stay_hidden(tmp_path, db_url):
    """The demo's conflicts are over practice A's clients: B's operator (sync:resolve)
    lists none and is answered not_found for each, as for a conflict that does not exist."""
    data_dir = make_data_dir(tmp_path, db_url)
    seeded = seed_sync_demo(data_dir)
    with data_transaction(data_dir) as (ctx, conn):
        b = create_practice(conn, SYSTEM, "Second Practice")
        _, b_enrol = create_user(conn, ctx.keyring, ctx.settings, b, "opb", PASSWORD, Role.OPERATOR, actor="test")
    with running_daemon(data_dir, tmp_path) as d:
        bossb = login(d, "opb", b_enrol.secret if b_enrol else None)
        operator = login(d, "operator1", seeded["operator_totp"])
        assert {c["id"] for c in d.call("sync.conflict.list", token=operator)} >= set(seeded["conflicts"])
        assert d.call("sync.conflict.list", token=bossb) == []
        conflict = seeded["conflicts"][0]
        for cmd, args in (("sync.conflict.get", {"conflict_id": conflict}),
                          ("sync.conflict.field.get", {"conflict_id": conflict, "field": "email"}),
                          ("sync.conflict.resolve", {"conflict_id": conflict, "choices": {"email": "local"}})):
            refused = error_of(d, cmd, args, bossb)
            nowhere = error_of(d, cmd, {**args, "conflict_id": str(uuid.uuid4())}, bossb)
            assert refused.code == nowhere.code == "not_found", (cmd, refused.message)
        assert d.call("sync.conflict.get", {"conflict_id": conflict}, token=operator)["status"] == "open"


def test_running_jobs_in_status_and_health_follow_the_runs_rule(probed_practices):
    """What `status` and `health` list as running, for a caller narrowed to A: A's run
    whole, a whole-database run without its message, B's run not at all; the operator
    sees all three as they are."""
    from strongroom.daemon import tenancy
    d = probed_practices
    running = [{"run_id": "a", "kind": "export", "done": 1, "total": 2, "message": "clients"},
               {"run_id": "b", "kind": "reconcile", "done": 1, "total": 2, "message": "pairs of B"},
               {"run_id": "all", "kind": "backup", "done": 1, "total": 2, "message": "chunks"}]
    params = {"a": {"filters": {"practice_id": d.a["practice"]}}, "b": {"practice_id": d.b["practice"]},
              "all": {}}
    with data_transaction(d.data_dir) as (_, conn):
        shown = tenancy.running_shown(conn, uuid.UUID(d.a["practice"]), running, params.get)
        assert tenancy.running_shown(conn, None, running, params.get) == running
    assert [(j["run_id"], j["message"]) for j in shown] == [("a", "clients"), ("all", None)]
    assert [j.get("withheld") for j in shown] == [None, tenancy.WITHHELD_WHY]

    # The commands apply it for a caller bound to A, and leave the operator's view whole.
    from types import SimpleNamespace

    from strongroom.core.principal import Principal
    from strongroom.daemon.commands import Call, health_cmd, status_cmd
    with data_transaction(d.data_dir) as (ctx, _):
        daemon = SimpleNamespace(ctx=ctx, runner=SimpleNamespace(params_of=params.get),
                                 status=lambda: {"role": "leader", "running_jobs": running},
                                 health_snapshot=lambda: {"role": "leader", "running_jobs": running})
        bound = Principal("user:opa", practice_id=uuid.UUID(d.a["practice"]))
        for handler in (status_cmd, health_cmd):
            assert handler(daemon, Call(bound, None, None))["running_jobs"] == shown
            assert handler(daemon, Call(Principal("local:0"), None, None))["running_jobs"] == running
    for cmd in ("status", "health"):
        assert d.call(cmd, token=d.opa)["running_jobs"] == []       # over the socket, nothing running
