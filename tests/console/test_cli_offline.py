"""The offline CLI on a data directory: init, db, clients, audit, demo, error handling."""
import json
import stat
import subprocess
import sys

import pytest

from tests.console.cli_helpers import run_cli as run




@pytest.fixture
def data_dir(tmp_path, db_url, capsys):
    target = tmp_path / "data"
    args = ["--data-dir", str(target), "init", "--practice-name", "CLI Practice"]
    if not db_url.startswith("sqlite"):
        args += ["--database-url", db_url]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    return target


def test_init_creates_a_private_directory_with_key_config_and_database(data_dir):
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "kek.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / "strongroom.toml").stat().st_mode) == 0o600
    assert "kek" not in (data_dir / "strongroom.toml").read_text().split("kek_file")[0]


def test_init_refuses_a_non_empty_directory_and_changes_nothing(tmp_path, capsys):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    code, _, err = run(capsys, "--data-dir", str(target), "init")
    assert code == 4 and "not empty" in err
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_failed_init_leaves_nothing_behind(tmp_path, capsys):
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "new"), "init",
                       "--database-url", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code != 0 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_demo_seed_then_list_is_masked_and_reveal_is_audited(data_dir, capsys):
    assert run(capsys, "--data-dir", str(data_dir), "demo", "seed", "--clients", "12",
               "--sessions-per-client", "2")[0] == 0
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--limit", "5")
    assert code == 0 and "***-**-" in out and "(5 of 13 clients; PHI masked" in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--limit", "1", "--reveal", "--json")
    assert code == 0 and '"ssn": "9' in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "tail", "-n", "1", "--json")
    assert '"action": "READ"' in out and '"phi": true' in out


def test_the_revealed_table_marks_a_cut_value_with_an_ellipsis(data_dir, capsys):
    """A value wider than its column ends in `…`: an email cut to fit never reads as whole."""
    from strongroom.console.cli.clients import _WIDTHS

    assert run(capsys, "--data-dir", str(data_dir), "demo", "seed", "--clients", "12",
               "--sessions-per-client", "1")[0] == 0
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--limit", "20", "--reveal", "--json")
    long_emails = [c["email"] for c in json.loads(out) if c["email"] and len(c["email"]) > _WIDTHS["email"]]
    assert long_emails, "the demo data should hold an email wider than the column"
    code, table, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--limit", "20", "--reveal")
    assert code == 0
    for email in long_emails:
        assert email[:_WIDTHS["email"] - 1] + "…" in table and email not in table


def test_list_all_streams_every_client_as_the_pages_show_them_with_one_read_per_batch(data_dir, capsys,
                                                                                       monkeypatch):
    from strongroom.core.repository import clients as repo

    monkeypatch.setattr(repo, "STREAM_BATCH", 5)
    assert run(capsys, "--data-dir", str(data_dir), "demo", "seed", "--clients", "12",
               "--sessions-per-client", "1")[0] == 0
    code, paged, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--limit", "20", "--reveal", "--json")
    code, streamed, err = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all", "--reveal", "--json")
    assert code == 0, err
    assert json.loads(streamed) == json.loads(paged) and len(json.loads(streamed)) == 13
    assert len(streamed.splitlines()) == 13 + 2       # one record a line between [ and ]
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "tail", "-n", "4", "--json")
    reads = [e for e in json.loads(out) if e["action"] == "READ"]
    assert [e["details"]["count"] for e in reads] == [13, 5, 5, 3]   # the page, then one per batch
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all")
    assert code == 0 and out.count("***-**-") == 13 and "(13 clients; PHI masked" in out
    assert out.count("LAST_NAME") == 1
    assert [json.loads(line.rstrip(",")) for line in streamed.splitlines()[1:-1]] == _as_streamed_before(data_dir)


def _as_streamed_before(data_dir) -> list:
    """The records `clients list --all --reveal --json` printed when each went through
    json.dumps(record, sort_keys=True, default=str) on its own (times as str() writes
    them, not ISO with a T): the values must not change, only the spacing may."""
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository import clients as repo

    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            rows = repo.list_clients(conn, ctx.keyring, SYSTEM, limit=100)
    finally:
        ctx.close()
    return [json.loads(json.dumps(row, sort_keys=True, default=str)) for row in rows]


def test_list_all_keeps_the_read_of_every_batch_it_printed_when_a_later_batch_fails(data_dir, capsys,
                                                                                      monkeypatch):
    """The stream prints each batch as it goes, so the READ of a batch printed must be on
    record before it is printed and stay there whatever happens after: a tampered client
    further on stops the command, and the batch already shown is still audited."""
    from sqlalchemy import select, update

    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction
    from strongroom.core.db.models import Client
    from strongroom.core.repository import clients as repo

    monkeypatch.setattr(repo, "STREAM_BATCH", 5)
    assert run(capsys, "--data-dir", str(data_dir), "demo", "seed", "--clients", "12",
               "--sessions-per-client", "1")[0] == 0
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            victim = conn.execute(select(Client.id).where(Client.deleted_at.is_(None))
                                  .order_by(Client.id).offset(7).limit(1)).scalar_one()
            blob = bytearray(conn.execute(select(Client.ssn_enc).where(Client.id == victim)).scalar_one())
            blob[-3] ^= 0x01
            conn.execute(update(Client).where(Client.id == victim).values(ssn_enc=bytes(blob)))
    finally:
        ctx.close()
    code, streamed, err = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all", "--reveal", "--json")
    assert code != 0 and f"clients.ssn of row {victim}: ciphertext failed authentication" in err
    printed = [json.loads(line.rstrip(",")) for line in streamed.splitlines()[1:]]
    assert len(printed) == 5 and str(victim) not in streamed
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "tail", "-n", "2", "--json")
    reads = [e for e in json.loads(out) if e["action"] == "READ"]
    assert [(e["details"]["count"], e["details"]["ids"]) for e in reads][-1:] == [(5, [r["id"] for r in printed])]


def test_list_all_reveal_json_keeps_each_record_on_one_line_whatever_its_text_holds(data_dir, capsys):
    """Text with characters that JSON leaves raw but line readers split on (U+2028, U+2029,
    U+0085), quotes, backslashes and control characters: the record stays one line, and
    reads back as it was stored."""
    from strongroom.core import demo
    from strongroom.core.config import load_settings
    from strongroom.core.context import open_context
    from strongroom.core.db.engine import transaction
    from strongroom.core.principal import SYSTEM
    from strongroom.core.repository import clients as repo
    from strongroom.core.repository.practices import only_practice

    awkward = 'Flat 2\u2028Line\u2029Two\x85 "quoted" back\\slash\ttab\x01 ünïcødé 😀'
    record = {**next(demo.client_records(1)), "address": awkward}
    ctx = open_context(load_settings(data_dir / "strongroom.toml"))
    try:
        with transaction(ctx.engine) as conn:
            repo.insert_clients(conn, ctx.keyring, SYSTEM, only_practice(conn), [record])
    finally:
        ctx.close()
    code, streamed, err = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all", "--reveal", "--json")
    assert code == 0, err
    assert len(streamed.splitlines()) == 3 and json.loads(streamed)[0]["address"] == awkward


def test_list_all_of_no_clients_is_an_empty_array(data_dir, capsys):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all", "--reveal", "--json")
    assert code == 0 and json.loads(out) == []


def test_audit_verify_reports_intact_chain_and_exit_code(data_dir, capsys):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "verify")
    assert code == 0 and "audit chain intact" in out


def test_audit_verify_names_the_first_broken_entry(data_dir, capsys):
    from strongroom.core.config import load_settings
    from strongroom.core.db.engine import make_engine

    engine = make_engine(load_settings(data_dir / "strongroom.toml").database.url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER audit_logs_append_only_update")
        else:
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.exec_driver_sql("UPDATE audit_logs SET outcome = 'forged' WHERE id = 1")
    engine.dispose()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "audit", "verify")
    assert code == 6
    assert "BROKEN at entry 1" in out and "broken at entry 1" in err


def test_db_status_reports_current_schema(data_dir, capsys):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "db", "status", "--json")
    assert code == 0 and '"up_to_date": true' in out
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "db", "upgrade")
    assert code == 0 and "already current" in out


def test_bad_config_is_one_clear_line_and_exit_2(tmp_path):
    (tmp_path / "strongroom.toml").write_text('data_dir = "."\n[database]\nurl = "sqlite:///x.db"\n'
                                              '[auth]\nlockout_minutes = "ten"\n')
    proc = subprocess.run([sys.executable, "-m", "strongroom.console.cli", "--data-dir", str(tmp_path),
                           "clients", "list"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "auth.lockout_minutes" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_key_file_is_a_clear_error_naming_it(data_dir, capsys):
    (data_dir / "kek.key").rename(data_dir / "elsewhere.key")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "clients", "list")
    assert code == 5
    assert "kek.key is missing" in err and "recovery kit" in err


def test_no_data_dir_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("STRONGROOM_DATA_DIR", raising=False)
    monkeypatch.delenv("STRONGROOM_CONFIG", raising=False)
    code, _, err = run(capsys, "clients", "list")
    assert code == 2 and "--data-dir" in err


def test_audit_checkpoint_file_is_private_and_verifies(data_dir, tmp_path, capsys):
    cp = tmp_path / "checkpoint.json"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "audit", "checkpoint", "--out", str(cp))
    assert code == 0, err
    assert stat.S_IMODE(cp.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "verify", "--checkpoint", str(cp))
    assert code == 0 and "intact" in out
    cp.write_text("{not json")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "audit", "verify", "--checkpoint", str(cp))
    assert code == 6 and "invalid JSON" in err


def test_init_schedules_backups_integrity_verify_drill_prune_and_export_retention(data_dir):
    from strongroom.core.config import load_settings
    schedules = load_settings(data_dir / "strongroom.toml").schedules
    assert set(schedules) == {"backup", "integrity", "prune", "verify", "restore_drill", "export_retention"}


def test_list_all_audits_a_batch_of_one_with_its_record(data_dir, capsys, monkeypatch):
    """A READ of one record names it (record_id), as any single-record read does."""
    from strongroom.core.repository import clients as repo

    monkeypatch.setattr(repo, "STREAM_BATCH", 5)
    assert run(capsys, "--data-dir", str(data_dir), "demo", "seed", "--clients", "10",
               "--sessions-per-client", "1")[0] == 0
    code, streamed, err = run(capsys, "--data-dir", str(data_dir), "clients", "list", "--all", "--reveal", "--json")
    assert code == 0, err
    records = json.loads(streamed)
    assert len(records) == 11
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "audit", "tail", "-n", "3", "--json")
    reads = [e for e in json.loads(out) if e["action"] == "READ"]
    assert [e["details"]["count"] for e in reads] == [5, 5, 1]
    assert str(reads[-1]["record_id"]) == records[-1]["id"] and reads[0]["record_id"] is None
