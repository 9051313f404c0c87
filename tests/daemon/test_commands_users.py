"""User management and the integrity report over the control socket, against a real
daemon: the changes, their evidence, and refusals that change nothing."""
from __future__ import annotations

import contextlib
import json
import time

import pyotp
import pytest

from strongroom.console.client import ClientError
from strongroom.core.db.models import Role
from tests.conftest import per_engine_per_module
from tests.daemon.conftest import PASSWORD, add_admin, login, make_data_dir, running_daemon


def refused(daemon, cmd: str, args: dict, token="local") -> ClientError:
    with pytest.raises(ClientError) as caught:
        daemon.call(cmd, args, token=token)
    return caught.value


def user(daemon, username: str) -> dict:
    return next(u for u in daemon.call("user.list") if u["username"] == username)


def events(daemon, event_type: str) -> list[dict]:
    return daemon.call("security.event.list", {"event_type": event_type, "limit": 20})


@pytest.fixture
def boss(data_dir):
    return add_admin(data_dir)


@contextlib.contextmanager
def _refusing_daemon(tmp, db_url):
    """A daemon over the two test users and `boss`, the only administrator, with the
    auditor (no user:manage) logged in once, by a login that succeeds (`.auditor`)."""
    data_dir = make_data_dir(tmp, db_url)
    add_admin(data_dir)
    with running_daemon(data_dir, tmp) as proc:
        proc.auditor = login(proc, "auditor1")
        yield proc


refusals_daemon = per_engine_per_module(
    "refusals_daemon", _refusing_daemon,
    "`daemon` with `boss` shared by one engine's tests of refusals: each is refused, changes nothing "
    "another reads (no lock, role, grant, user or failed login), and checks so itself.")


def test_admin_locks_a_user_whose_session_ends_then_unlocks(daemon, boss):
    admin = login(daemon, "boss", boss)
    victim = login(daemon, "clinician")
    assert daemon.call("whoami", token=victim)["actor"] == "user:clinician"
    locked = daemon.call("user.lock", {"username": "clinician", "reason": "laptop stolen"}, token=admin)
    assert locked["locked_until"].startswith("9999-12-31")
    err = refused(daemon, "whoami", {}, token=victim)
    assert err.code == "unauthenticated"
    event = events(daemon, "user_locked")[0]
    assert event["username"] == "clinician" and event["details"]["reason"] == "laptop stolen"
    assert event["details"]["sessions_revoked"] == 1
    err = refused(daemon, "auth.login", {"username": "clinician", "password": PASSWORD}, token=None)
    assert err.code == "unauthenticated" and "clinician" not in err.message   # as for an unknown name
    daemon.call("user.unlock", {"username": "clinician"}, token=admin)
    assert user(daemon, "clinician")["locked_until"] is None
    assert login(daemon, "clinician")


def test_nobody_locks_themselves_and_the_refusal_is_recorded(daemon, boss, data_dir):
    add_admin(data_dir, "second")
    admin = login(daemon, "boss", boss)
    err = refused(daemon, "user.lock", {"username": "boss"}, token=admin)
    assert err.code == "forbidden" and "your own account" in err.message
    assert user(daemon, "boss")["locked_until"] is None
    assert daemon.call("whoami", token=admin)["actor"] == "user:boss"   # still logged in
    refusal = events(daemon, "user_change_refused")[0]
    assert refusal["details"]["action"] == "user_locked" and refusal["username"] == "boss"


def test_the_last_admin_can_be_neither_locked_nor_demoted(refusals_daemon):
    daemon = refusals_daemon
    err = refused(daemon, "user.lock", {"username": "boss"})
    assert err.code == "conflict" and "last active account able to manage users" in err.message
    err = refused(daemon, "user.role.set", {"username": "boss", "role": "STAFF"})
    assert err.code == "conflict" and "last active account" in err.message
    after = user(daemon, "boss")
    assert after["locked_until"] is None and after["role"] == "ADMIN"


def test_without_user_manage_every_change_is_forbidden(refusals_daemon):
    daemon, auditor = refusals_daemon, refusals_daemon.auditor
    for cmd, args in (("user.lock", {"username": "clinician"}), ("user.unlock", {"username": "clinician"}),
                      ("user.totp.reset", {"username": "clinician"}),
                      ("user.role.set", {"username": "clinician", "role": "STAFF"}),
                      ("user.grant.add", {"username": "clinician", "permission": "audit:read", "duration": "1h"}),
                      ("user.grant.list", {"username": "clinician"})):
        err = refused(daemon, cmd, args, token=auditor)
        assert err.code == "forbidden" and "user:manage" in err.message, cmd
    after = user(daemon, "clinician")
    assert after["locked_until"] is None and after["role"] == "PRACTITIONER"
    assert daemon.call("user.grant.list", {"username": "clinician", "include_ended": True}) == []


def test_unknown_user_and_bad_arguments_are_clear_errors(refusals_daemon):
    daemon = refusals_daemon
    err = refused(daemon, "user.lock", {"username": "ghost"})
    assert err.code == "not_found" and "no user by that name" in err.message and "ghost" not in err.message
    err = refused(daemon, "user.role.set", {"username": "clinician", "role": "wizard"})
    assert err.code == "bad_request" and "expected one of" in err.message
    err = refused(daemon, "user.grant.add", {"username": "clinician", "permission": "audit:read", "duration": "forever"})
    assert err.code == "bad_request" and "duration" in err.message
    err = refused(daemon, "user.lock", {"username": "clinician", "minutes": 0})
    assert err.code == "bad_request" and "minutes" in err.message
    assert user(daemon, "clinician")["locked_until"] is None
    assert daemon.call("user.grant.list", {"username": "clinician", "include_ended": True}) == []


def test_role_change_applies_at_once_and_is_audited(daemon, boss):
    admin = login(daemon, "boss", boss)
    staff = login(daemon, "clinician")
    changed = daemon.call("user.role.set", {"username": "clinician", "role": "MANAGER", "reason": "promoted"},
                          token=admin)
    assert changed["role"] == "MANAGER"
    assert refused(daemon, "whoami", {}, token=staff).code == "unauthenticated"   # re-login for new permissions
    again = login(daemon, "clinician")
    assert "audit:read" in daemon.call("whoami", token=again)["permissions"]
    assert events(daemon, "role_changed")[0]["details"]["to"] == "MANAGER"
    tail = daemon.call("audit.tail", {"limit": 50})
    assert any(e["action"] == "UPDATE" and e["details"].get("event") == "role_changed" for e in tail)


def test_grant_with_expiry_gives_the_permission_until_revoked(daemon, boss):
    admin = login(daemon, "boss", boss)
    grant = daemon.call("user.grant.add", {"username": "clinician", "permission": "audit:read", "duration": "2h",
                                       "reason": "records review"}, token=admin)
    assert grant["active"] and grant["granted_by"] == "user:boss"
    clinician = login(daemon, "clinician")
    assert isinstance(daemon.call("job.list", {"limit": 1}, token=clinician), list)   # audit:read now
    listed = daemon.call("user.grant.list", {"username": "clinician"}, token=admin)
    assert [g["id"] for g in listed] == [grant["id"]]
    err = refused(daemon, "user.grant.add", {"username": "clinician", "permission": "keys:manage", "duration": "1h"},
                  token=admin)
    assert err.code == "forbidden" and "keys:manage" in err.message
    daemon.call("user.grant.revoke", {"grant_id": grant["id"], "reason": "done"}, token=admin)
    err = refused(daemon, "job.list", {"limit": 1}, token=clinician)
    assert err.code == "forbidden"
    err = refused(daemon, "user.grant.revoke", {"grant_id": grant["id"]}, token=admin)
    assert err.code == "conflict" and "already revoked" in err.message
    assert daemon.call("user.grant.list", {"username": "clinician"}, token=admin) == []


def test_reset_2fa_shows_nobody_a_secret_and_the_owner_enrols_a_new_one_at_next_login(daemon, boss, data_dir):
    """The reply to whoever resets carries no secret; the old code opens nothing; the
    owner's next login with the right password is offered a new secret, and a code from
    it opens the session."""
    reset = daemon.call("user.totp.reset", {"username": "boss"})
    assert reset["user"]["totp_pending"] and reset["pending_enrolment"] is True
    assert "otpauth" not in json.dumps(reset) and "secret" not in json.dumps(reset)
    again = daemon.call("auth.login", {"username": "boss", "password": PASSWORD,
                                       "totp": pyotp.TOTP(boss).now()}, token=None)
    assert again["enrolment_required"] and "token" not in again
    new_secret = again["enrolment"]["secret"]
    assert new_secret != boss
    session = daemon.call("auth.enrol", {"enrolment_token": again["enrolment"]["token"],
                                         "totp": pyotp.TOTP(new_secret).now()}, token=None)
    assert daemon.call("whoami", token=session["token"])["actor"] == "user:boss"
    assert not user(daemon, "boss")["totp_pending"]
    assert new_secret not in str(events(daemon, "totp_reset")) and new_secret not in daemon.log()


def test_integrity_report_before_and_after_a_run(daemon):
    empty = daemon.call("integrity.report.get")
    assert empty["latest"] is None and empty["checks"] == [] and empty["audit_chain"]["head_id"] >= 1
    run = daemon.call("job.run", {"kind": "integrity"})
    deadline = time.monotonic() + 60
    while daemon.call("job.get", {"run_id": run["id"]})["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, "integrity run did not finish"
        time.sleep(0.2)
    report = daemon.call("integrity.report.get")
    assert report["latest"]["id"] == run["id"] and report["latest"]["status"] == "succeeded"
    names = [c["name"] for c in report["checks"]]
    assert "audit chain" in names and "clients row checksums" in names
    chain = next(c for c in report["checks"] if c["name"] == "audit chain")
    assert chain["status"] == "ok" and chain["evidence"]["checked"] >= 1 and chain["check_type"] == "audit_chain"
    assert report["audit_chain"]["last_check"]["status"] == "ok"
    assert [h["id"] for h in report["history"]] == [run["id"]]


def test_nobody_acts_on_an_account_holding_a_permission_they_lack(daemon, boss, data_dir):
    """A clinical ADMIN lacks the job permissions and more, which an operator `admin` holds: it
    may neither lock, unlock, reset the second factor of, nor end a session of that
    account; each refusal names the permissions and changes nothing."""
    root_secret = add_admin(data_dir, "root", Role.OP_ADMIN)
    root = login(daemon, "root", root_secret)
    admin = login(daemon, "boss", boss)
    before = user(daemon, "root")
    for cmd, args in (("user.lock", {"username": "root", "reason": "takeover"}),
                      ("user.unlock", {"username": "root"}),
                      ("user.totp.reset", {"username": "root"}),
                      ("user.grant.add", {"username": "root", "permission": "audit:read", "duration": "1h"})):
        err = refused(daemon, cmd, args, token=admin)
        assert err.code == "forbidden" and "holding permissions it lacks (config:write, " in err.message, cmd
    root_session = daemon.call("whoami", token=root)["session_id"]
    err = refused(daemon, "session.revoke", {"session_id": root_session}, token=admin)
    assert err.code == "forbidden" and "holding permissions it lacks" in err.message
    assert "root" not in err.message                         # the refusal names permissions, not the account
    assert user(daemon, "root") == before
    assert daemon.call("whoami", token=root)["actor"] == "user:root"          # still logged in
    assert daemon.call("user.lock", {"username": "clinician", "reason": "leave"}, token=admin)["locked_until"]


def test_an_admin_adds_a_user_who_sets_their_own_password_and_second_factor(daemon, boss):
    """user.add answers with an invitation and no password or secret; the person takes it
    up with a password of their own, enrols a second factor where the role requires one,
    and is logged in. The invitation works once, and a role stronger than the caller's
    is refused with nothing made."""
    admin = login(daemon, "boss", boss)
    made = daemon.call("user.add", {"username": "newcomer", "role": "ADMIN", "full_name": "New Person"},
                       token=admin)
    assert made["user"]["username"] == "newcomer" and made["user"]["role"] == "ADMIN"
    assert made["invitation"] and made["expires_at"] and "secret" not in json.dumps(made)
    assert not made["user"]["totp_enabled"]
    answer = daemon.call("auth.invitation.accept", {"invitation": made["invitation"],
                                                    "password": "a passphrase of my own 42"}, token=None)
    # A practice admin needs a second factor: offered to the holder, never to the admin.
    assert answer["enrolment_required"] and "token" not in answer
    secret = answer["enrolment"]["secret"]
    session = daemon.call("auth.enrol", {"enrolment_token": answer["enrolment"]["token"],
                                         "totp": pyotp.TOTP(secret).now()}, token=None)
    assert daemon.call("whoami", token=session["token"])["actor"] == "user:newcomer"
    err = refused(daemon, "auth.invitation.accept", {"invitation": made["invitation"],
                                                     "password": "another passphrase 43"}, token=None)
    assert err.code == "unauthenticated" and "used or replaced" in err.message
    assert made["invitation"] not in daemon.log() and secret not in daemon.log()
    assert [e["username"] for e in events(daemon, "user_invited")] == ["newcomer"]

    err = refused(daemon, "user.add", {"username": "usurper", "role": "admin"}, token=admin)
    assert err.code == "forbidden" and "role admin holds permissions user:boss does not" in err.message
    assert all(u["username"] != "usurper" for u in daemon.call("user.list"))
    err = refused(daemon, "user.add", {"username": "newcomer", "role": "STAFF"}, token=admin)
    assert err.code == "conflict"
    err = refused(daemon, "auth.invitation.accept", {"invitation": "forged.token", "password": "x" * 20},
                  token=None)
    assert err.code == "unauthenticated" and "forged" not in err.message
