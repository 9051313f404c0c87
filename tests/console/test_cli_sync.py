"""`strongroom sync conflicts|show|resolve` against a real daemon holding the demo
conflicts: an operator without phi:read lists, views masked and resolves by choosing
versions; every bad request is a clear error, a non-zero exit, and nothing changed."""
import io
import json

import pyotp
import pytest

from tests.conftest import per_engine_per_module
from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import PASSWORD, forget_base, make_site, running_sync_daemon

UNKNOWN = "01a2061f-77c9-7000-a71a-77552702252a"


@pytest.fixture
def daemon(sync_daemon, tmp_path, monkeypatch):
    """The sync demo daemon, found by the CLI from the data directory; tokens kept in a
    private XDG directory, so until someone logs in the CLI is the local operator."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(sync_daemon.runtime))
    return sync_daemon


_one_sync_daemon = per_engine_per_module(
    "_one_sync_daemon", running_sync_daemon,
    "`daemon`'s sync demo daemon shared by one engine's tests that only read the queue or are "
    "refused: none resolves a conflict or forgets a base, each checks the queue itself (the "
    "refusals: unchanged), and the one log-in of each user (the operator's, the auditor's) is "
    "saved in that test's own XDG_CONFIG_HOME, where no other test reads it.")


@pytest.fixture
def reading(_one_sync_daemon, tmp_path, monkeypatch):
    """`daemon` on the module's shared daemon: this test's own XDG_CONFIG_HOME (no session
    saved by another), the daemon's RUNTIME_DIRECTORY."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(_one_sync_daemon.runtime))
    return _one_sync_daemon


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def log_in(capsys, daemon, tmp_path, username: str, totp_secret: str | None = None) -> None:
    password_file = tmp_path / f"pw-{username}"
    password_file.write_text(PASSWORD + "\n")
    totp = ("--totp", pyotp.TOTP(totp_secret).now()) if totp_secret else ()
    code, _, err = cli(capsys, daemon, "login", "-u", username, "--password-file", password_file, *totp)
    assert code == 0, err


def queue(daemon) -> list[dict]:
    return daemon.call("sync.conflict.list", {"status": "all"})


class Terminal(io.StringIO):
    """Someone at a terminal typing `text`."""

    def isatty(self) -> bool:
        return True


def test_conflicts_lists_the_queue_with_fields_never_values(reading, capsys):
    daemon = reading
    code, out, err = cli(capsys, daemon, "sync", "conflicts", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["id"] for r in rows] == daemon.seeded["conflicts"]
    assert all(r["status"] == "open" and r["fields"] for r in rows)
    code, out, _ = cli(capsys, daemon, "sync", "conflicts")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(rows) == 2
    assert lines[0].startswith(daemon.seeded["conflicts"][0]) and "peer satellite" in lines[0]
    assert "fields: " + ", ".join(rows[0]["fields"]) in lines[0] and "[PHI]" in lines[0]
    code, out, _ = cli(capsys, daemon, "sync", "conflicts", "--status", "resolved")
    assert code == 0 and out.strip() == "no resolved conflicts"


def test_operator_sees_phi_masked_and_resolves_by_choice(daemon, capsys, tmp_path):
    first = daemon.seeded["conflicts"][0]
    plain = daemon.call("sync.conflict.get", {"conflict_id": first})       # the local operator reads PHI
    secrets = {f[v] for f in plain["field_values"] if f["phi"] and f["differs"] for v in ("local", "remote") if f[v]}
    assert secrets
    log_in(capsys, daemon, tmp_path, "operator1", daemon.seeded["operator_totp"])

    code, out, err = cli(capsys, daemon, "sync", "show", first)
    assert code == 0, err
    assert "PHI masked: you lack phi:read" in out and "***-***-" in out
    assert not [s for s in secrets if s in out]
    code, out, _ = cli(capsys, daemon, "sync", "show", first, "--json")
    assert json.loads(out)["masked"] is True and not [s for s in secrets if s in out]

    fields = plain["fields"]
    assert fields == ["phone"]
    code, out, err = cli(capsys, daemon, "sync", "resolve", first, "--all", "remote", "--field", "phone=local",
                         "--yes", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "resolved" and result["resolved_by"] == "user:operator1"
    assert result["resolution"]["choices"] == {**{n: "remote" for n in fields}, "phone": "local"}
    assert not [s for s in secrets if s in out + err]
    assert [c["id"] for c in daemon.call("sync.conflict.list")] == daemon.seeded["conflicts"][1:]
    code, out, _ = cli(capsys, daemon, "sync", "conflicts", "--status", "resolved")
    assert first in out and "resolved by user:operator1" in out


def test_show_gives_the_differing_fields_and_one_other_field_on_request(reading, capsys, tmp_path):
    daemon = reading
    first = daemon.seeded["conflicts"][0]
    ssn = daemon.call("sync.conflict.field.get", {"conflict_id": first, "field": "ssn"})["field"]["local"]
    reads = len(daemon.call("audit.tail", {"limit": 1000, "action": "READ"}))

    code, out, err = cli(capsys, daemon, "sync", "show", first)                  # the local operator
    assert code == 0, err
    rows = [line for line in out.splitlines() if line[:1] in ("≠", " ") and not line.startswith("  ")]
    assert [line.split()[1] for line in rows] == ["phone"]
    assert "the same on both sides, not shown:" in out and "ssn" in out and ssn not in out
    assert f"strongroom sync show {first} --field NAME" in out
    code, out, err = cli(capsys, daemon, "sync", "show", first, "--field", "ssn")
    assert code == 0 and ssn in out and "field ssn" in out, err
    latest = daemon.call("audit.tail", {"limit": 1, "action": "READ"})[0]
    assert latest["details"]["fields"] == ["ssn"] and ssn not in json.dumps(latest)
    assert len(daemon.call("audit.tail", {"limit": 1000, "action": "READ"})) == reads + 2   # view, then ssn

    log_in(capsys, daemon, tmp_path, "operator1", daemon.seeded["operator_totp"])
    code, out, err = cli(capsys, daemon, "sync", "show", first, "--field", "ssn", "--json")
    assert code == 0, err
    masked = json.loads(out)
    assert masked["masked"] is True and masked["field"]["local"].startswith("***-**-") and ssn not in out
    code, out, err = cli(capsys, daemon, "sync", "show", first, "--field", "shoe_size")
    assert code == 2 and "has no field 'shoe_size'" in err and not out


def test_resolve_asks_first_and_a_no_changes_nothing(daemon, capsys, monkeypatch):
    second = daemon.seeded["conflicts"][1]
    fields = queue(daemon)[1]["fields"]
    before = queue(daemon)
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, out, err = cli(capsys, daemon, "sync", "resolve", second, "--all", "local")
    assert code == 1 and "aborted" in err
    assert f"Resolve conflict {second}" in out and ", ".join(f"{n} ← local" for n in fields) in out
    assert queue(daemon) == before
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, out, err = cli(capsys, daemon, "sync", "resolve", second, "--all", "local")
    assert code == 0, err
    assert f"resolved conflict {second}" in out and "by local:" in out
    assert [c["status"] for c in queue(daemon)] == ["open", "resolved"]


def test_bad_requests_are_clear_errors_and_change_nothing(daemon, capsys):
    first, second = daemon.seeded["conflicts"][:2]
    forget_base(daemon.data_dir, second)
    before = queue(daemon)
    fields = before[0]["fields"]
    every = [arg for name in fields for arg in ("--field", f"{name}=local")]

    def refused(*args) -> tuple[int, str]:
        code, out, err = cli(capsys, daemon, "sync", "resolve", *args)
        assert queue(daemon) == before, f"{args} changed the queue"
        assert "Traceback" not in err and not out
        return code, err

    assert refused(UNKNOWN, "--all", "local", "--yes") == (3, f"strongroom: error: sync conflict {UNKNOWN} "
                                                               "does not exist\n")
    assert refused("not-a-uuid", "--all", "local", "--yes")[0] == 2
    code, err = refused(first, "--field", "phone", "--yes")
    assert code == 2 and "each value must be NAME=local|remote|base" in err and "'phone'" not in err
    code, err = refused(first, "--field", "<script>=mine", "--yes")
    assert code == 2 and "<script>" not in err and "must be one of local, remote, base" in err
    code, err = refused(first, "--field", "phone=mine", "--yes")
    assert code == 2 and "must be one of local, remote, base" in err
    code, err = refused(first, "--field", "phone=local", "--field", "phone=remote", "--yes")
    assert code == 2 and "given twice" in err
    code, err = refused(first, "--all", "both", "--yes")
    assert code == 2 and "--all" in err
    code, err = refused(first, "--yes")
    assert code == 2 and "choose a version" in err
    code, err = refused(first, *every, "--field", "shoe_size=local", "--yes")
    assert code == 2 and "no differing field shoe_size" in err
    code, err = refused(second, "--field", "phone=local", "--yes")          # the session's field is notes
    assert code == 2 and "no differing field phone" in err
    code, err = refused(second, "--all", "local", "--field", f"{before[1]['fields'][0]}=base", "--yes")
    assert code == 2 and "no base version" in err                    # the daemon's own check
    code, err = refused(first, "--all", "local")                      # no terminal to confirm in
    assert code == 2 and "add --yes" in err
    code, _, err = cli(capsys, daemon, "sync", "conflicts", "--status", "pending")
    assert code == 2 and "pending" in err

    assert cli(capsys, daemon, "sync", "resolve", first, *every, "--yes")[0] == 0
    before = queue(daemon)
    code, err = refused(first, *every, "--yes")
    assert code == 4 and f"conflict {first} is already resolved (by local:" in err


def test_without_sync_resolve_every_command_is_forbidden(reading, capsys, tmp_path):
    daemon = reading
    first = daemon.seeded["conflicts"][0]
    before = queue(daemon)
    log_in(capsys, daemon, tmp_path, "auditor1")
    for args in (("conflicts",), ("show", first), ("resolve", first, "--all", "local", "--yes")):
        code, out, err = cli(capsys, daemon, "sync", *args)
        assert code == 8 and "lacks permission 'sync:resolve'" in err and not out, args
    assert queue(daemon) == before


# --- passes, status, peers and the quarantine --------------------------------------------

@pytest.fixture
def site(tmp_path, db_url, monkeypatch):
    """A daemon over demo clients with a joined laptop site not yet added as a peer
    (tests/daemon/test_sync_control.py), the CLI pointed at it."""
    from tests.daemon.conftest import running_daemon
    data_dir, laptop_url, _ = make_site(tmp_path, db_url)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        proc.laptop_url = laptop_url
        yield proc


def test_a_peer_is_added_synced_with_and_shown_in_status_without_a_password(site, capsys):
    code, out, err = cli(capsys, site, "sync", "peer", "add", "laptop", site.laptop_url, "--direction", "push")
    assert code == 0 and out.startswith("added sync peer laptop (push)"), err
    secret_url = "postgresql+psycopg://sync:s3cret@127.0.0.1/central"
    code, out, err = cli(capsys, site, "sync", "peer", "add", "central", secret_url)
    assert code == 0 and "sync:***@127.0.0.1" in out and "s3cret" not in out + err
    code, out, _ = cli(capsys, site, "sync", "peer", "pause", "central")
    assert code == 0 and out.strip() == "sync peer central paused: no passes with it until it is resumed"

    code, out, err = cli(capsys, site, "sync", "run", "laptop", "--wait")
    assert code == 0, out + err
    assert "succeeded" in out.splitlines()[0] and "laptop: sent 6, received 0" in out
    code, out, err = cli(capsys, site, "sync", "check", "laptop")
    assert code == 0 and out.startswith("sync check with laptop: identical"), out + err
    code, _, err = cli(capsys, site, "sync", "check", "no-such-peer")
    assert code == 3 and "no-such-peer" not in err
    code, out, _ = cli(capsys, site, "sync", "status")
    assert code == 0 and "s3cret" not in out
    assert "central  both  postgresql+psycopg://sync:***@127.0.0.1/central  [paused]" in out
    assert "last sync never, 7 rows not yet sent" in out        # the practice, 3 clients, 3 sessions
    assert any(line.split()[:1] == ["clients"] and "pending      0" in line for line in out.splitlines())
    code, out, _ = cli(capsys, site, "sync", "peer", "list", "--json")
    assert [(p["name"], p["is_active"]) for p in json.loads(out)] == [("central", False), ("laptop", True)]
    code, out, _ = cli(capsys, site, "sync", "peer", "remove", "central")
    assert code == 0 and "removed" in out
    code, out, _ = cli(capsys, site, "sync", "quarantine")
    assert code == 0 and out.strip() == "no quarantined rows"


def test_failures_exit_non_zero_and_errors_repeat_no_input(site, capsys):
    code, out, err = cli(capsys, site, "sync", "run", "--wait")
    assert code != 0 and "no sync peers" in out + err
    code, _, err = cli(capsys, site, "sync", "peer", "add", "far", "postgresql://sync:s3cret@far.example.org/db")
    assert code != 0 and "sslmode=verify-full" in err and "s3cret" not in err and "far.example" not in err
    code, _, err = cli(capsys, site, "sync", "peer", "resume", "123-45-6789")
    assert code != 0 and "no such sync peer" in err and "123-45-6789" not in err
    code, _, err = cli(capsys, site, "sync", "run", "123-45-6789")
    assert code != 0 and "123-45-6789" not in err


def test_a_row_the_peer_sent_sealed_under_another_clients_key_is_listed_by_sync_quarantine(site, capsys):
    """A field moved at the laptop into another client's row (its checksum fixed up) is
    held by the pass that pulls it, and `sync quarantine` names it and its reason only."""
    from sqlalchemy import select, update

    from strongroom.core.db.engine import make_engine, transaction
    from strongroom.core.db.models import Client
    from strongroom.core.repository.changes import next_change_version, row_checksum
    assert cli(capsys, site, "sync", "peer", "add", "laptop", site.laptop_url)[0] == 0
    assert cli(capsys, site, "sync", "run", "laptop", "--wait")[0] == 0
    clients = Client.__table__
    laptop = make_engine(site.laptop_url)
    try:
        with transaction(laptop) as conn:
            bad, donor = conn.execute(select(clients.c.id).order_by(clients.c.id).limit(2)).scalars().all()
            moved = conn.execute(select(clients.c.first_name_enc).where(clients.c.id == donor)).scalar_one()
            row = dict(conn.execute(select(clients).where(clients.c.id == bad)).mappings().one())
            row.update(first_name_enc=moved, sync_version=next_change_version(conn))
            conn.execute(update(clients).where(clients.c.id == bad).values(
                first_name_enc=moved, sync_version=row["sync_version"], data_checksum=row_checksum(row)))
    finally:
        laptop.dispose()
    code, out, err = cli(capsys, site, "sync", "run", "laptop", "--wait")
    assert code == 0 and "laptop: sent 0, received 0, conflicts 0, quarantined 1" in out, out + err
    code, out, err = cli(capsys, site, "sync", "quarantine", "--json")
    assert code == 0, err
    (held,) = json.loads(out)
    assert (held["table"], held["row_id"], held["reason"], held["status"]) == ("clients", str(bad),
                                                                             "foreign_ciphertext", "open")
    assert "image" not in held
    code, out, _ = cli(capsys, site, "sync", "quarantine")
    (line,) = out.splitlines()
    assert code == 0 and f"clients          row {bad}" in line and "foreign_ciphertext: clients.first_name" in line
