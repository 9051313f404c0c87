"""The control socket survives anything sent to it and answers with the documented codes."""
import json
import os
import stat

import pyotp
import pytest
import zmq
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from strongroom.console.client import ClientError
from strongroom.core.protocol import ERROR_CODES
from tests.daemon.conftest import PASSWORD, assert_alive, login, nested


def raw(daemon, *frames: bytes, timeout_ms: int = 5000) -> dict:
    """Send frames on a raw DEALER socket; return the parsed reply."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.connect(daemon.endpoint)
    try:
        sock.send_multipart(list(frames))
        return json.loads(sock.recv())
    finally:
        sock.close()
        ctx.term()


def request(cmd="status", token=None, args=None, v=1, **extra) -> bytes:
    return json.dumps({"v": v, "id": "t1", "cmd": cmd, "token": token, "args": args or {}, **extra}).encode()


# Tests on `module_daemon` share one daemon per engine: each only reads or is refused, and
# changes nothing another could see (no rows, jobs, failed logins, lockouts or revocations).
# Those that log in, log out, revoke, fail logins or write rows keep a daemon of their own.

@pytest.fixture(scope="module")
def clinician_token(module_daemon) -> str:
    """A session of the clinician (neither user:manage nor job:*:run) on the shared daemon,
    opened once by a login that succeeds: no failed login, lockout or rate limit follows."""
    return login(module_daemon, "clinician")


def test_sockets_are_private(module_daemon):
    daemon = module_daemon
    for name in ("control.sock", "events.sock", "operator.token"):
        assert stat.S_IMODE((daemon.runtime / name).stat().st_mode) == 0o600


@pytest.mark.parametrize("frame, code, words", [
    (b"not json at all", "bad_request", "not JSON"),
    (b"\xff\xfe\x00", "bad_request", "not UTF-8"),
    (b"[1, 2, 3]", "bad_request", "JSON object"),
    (b'"just a string"', "bad_request", "JSON object"),
    (request(v=2), "bad_request", "protocol version"),
    (request(v="1"), "bad_request", "protocol version"),
    (request(cmd=42), "bad_request", "cmd"),
    (request(args=[1, 2]), "bad_request", "args"),
    (request(surprise=True), "bad_request", "not a known parameter"),
    (request(cmd="teleport"), "not_found", "unknown command"),
    (request(cmd="status"), "unauthenticated", "token"),
    (request(cmd="status", token="made-up-token"), "unauthenticated", "invalid session token"),
    (request(cmd="status", token="local:0:wrong"), "unauthenticated", "local operator token"),
])
def test_malformed_frames_get_the_documented_error(module_daemon, frame, code, words):
    daemon = module_daemon
    reply = raw(daemon, frame)
    assert reply["ok"] is False and reply["error"]["code"] == code
    assert words in reply["error"]["message"]
    assert_alive(daemon)


def test_huge_frame_over_the_limit_is_refused_and_the_daemon_keeps_serving(module_daemon):
    daemon = module_daemon
    frame = request(args={"pad": "x" * (4 * 1024 * 1024 + 10)})   # the default limit: 4 MiB
    reply = raw(daemon, frame)
    assert reply["error"]["code"] == "bad_request" and "exceeds the limit" in reply["error"]["message"]
    assert_alive(daemon)


def test_multipart_garbage_is_refused(module_daemon):
    daemon = module_daemon
    reply = raw(daemon, b"garbage", b"more", request())
    assert reply["error"]["code"] == "bad_request" and "multipart" in reply["error"]["message"]
    assert_alive(daemon)


def test_wrong_argument_types_name_the_argument(module_daemon):
    daemon = module_daemon
    with pytest.raises(ClientError) as err:
        daemon.call("job.list", {"limit": "lots"})
    assert err.value.code == "bad_request" and "limit" in err.value.message
    with pytest.raises(ClientError) as err:
        daemon.call("job.get", {"run_id": "not-a-uuid"})
    assert err.value.code == "bad_request" and "run_id" in err.value.message


def test_valid_token_without_the_permission_is_forbidden(module_daemon, clinician_token):
    daemon, token = module_daemon, clinician_token
    with pytest.raises(ClientError) as err:
        daemon.call("user.list", token=token)
    assert err.value.code == "forbidden" and "user:manage" in err.value.message
    with pytest.raises(ClientError) as err:
        daemon.call("job.run", {"kind": "integrity"}, token=token)
    assert err.value.code == "forbidden"


def test_login_returns_a_session_with_client_tracking(daemon):
    token = login(daemon)
    me = daemon.call("whoami", token=token)
    assert me["actor"] == "user:auditor1" and "audit:read" in me["permissions"]
    sessions = daemon.call("session.list")
    mine = [s for s in sessions if s["username"] == "auditor1"][0]
    # The address is the transport's (this process's uid over ipc), not the SSH client
    # the login reported (tests/daemon/test_control_identity.py).
    assert (mine["client_host"], mine["client_addr"], mine["client_name"], mine["client_version"]) == \
        ("test-host", f"ipc:uid={os.getuid()}", "pytest", "1.0")


def test_revoked_token_is_refused_at_once(daemon):
    token = login(daemon)
    session_id = daemon.call("whoami", token=token)["session_id"]
    daemon.call("session.revoke", {"session_id": session_id})
    with pytest.raises(ClientError) as err:
        daemon.call("status", token=token)
    assert err.value.code == "unauthenticated" and "ended" in err.value.message


def test_logout_ends_the_session(daemon):
    token = login(daemon)
    assert daemon.call("auth.logout", token=token)["logged_out"] is True
    with pytest.raises(ClientError) as err:
        daemon.call("status", token=token)
    assert err.value.code == "unauthenticated"


def test_brute_force_hits_lockout_then_rate_limit_and_is_recorded(daemon):
    codes = []
    for _ in range(8):
        try:
            login(daemon, "auditor1", password="wrong password!!")
        except ClientError as err:
            codes.append(err.value.code if hasattr(err, "value") else err.code)
    assert codes[:3] == ["unauthenticated"] * 3
    assert "rate_limited" in codes
    with pytest.raises(ClientError) as err:
        login(daemon, "auditor1")  # the right password no longer helps
    assert err.value.code in ("unauthenticated", "rate_limited")
    events = daemon.call("security.event.list", {"limit": 50})
    kinds = {e["event_type"] for e in events}
    assert {"login_failed", "account_locked", "rate_limited"} <= kinds


def test_admin_login_needs_totp_and_refuses_replay(daemon, data_dir):
    from strongroom.core.auth.users import create_user
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Role
    from strongroom.core.repository.practices import only_practice

    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    with transaction(ctx.engine) as conn:
        _, enrolment = create_user(conn, ctx.keyring, ctx.settings, only_practice(conn), "admin1",
                                   PASSWORD, Role.OP_ADMIN, actor="test")
    ctx.close()
    with pytest.raises(ClientError) as err:
        login(daemon, "admin1")
    assert err.value.code == "unauthenticated"
    code = pyotp.TOTP(enrolment.secret).now()
    token = login(daemon, "admin1", totp=code)
    assert daemon.call("whoami", token=token)["actor"] == "user:admin1"
    with pytest.raises(ClientError):
        login(daemon, "admin1", totp=code)


def test_an_unknown_job_kind_is_not_found_and_bad_sync_params_are_refused(module_daemon):
    daemon = module_daemon
    with pytest.raises(ClientError) as err:
        daemon.call("job.run", {"kind": "teleport"})
    assert err.value.code == "not_found"
    with pytest.raises(ClientError) as err:
        daemon.call("job.run", {"kind": "sync", "params": {"peer": "no such/peer"}})
    assert err.value.code == "bad_request"


def test_config_show_redacts_secrets(module_daemon):
    daemon = module_daemon
    config = daemon.call("config.show")
    assert config["keys"]["kek_file"] == "<redacted>"
    assert config["database"]["url"]


def test_help_lists_every_command_with_its_permission(module_daemon):
    daemon = module_daemon
    names = {c["cmd"]: c["permission"] for c in daemon.call("help", token=None)}
    for cmd in ("status", "health", "job.list", "job.run", "job.cancel", "job.get", "backup.list",
                "audit.tail", "audit.verify", "security.event.list", "session.list", "session.revoke",
                "user.list", "config.show", "notification.test", "auth.login"):
        assert cmd in names
    assert names["user.list"] == "user:manage"


def test_old_names_still_work_as_deprecated_aliases(module_daemon):
    """Scripts outside may call the names commands had before noun.verb: one release more."""
    daemon = module_daemon
    listed = {c["cmd"]: c for c in daemon.call("help", token=None)}
    assert listed["jobs.list"]["alias_of"] == "job.list" and "deprecated" in listed["jobs.list"]["help"]
    assert listed["users.list"]["permission"] == listed["user.list"]["permission"] == "user:manage"
    assert listed["job.list"]["alias_of"] is None
    assert daemon.call("jobs.list") == daemon.call("job.list")
    assert daemon.call("jobs.kinds") == daemon.call("job.kind.list")
    assert daemon.call("sessions.list") == daemon.call("session.list")


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"v": st.sampled_from([1, 1, 2, None]), "id": st.text(max_size=70),
                           "cmd": st.sampled_from(["status", "job.run", "audit.tail", "x", "auth.login", ""]),
                           "token": st.none() | st.text(max_size=30),
                           "args": st.dictionaries(st.sampled_from(["limit", "kind", "run_id", "username"]),
                                                   st.integers() | st.text(max_size=10), max_size=3)})
    .map(lambda d: json.dumps(d).encode()),
))
def test_fuzzed_frames_always_get_a_well_formed_reply_and_the_daemon_lives(module_daemon, frame):
    daemon = module_daemon
    reply = raw(daemon, frame)
    assert reply["v"] == 1 and isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert reply["error"]["code"] in ERROR_CODES and reply["error"]["message"]
    assert daemon.proc.poll() is None


# --- no input answers `internal` -------------------------------------------------------

def test_json_nested_100000_deep_is_a_bad_request(module_daemon):
    daemon = module_daemon
    frame = b'{"v":1,"id":"deep","cmd":"status","args":' + b'[' * 100_000 + b']' * 100_000 + b'}'
    reply = raw(daemon, frame)
    assert reply["error"]["code"] == "bad_request" and "deeper" in reply["error"]["message"]
    assert_alive(daemon)


def test_job_params_nested_600_deep_are_refused_and_the_history_stays_listable(module_daemon):
    daemon = module_daemon
    reply = raw(daemon, request("job.run", token=daemon.local_token(),
                                args={"kind": "integrity", "params": {"x": nested(600)}}))
    assert reply["error"]["code"] == "bad_request"
    assert daemon.call("job.list") == []


def test_a_stored_run_whose_params_cannot_be_encoded_is_still_listed(daemon, data_dir):
    from sqlalchemy import insert

    from strongroom.core.db.models import JobRun, JobStatus
    from strongroom.core.db.types import utcnow
    from strongroom.core.ids import new_id
    from tests.daemon.conftest import data_transaction

    with data_transaction(data_dir) as (_, conn):   # as a daemon before this check stored it
        conn.execute(insert(JobRun.__table__), [{
            "id": new_id(), "job_kind": "integrity", "trigger": "manual", "status": JobStatus.FAILED,
            "params": {"x": nested(600)}, "progress_done": 0, "queued_at": utcnow()}])
    listed = daemon.call("job.list")
    assert len(listed) == 1 and "x" not in listed[0]["params"]


@pytest.mark.parametrize("params, field", [
    ({"snapshot_id": "not-a-uuid", "dest": "sqlite:////tmp/x.db"}, "snapshot_id"),
    ({"dest": "sqlite:////tmp/x.db"}, "snapshot_id"),
    ({"snapshot_id": "0b9e3c1e-0000-4000-8000-000000000000", "dest": "sqlite:////tmp/x.db", "force": "maybe"},
     "force"),
])
def test_job_params_are_checked_per_kind_when_submitted_naming_the_field(module_daemon, params, field):
    daemon = module_daemon
    reply = raw(daemon, request("job.run", token=daemon.local_token(), args={"kind": "restore", "params": params}))
    assert reply["error"]["code"] == "bad_request"
    assert f"restore params: {field}" in reply["error"]["message"]
    assert "not-a-uuid" not in reply["error"]["message"] and "maybe" not in reply["error"]["message"]
    assert daemon.call("job.list") == []


def test_an_unknown_param_is_refused_without_repeating_its_name(module_daemon):
    daemon = module_daemon
    reply = raw(daemon, request("job.run", token=daemon.local_token(),
                                args={"kind": "integrity", "params": {"jane.doe@example.org": "1"}}))
    assert reply["error"]["code"] == "bad_request" and "jane" not in reply["error"]["message"]


@pytest.mark.parametrize("cmd", ["audit.tail", "security.event.list"])
def test_a_before_id_beyond_64_bits_is_a_bad_request(module_daemon, cmd):
    daemon = module_daemon
    reply = raw(daemon, request(cmd, token=daemon.local_token(), args={"before_id": 2 ** 63}))
    assert reply["error"]["code"] == "bad_request" and "before_id" in reply["error"]["message"]


@pytest.mark.parametrize("cmd, args", [
    ("backup.show", {"snapshot_id": "0b9e3c1e-0000-4000-8000-000000000000"}),
    ("backup.forget", {"snapshot_id": "0b9e3c1e-0000-4000-8000-000000000000", "dry_run": True}),
])
def test_snapshot_commands_before_any_backup_say_there_is_no_repository(module_daemon, cmd, args):
    daemon = module_daemon
    reply = raw(daemon, request(cmd, token=daemon.local_token(), args=args))
    assert reply["error"]["code"] == "not_found", reply
