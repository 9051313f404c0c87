"""`strongroom keys ...` on a data directory of each engine."""
from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from strongroom.console.cli import cli  # noqa: E402
from strongroom.core.config import load_settings  # noqa: E402
from strongroom.core.context import open_context  # noqa: E402
from strongroom.core.crypto import kit  # noqa: E402
from strongroom.core.crypto.kek import generate_kek, pending_path, read_kek_file, write_kek_file  # noqa: E402
from strongroom.core.db.engine import transaction  # noqa: E402
from strongroom.core.db.models import AuditLog, KeyPurpose, KeyState  # noqa: E402

from tests.console.cli_helpers import run_cli as run  # noqa: E402
from tests.core.crypto.crypto_helpers import decrypt_all, keys, seed  # noqa: E402

PASS = "orange lantern ferry 7"


@pytest.fixture
def data_dir(tmp_path, db_url, monkeypatch) -> Path:
    """A data directory: strongroom.toml, a KEK file, and a seeded database."""
    monkeypatch.delenv("STRONGROOM_KIT_PASSPHRASE", raising=False)
    target = tmp_path / "data"
    target.mkdir(mode=0o700)
    write_kek_file(target / "kek.key", generate_kek())
    (target / "strongroom.toml").write_text(
        'data_dir = "."\npractice_name = "Harbour Counselling"\n'
        f'[database]\nurl = "{db_url}"\n'
        '[keys]\nkek_file = "kek.key"\nkek_env = ""\nkek_credential = ""\n')
    ctx = open_context(load_settings(target / "strongroom.toml"))
    try:
        seed(ctx.engine, ctx.keyring, clients=3)
    finally:
        ctx.close()
    return target


def context(data_dir: Path):
    return open_context(load_settings(data_dir / "strongroom.toml"))


def audit_actions(data_dir: Path) -> list[tuple[str, dict]]:
    ctx = context(data_dir)
    t = AuditLog.__table__
    try:
        with transaction(ctx.engine, read_only=True) as conn:
            return [(a, json.loads(d)) for a, d in
                    conn.execute(select(t.c.action, t.c.details).order_by(t.c.id))]
    finally:
        ctx.close()


def passphrase_file(tmp_path: Path, text: str = PASS) -> Path:
    path = tmp_path / "pass.txt"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def test_status_json_reports_keys_rows_per_version_and_kek(data_dir, capsys):
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    kek_id = read_kek_file(data_dir / "kek.key").kek_id
    assert status["kek_ids"] == {kek_id: 5}
    rows = {(r["table"], r["version"], r["state"]): r["rows"] for r in status["rows"]}
    assert rows[("clients", 1, "active")] == 3 and rows[("users", 1, "active")] == 1


def test_status_works_without_the_key_file(data_dir, capsys):
    (data_dir / "kek.key").unlink()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "status")
    assert code == 0, err
    assert "Rows by key version" in out and "clients" in out


def test_rotate_kek_then_data_opens_with_the_new_key(data_dir, capsys):
    old_id = read_kek_file(data_dir / "kek.key").kek_id
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-kek", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["old_kek_ids"] == [old_id] and result["rewrapped"] == 5
    assert read_kek_file(data_dir / "kek.key").kek_id == result["new_kek_id"]
    assert (data_dir / f"kek.key.retired-{old_id}").exists()
    ctx = context(data_dir)
    try:
        assert decrypt_all(ctx.engine, ctx.keyring)["clients.first_name"] == ["Ada"] * 3
    finally:
        ctx.close()


def test_rotate_kek_human_output_reminds_to_export_a_new_kit(data_dir, capsys):
    code, out, _ = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-kek")
    assert code == 0 and "export-kit" in out and "restart strongroomd" in out


def test_rotate_kek_finishes_an_interrupted_rotation(data_dir, capsys):
    new_key = generate_kek()  # as a rotation that died before touching the database leaves it
    write_kek_file(pending_path(data_dir / "kek.key"), new_key)
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-kek")
    assert code == 0, err
    assert out.startswith("Finished interrupted rotation")
    assert read_kek_file(data_dir / "kek.key").key == new_key


def test_rotate_deks_reports_progress_on_stderr_and_rotates_every_client(data_dir, capsys):
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-deks")
    assert code == 0, err
    assert "re-encrypting client records: 3/3 clients" in err
    assert "Rotation complete" in out
    ctx = context(data_dir)
    try:
        states = [r["state"] for r in keys(ctx.engine, purpose=KeyPurpose.CLIENT)]
    finally:
        ctx.close()
    assert states.count(KeyState.RETIRED) == 3 and states.count(KeyState.ACTIVE) == 3


def test_rotate_deks_for_one_client(data_dir, capsys):
    ctx = context(data_dir)
    try:
        client_id = keys(ctx.engine, purpose=KeyPurpose.CLIENT)[0]["client_id"]
    finally:
        ctx.close()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-deks",
                         "--client", str(client_id), "--json")
    assert code == 0, err
    assert json.loads(out)["clients_rotated"] == 1


def test_rotate_deks_rejects_a_malformed_client_id(data_dir, capsys):
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-deks",
                       "--client", "not-a-uuid")
    assert code == 2 and "not-a-uuid" in err and "Traceback" not in err


def test_destroy_unused_after_rotation_shreds_the_old_keys(data_dir, capsys):
    assert run(capsys, "--data-dir", str(data_dir), "keys", "rotate-deks")[0] == 0
    # A live file's content stays under the key it was added with and keeps its client's
    # retired keys (tests/core/files/test_files_rotation.py); the seeded files go first.
    ctx = context(data_dir)
    try:
        with transaction(ctx.engine) as conn:
            conn.exec_driver_sql("UPDATE client_files SET deleted_at = CURRENT_TIMESTAMP")
    finally:
        ctx.close()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "destroy-unused", "--yes",
                         "--json")
    assert code == 0, err
    assert len(json.loads(out)["key_ids"]) == 3
    assert [a for a, _ in audit_actions(data_dir)].count("KEY_DESTROY") == 1


def test_destroy_unused_asks_first_and_aborts_on_no(data_dir):
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "keys", "destroy-unused"],
                                input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output


def test_export_kit_writes_a_private_page_and_audits_it(data_dir, tmp_path, capsys):
    out_file = tmp_path / "kit.txt"
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "export-kit",
                         "--out", str(out_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 0, err
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    page = out_file.read_text()
    kek = read_kek_file(data_dir / "kek.key")
    assert "Harbour Counselling" in page and kek.kek_id in page
    assert kit.open_kit(page, PASS).key == kek.key
    exports = [d for a, d in audit_actions(data_dir) if a == "KEY_EXPORT"]
    assert exports == [{"what": "recovery_kit", "kek_id": kek.kek_id, "file": str(out_file)}]
    assert PASS not in out + err


def test_export_kit_prompts_twice_for_the_passphrase(data_dir, tmp_path):
    out_file = tmp_path / "kit.txt"
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "keys", "export-kit",
                                      "--out", str(out_file)], input=f"{PASS}\n{PASS}\n")
    assert result.exit_code == 0, result.output
    assert kit.read_kit(out_file.read_text()).kek_id == read_kek_file(data_dir / "kek.key").kek_id


def test_export_kit_takes_the_passphrase_from_the_environment(data_dir, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setenv("STRONGROOM_KIT_PASSPHRASE", PASS)
    out_file = tmp_path / "kit.txt"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "export-kit", "--out", str(out_file))
    assert code == 0, err
    assert kit.open_kit(out_file.read_text(), PASS)


def test_export_kit_refuses_a_short_passphrase_and_an_existing_file(data_dir, tmp_path, capsys):
    out_file = tmp_path / "kit.txt"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "export-kit", "--out",
                       str(out_file), "--passphrase-file", str(passphrase_file(tmp_path, "too short")))
    assert code == 2 and "at least 12 characters" in err and not out_file.exists()
    out_file.write_text("old kit")
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "export-kit", "--out",
                       str(out_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 4 and "refusing to overwrite" in err and out_file.read_text() == "old kit"
    assert "KEY_EXPORT" not in [a for a, _ in audit_actions(data_dir)]


def export(data_dir: Path, tmp_path: Path, capsys) -> Path:
    out_file = tmp_path / "kit.txt"
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "export-kit", "--out",
                       str(out_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 0, err
    return out_file


def test_test_kit_passes_with_the_key_file_gone(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    (data_dir / "kek.key").unlink()
    code, out, err = run(capsys, "--data-dir", str(data_dir), "keys", "test-kit", "--kit",
                         str(kit_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 0, err
    assert out.startswith("OK:") and "5/5 keys covered" in out


def test_test_kit_with_a_wrong_passphrase_fails_cleanly(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "test-kit", "--kit",
                       str(kit_file), "--passphrase-file",
                       str(passphrase_file(tmp_path, "not the right passphrase")))
    assert code == 5 and "wrong passphrase or damaged kit" in err and "Traceback" not in err


def test_test_kit_fails_for_a_kit_older_than_the_last_kek_rotation(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    assert run(capsys, "--data-dir", str(data_dir), "keys", "rotate-kek")[0] == 0
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "test-kit", "--kit",
                       str(kit_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 5 and "recovery kit test failed" in err and "an old kit" in err


def test_test_kit_names_the_line_with_a_typo(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    lines = kit_file.read_text().splitlines()
    at = lines.index(kit.BEGIN) + 2
    lines[at] = lines[at][:4] + ("A" if lines[at][4] != "A" else "B") + lines[at][5:]
    kit_file.write_text("\n".join(lines))
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "test-kit", "--kit",
                       str(kit_file), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 2 and "line 02: checksum does not match" in err


def test_recover_rebuilds_the_key_file_and_the_data_opens_again(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    original = read_kek_file(data_dir / "kek.key").key
    (data_dir / "kek.key").unlink()
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "status")
    assert code == 0, err  # status needs no key
    code, out, err = run(capsys, "keys", "recover", "--kit", str(kit_file),
                         "--out", str(data_dir / "kek.key"),
                         "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 0, err
    assert "Recovered KEK" in out
    assert stat.S_IMODE((data_dir / "kek.key").stat().st_mode) == 0o600
    assert read_kek_file(data_dir / "kek.key").key == original
    ctx = context(data_dir)
    try:
        assert decrypt_all(ctx.engine, ctx.keyring)["therapy_sessions.notes"] == ["discussed sleep"] * 3
    finally:
        ctx.close()


def test_recover_refuses_to_overwrite_a_key_file(data_dir, tmp_path, capsys):
    kit_file = export(data_dir, tmp_path, capsys)
    before = (data_dir / "kek.key").read_bytes()
    code, _, err = run(capsys, "keys", "recover", "--kit", str(kit_file), "--out",
                       str(data_dir / "kek.key"), "--passphrase-file", str(passphrase_file(tmp_path)))
    assert code == 5 and "refusing to overwrite" in err
    assert (data_dir / "kek.key").read_bytes() == before


def test_commands_needing_the_key_explain_a_missing_key_file(data_dir, capsys):
    (data_dir / "kek.key").unlink()
    code, _, err = run(capsys, "--data-dir", str(data_dir), "keys", "rotate-deks")
    assert code == 5 and "kek.key is missing" in err and "keys recover" in err
    assert "Traceback" not in err
