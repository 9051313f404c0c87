"""The CLI against a real daemon: login, status, jobs (with --wait), sessions, notify, logout."""
import contextlib
import io
import json
import re
import socket
import time

import pyotp
import pytest

from tests.conftest import per_engine_per_module
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import (PASSWORD, DaemonProcess, add_unenrolled_admin, free_port_pair, make_data_dir,
                                   running_daemon)


@pytest.fixture
def running(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir = make_data_dir(tmp_path, db_url)
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
    yield data_dir, proc
    assert proc.stop() == 0


@contextlib.contextmanager
def _reading(tmp_path, db_url):
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:     # started with the environment `running`'s is
            env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
            proc = stack.enter_context(running_daemon(make_data_dir(tmp_path, db_url), tmp_path))
        yield proc


_one_running = per_engine_per_module(
    "_one_running", _reading,
    "`running`'s daemon shared by one engine's tests that only read (status, job kinds, the compliance "
    "report, whose day's score the daemon keeps itself) or are refused: none logs in, runs a job or "
    "writes a row another could see.")


@pytest.fixture
def reading(_one_running, tmp_path, monkeypatch):
    """`running` on the module's shared daemon: this test's own XDG_CONFIG_HOME (no session
    saved by another), the daemon's RUNTIME_DIRECTORY."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(_one_running.runtime))
    return _one_running.data_dir, _one_running


def test_status_as_local_operator_without_login(reading, capsys):
    data_dir, _ = reading
    code, out, err = run(capsys, "--data-dir", str(data_dir), "status", "--json")
    assert code == 0, err
    assert json.loads(out)["role"] == "leader"
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "status")
    assert "leader" in out and "no jobs running" in out


def test_jobs_run_wait_reports_success_and_lists_it(running, capsys):
    data_dir, _ = running
    code, out, err = run(capsys, "--data-dir", str(data_dir), "jobs", "run", "integrity", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "jobs", "list", "--json")
    assert json.loads(out)[0]["job_kind"] == "integrity"


def test_jobs_run_wait_follows_progress_in_the_runs_unit(running, capsys):
    """Followed without a terminal, each progress line gives the count in the one unit
    the kind counts in ("3 / 9 checks"), not bare numbers."""
    data_dir, _ = running
    code, _, err = run(capsys, "--data-dir", str(data_dir), "jobs", "run", "integrity", "--wait")
    assert code == 0, err
    counts = re.findall(r"^  (\d+) / 9 checks ", err, re.M)
    assert counts and counts == sorted(counts, key=int), err


def test_jobs_kinds_lists_every_kind_with_the_params_it_takes(reading, capsys):
    data_dir, _ = reading
    code, out, err = run(capsys, "--data-dir", str(data_dir), "jobs", "kinds")
    assert code == 0, err
    assert re.search(r"^restore .*\[on request only\]", out, re.M)
    assert re.search(r"^    snapshot_id +uuid +required", out, re.M)
    assert re.search(r"^    read_data +boolean +default false", out, re.M)
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "jobs", "kinds", "--json")
    assert {k["kind"] for k in json.loads(out)} >= {"backup", "verify", "restore", "export", "sync"}


def test_jobs_run_with_a_mistyped_param_names_it_and_starts_nothing(reading, capsys):
    data_dir, _ = reading
    code, _, err = run(capsys, "--data-dir", str(data_dir), "jobs", "run", "verify",
                       "--param", "snapshot_id=123-45-6789")
    assert code == 2 and "verify params: snapshot_id: must be a UUID" in err and "123-45" not in err
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "jobs", "list", "--json")
    assert json.loads(out) == []


def test_jobs_run_of_sync_without_peers_fails_saying_how_to_add_one(running, capsys):
    data_dir, _ = running
    code, out, err = run(capsys, "--data-dir", str(data_dir), "jobs", "run", "sync", "--wait")
    assert code != 0 and "no sync peers" in out + err and "sync peer add" in out + err


def test_login_stores_a_private_token_and_logout_forgets_it(running, capsys, tmp_path):
    data_dir, proc = running
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "login", "-u", "auditor1",
                         "--password-file", str(password_file))
    assert code == 0, err
    token_files = list((tmp_path / "xdg" / "strongroom" / "sessions").iterdir())
    assert len(token_files) == 1 and oct(token_files[0].stat().st_mode & 0o777) == "0o600"
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "sessions", "list", "--json")
    assert code == 0 and json.loads(out)[0]["username"] == "auditor1"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "jobs", "run", "integrity")
    assert code == 8 and "lacks permission" in err  # an auditor may look, not act
    assert run(capsys, "--data-dir", str(data_dir), "logout")[0] == 0
    assert not token_files[0].exists()


def test_an_invited_user_sets_their_password_at_first_login_once(running, capsys, tmp_path):
    """`user invite` writes the invitation to a private file and prints no secret;
    `login --invitation-file` sets the holder's own password and logs in; the same
    invitation is refused afterwards, and the password works from then on."""
    data_dir, _ = running
    invitation = tmp_path / "invitation"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "user", "invite", "newhire", "--role", "STAFF",
                         "--out", str(invitation))
    assert code == 0, err
    token = invitation.read_text().strip()
    assert "invitation in" in out and token not in out and oct(invitation.stat().st_mode & 0o777) == "0o600"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "user", "invite", "other", "--role", "STAFF",
                       "--out", str(invitation))
    assert code != 0 and "exists already" in err
    password_file = tmp_path / "pw"
    password_file.write_text("my very own passphrase 9\n")
    args = ("--data-dir", str(data_dir), "login", "--invitation-file", str(invitation),
            "--password-file", str(password_file))
    code, out, err = run(capsys, *args)
    assert code == 0 and "password set and logged in" in out, err
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "whoami", "--json")
    assert json.loads(out)["actor"] == "user:newhire"
    code, _, err = run(capsys, *args)
    assert code == 7 and "used or replaced" in err and token not in err
    code, _, err = run(capsys, "--data-dir", str(data_dir), "login", "-u", "newhire",
                       "--password-file", str(password_file))
    assert code == 0, err


def test_wrong_password_is_a_clear_error(running, capsys, tmp_path):
    data_dir, _ = running
    password_file = tmp_path / "pw"
    password_file.write_text("not the password\n")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "login", "-u", "auditor1",
                       "--password-file", str(password_file))
    assert code == 7 and "invalid username or password" in err


def test_notify_test_without_channels_says_so(running, capsys):
    data_dir, _ = running
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "notify", "test")
    assert code == 0 and "no notification channels configured" in out


def test_no_daemon_is_answered_at_once_with_how_to_start_it(tmp_path, db_url, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir = make_data_dir(tmp_path, db_url)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path / "nowhere"))
    started = time.monotonic()
    code, _, err = run(capsys, "--data-dir", str(data_dir), "status")
    assert time.monotonic() - started < 5
    assert code == 12 and "strongroomd is not running" in err and "strongroomd --data-dir" in err


def test_a_daemon_that_accepts_but_never_answers_is_reported_within_seconds(tmp_path, db_url, capsys,
                                                                          monkeypatch):
    """A stopped (SIGSTOP) or wedged daemon: the kernel still accepts the connection."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir = make_data_dir(tmp_path, db_url)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    (runtime / "operator.token").write_text("left-over\n")
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(runtime / "control.sock"))
        mute.listen()                                       # accepts, never speaks
        started = time.monotonic()
        code, _, err = run(capsys, "--data-dir", str(data_dir), "status")
        elapsed = time.monotonic() - started
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert code == 12 and "does not answer within 3 s" in err


def test_a_socket_left_by_a_stopped_daemon_is_answered_at_once(tmp_path, db_url, capsys, monkeypatch):
    """kill -9 leaves control.sock and the operator token behind; nobody listens on it."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir = make_data_dir(tmp_path, db_url)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(runtime / "control.sock"))          # bound, never listening: a dead daemon's
    (runtime / "operator.token").write_text("left-over\n")
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(runtime))
    started = time.monotonic()
    code, _, err = run(capsys, "--data-dir", str(data_dir), "status")
    assert time.monotonic() - started < 5
    assert code == 12 and "strongroomd is not running" in err and "left from a stopped daemon" in err


def test_compliance_prints_score_checklist_and_remediation(reading, capsys):
    data_dir, _ = reading
    code, out, err = run(capsys, "--data-dir", str(data_dir), "compliance")
    assert code == 0, err
    assert "compliance score" in out and "164.312(b)" in out and "-> " in out
    # nothing to sync with, no export made: shown as unproven, not as full marks
    assert "sync        not configured: not evidenced, forgoes 20 points" in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "compliance", "--json")
    report = json.loads(out)
    assert set(report["areas"]) == {"encryption", "backups", "exports", "sync", "audit"}
    assert report["history"][-1]["score"] == report["score"]   # today's entry of the trend


def test_backup_run_list_verify_and_restore(running, capsys, tmp_path):
    data_dir, _ = running
    code, out, err = run(capsys, "--data-dir", str(data_dir), "backup", "run", "--wait", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "backup", "verify", "--read-data", "--wait")
    assert code == 0, err
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "backup", "list", "--json")
    snapshots = json.loads(out)
    assert len(snapshots) == 1 and snapshots[0]["proof"] == "verified"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "restore", snapshots[0]["snapshot_id"],
                         "--target", target, "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] > 0
    code, _, err = run(capsys, "--data-dir", str(data_dir), "restore", snapshots[0]["snapshot_id"], "--target", target)
    assert code == 4 and "not empty" in err
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "tail", "-n", "3", "--json")
    assert [e["action"] for e in json.loads(out)][-2:] == ["RESTORE", "RESTORE"]


class EnrollingTerminal(io.StringIO):
    """Someone at a terminal who reads the secret the CLI printed into an authenticator
    app and types the code it shows."""

    def __init__(self, capsys) -> None:
        super().__init__()
        self.capsys = capsys
        self.printed = ""

    def isatty(self) -> bool:
        return True

    def readline(self, *_args) -> str:
        self.printed += self.capsys.readouterr().out
        shown = re.search(r"^secret: (\S+)$", self.printed, re.M)
        return pyotp.TOTP(shown.group(1)).now() + "\n" if shown else "\n"   # no code yet: none


def test_login_enrols_a_missing_second_factor_at_a_terminal(running, capsys, tmp_path, monkeypatch):
    data_dir, proc = running
    add_unenrolled_admin(data_dir, "newadmin")
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    code, out, err = run(capsys, "--data-dir", str(data_dir), "login", "-u", "newadmin",
                         "--password-file", str(password_file))
    assert code == 7 and "has none yet" in err and "run `strongroom login` in a terminal" in err
    assert not (tmp_path / "xdg" / "strongroom" / "sessions").exists()
    offer = proc.call("auth.login", {"username": "newadmin", "password": PASSWORD}, token=None)
    assert offer["enrolment_required"]                               # nothing was stored

    terminal = EnrollingTerminal(capsys)
    monkeypatch.setattr("sys.stdin", terminal)
    code, out, err = run(capsys, "--data-dir", str(data_dir), "login", "-u", "newadmin",
                         "--password-file", str(password_file))
    printed = terminal.printed + out
    assert code == 0, err
    assert "otpauth://totp/Strongroom:newadmin?" in printed and "logged in as newadmin" in printed
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "sessions", "list", "--json")
    assert code == 0 and json.loads(out)[0]["username"] == "newadmin"


def test_whoami_says_which_identity_commands_act_as_and_a_saved_session_is_never_silent(running, capsys, tmp_path):
    """Without a login the CLI acts as the local operator, local:<uid>, the uid the daemon
    learns from the kernel. A session another command saved is used by every later
    command: whoami says so, and each command names the identity on stderr."""
    import os
    data_dir, _ = running
    dd = str(data_dir)
    code, out, err = run(capsys, "--data-dir", dd, "whoami", "--json")
    assert code == 0, err
    me = json.loads(out)
    assert me["actor"] == f"local:{os.getuid()}" and me["source"] == "local operator token"
    code, out, err = run(capsys, "--data-dir", dd, "status")
    assert code == 0 and "acting as" not in err                # the obvious identity: nothing to say
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    assert run(capsys, "--data-dir", dd, "login", "-u", "auditor1", "--password-file", str(password_file))[0] == 0
    code, out, err = run(capsys, "--data-dir", dd, "whoami")
    assert code == 0 and "user:auditor1" in out and "strongroom login" in out and "logout" in out
    code, out, err = run(capsys, "--data-dir", dd, "status", "--json")
    assert code == 0 and json.loads(out)["role"] == "leader"          # stdout stays clean JSON
    assert "acting as user:auditor1" in err and "logout" in err
    assert run(capsys, "--data-dir", dd, "logout")[0] == 0
    code, out, err = run(capsys, "--data-dir", dd, "whoami", "--json")
    assert json.loads(out)["actor"] == f"local:{os.getuid()}"


# --- another machine: --connect over CURVE TCP ------------------------------------------


_REMOTE_UNSET = ("STRONGROOM_DATA_DIR", "STRONGROOM_CONFIG", "STRONGROOM_CONNECT", "STRONGROOM_SERVER_KEY",
                 "STRONGROOM_CLIENT_KEY")


def _remote_env(env: pytest.MonkeyPatch, tmp_path) -> None:
    env.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in _REMOTE_UNSET:
        env.delenv(name, raising=False)


@contextlib.contextmanager
def _curve_daemon(tmp_path, db_url, cli):
    """A daemon with a CURVE TCP endpoint that allows one client key, made the way the
    README says: `strongroom keys client-key`, its client.key copied into the allow-list.
    `cli(*args)` runs the command, returning (exit code, stdout, stderr)."""
    import shutil

    import zmq.auth

    server_dir, allowed = tmp_path / "server-keys", tmp_path / "server-keys" / "clients"
    allowed.mkdir(parents=True)
    code, _, err = cli("keys", "client-key", "--name", "server", "--out", server_dir)
    assert code == 0, err
    server_public, server_secret = server_dir / "server.key", server_dir / "server.key_secret"
    code, out, err = cli("keys", "client-key", "--out", tmp_path / "laptop")
    assert code == 0, err
    client_public = out.strip()
    shutil.copy(tmp_path / "laptop" / "client.key", allowed / "laptop.key")
    port = free_port_pair()
    data_dir = make_data_dir(tmp_path, db_url, extra=(
        f'\n[daemon]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n'
        f'curve_secret_key_file = "{server_secret}"\ncurve_allowed_clients_dir = "{allowed}"\n'))
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    with running_daemon(data_dir, tmp_path) as proc:
        yield {"proc": proc, "connect": f"tcp://127.0.0.1:{port}", "server_public": server_public,
               "server_z85": zmq.auth.load_certificate(str(server_public))[0].decode(),
               "client_public": client_public, "client_secret": tmp_path / "laptop" / "client.key_secret",
               "password_file": password_file}


@pytest.fixture
def remote(tmp_path, db_url, monkeypatch, capsys):
    _remote_env(monkeypatch, tmp_path)
    with _curve_daemon(tmp_path, db_url, lambda *args: run(capsys, *args)) as r:
        yield r


def _cli(*args) -> tuple[int, str, str]:
    """`run` for a fixture without capsys (module-scoped): the output caught here."""
    from strongroom.console.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _shared_curve_daemon(tmp_path, db_url):
    with contextlib.ExitStack() as stack:
        with pytest.MonkeyPatch.context() as env:     # made and started in `remote`'s environment
            _remote_env(env, tmp_path)
            r = stack.enter_context(_curve_daemon(tmp_path, db_url, _cli))
        yield r


_one_remote = per_engine_per_module(
    "_one_remote", _shared_curve_daemon,
    "`remote`'s daemon shared by one engine's tests whose commands the daemon refuses unseen (a wrong "
    "server key, a client key it does not allow, a public key as the secret): no failed login reaches "
    "it, and the one session opened (a wrong server key's test logs in first) is read by none of them.")


@pytest.fixture
def curve_refusing(_one_remote, tmp_path, monkeypatch):
    """`remote` on the module's shared daemon, with this test's own XDG_CONFIG_HOME."""
    _remote_env(monkeypatch, tmp_path)
    return _one_remote


def _remote(r: dict, server_key=None, client_key=None) -> list:
    return ["--connect", r["connect"], "--server-key", server_key or r["server_z85"],
            "--client-key", client_key or r["client_secret"]]


def test_keys_client_key_writes_a_private_secret_and_a_public_certificate(tmp_path, capsys):
    import zmq.auth

    code, out, err = run(capsys, "keys", "client-key", "--out", tmp_path / "k")
    assert code == 0, err
    secret, public = tmp_path / "k" / "client.key_secret", tmp_path / "k" / "client.key"
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    pub, sec = zmq.auth.load_certificate(str(secret))
    assert pub.decode() == out.strip() and len(sec) == 40
    assert zmq.auth.load_certificate(str(public)) == (pub, None)
    before = secret.read_bytes()
    code, _, err = run(capsys, "keys", "client-key", "--out", tmp_path / "k")
    assert code == 2 and "already exists" in err and secret.read_bytes() == before
    assert not [p for p in (tmp_path / "k").iterdir() if p.name not in ("client.key", "client.key_secret")]
    code, out, err = run(capsys, "keys", "client-key", "--out", tmp_path / "k", "--name", "laptop-anna")
    assert code == 0 and zmq.auth.load_certificate(str(tmp_path / "k" / "laptop-anna.key"))[0].decode() == out.strip()
    code, _, err = run(capsys, "keys", "client-key", "--out", tmp_path / "k", "--name", "../escape")
    assert code == 2 and "--name" in err and not (tmp_path / "escape.key").exists()


def test_login_and_status_over_curve_with_the_right_keys(remote, capsys, monkeypatch):
    code, out, err = run(capsys, *_remote(remote), "login", "-u", "auditor1",
                         "--password-file", remote["password_file"])
    assert code == 0, err
    code, out, err = run(capsys, *_remote(remote), "status", "--json")
    assert code == 0, err
    assert json.loads(out)["role"] == "leader"
    # The server key may also be its public key file; all three may come from the environment.
    monkeypatch.setenv("STRONGROOM_CONNECT", remote["connect"])
    monkeypatch.setenv("STRONGROOM_SERVER_KEY", str(remote["server_public"]))
    monkeypatch.setenv("STRONGROOM_CLIENT_KEY", str(remote["client_secret"]))
    code, out, err = run(capsys, "whoami", "--json")
    assert code == 0, err
    assert json.loads(out)["actor"] == "user:auditor1"
    # The login was over TCP: its address is the TCP peer's, not an ipc uid.
    event = remote["proc"].call("security.event.list", {"event_type": "login_success", "limit": 1})[0]
    assert event["ip_address"] == "127.0.0.1"


def test_a_wrong_server_key_is_reported_within_the_connect_timeout(curve_refusing, capsys, monkeypatch):
    import zmq

    remote = curve_refusing
    assert run(capsys, *_remote(remote), "login", "-u", "auditor1", "--password-file", remote["password_file"])[0] == 0
    monkeypatch.setenv("STRONGROOM_CONNECT_TIMEOUT", "2")
    impostor = zmq.curve_keypair()[0].decode()
    started = time.monotonic()
    code, _, err = run(capsys, *_remote(remote, server_key=impostor), "status")
    elapsed = time.monotonic() - started
    assert elapsed < 8, f"took {elapsed:.1f}s"
    assert code == 12 and "does not answer within 2 s" in err and "--server-key" in err
    assert impostor not in err


def test_a_client_key_the_daemon_does_not_allow_gets_no_answer(curve_refusing, capsys, monkeypatch, tmp_path):
    remote = curve_refusing
    monkeypatch.setenv("STRONGROOM_CONNECT_TIMEOUT", "2")
    assert run(capsys, "keys", "client-key", "--out", tmp_path / "stranger")[0] == 0
    started = time.monotonic()
    code, _, err = run(capsys, *_remote(remote, client_key=tmp_path / "stranger" / "client.key_secret"),
                       "login", "-u", "auditor1", "--password-file", remote["password_file"])
    assert time.monotonic() - started < 8
    assert code == 12 and "curve_allowed_clients_dir" in err
    assert not (tmp_path / "xdg" / "strongroom" / "sessions").exists()


@pytest.mark.parametrize("args, message", [
    (["--connect", "tcp://127.0.0.1:9", "status"], "--connect needs --server-key"),
    (["--connect", "127.0.0.1:9", "--server-key", "x" * 40, "status"], "--connect: expected tcp://HOST:PORT"),
    (["--connect", "tcp://127.0.0.1:9", "--server-key", "not-a-key", "--client-key", "nowhere", "status"],
     "--server-key: no such key file"),
    (["--connect", "tcp://127.0.0.1:9", "--socket", "/tmp/x.sock", "status"], "--connect and --socket"),
    (["--connect", "tcp://127.0.0.1:9", "keys", "client-key"], "does not talk to the daemon"),
])
def test_bad_remote_options_are_refused_by_name(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err, err


def test_the_public_key_file_is_refused_as_a_client_key(curve_refusing, capsys, tmp_path):
    remote = curve_refusing
    public = remote["client_secret"].with_name("client.key")
    code, _, err = run(capsys, *_remote(remote, client_key=public), "status")
    assert code == 2 and "holds no secret key" in err


def test_the_console_logs_in_over_curve_with_the_connect_options(remote, capsys):
    """`strongroom --connect ... console`: the same console, its client CURVE-keyed."""
    from strongroom.console.app import StrongroomConsole
    from strongroom.console.cli import CliState
    from strongroom.console.cli.console_cmd import _client
    from strongroom.console.cli.transport import _endpoints
    from strongroom.console.screens.main import MainScreen

    from tests.console.tui.conftest import SIZE, drive, log_in, showing, wait_for

    state = CliState(None, None, connect=remote["connect"], server_key=remote["server_z85"],
                     client_key=str(remote["client_secret"]))
    endpoint, events, runtime = _endpoints(state, None)
    assert endpoint == remote["connect"] and runtime is None

    async def scenario():
        app = StrongroomConsole(endpoint, events, client=_client(state, endpoint, events, None))
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot)
            await wait_for(pilot, showing(app, MainScreen), what="the main screen after login")
            assert (await app.call("whoami"))["actor"] == "user:auditor1"
    drive(scenario, timeout=60)
    event = remote["proc"].call("security.event.list", {"event_type": "login_success", "limit": 1})[0]
    assert event["ip_address"] == "127.0.0.1"
