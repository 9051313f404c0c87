"""`strongroom compliance report --format pdf|md|json --out FILE` and `compliance verify
FILE` against a real daemon: the report is written signed, verifies, a changed byte
fails verification, and bad input is refused without echoing it and without a file."""
import json

import pytest

from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import DaemonProcess, make_data_dir


@pytest.fixture
def running(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    data_dir = make_data_dir(tmp_path, db_url)
    proc = DaemonProcess(data_dir, tmp_path)
    proc.wait_ready()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
    yield data_dir, proc
    assert proc.stop() == 0


def test_report_is_written_signed_verifies_and_a_changed_byte_fails(running, capsys, tmp_path):
    data_dir, _ = running
    for fmt in ("pdf", "md", "json"):
        out = tmp_path / f"report.{fmt}"
        code, stdout, err = run(capsys, "--data-dir", data_dir, "compliance", "report", "--format", fmt,
                                "--out", out, "--since", "2020-01-01")
        assert code == 0, err
        assert out.exists() and out.stat().st_mode & 0o077 == 0 and str(out) in stdout
        code, stdout, err = run(capsys, "--data-dir", data_dir, "compliance", "verify", out)
        assert code == 0, err
        assert "signature valid" in stdout and fmt in stdout
    data = bytearray((tmp_path / "report.pdf").read_bytes())
    data[len(data) // 2] ^= 0x20
    (tmp_path / "tampered.pdf").write_bytes(bytes(data))
    code, stdout, err = run(capsys, "--data-dir", data_dir, "compliance", "verify", tmp_path / "tampered.pdf")
    assert code != 0 and "does not verify" in err
    code, stdout, err = run(capsys, "--data-dir", data_dir, "compliance", "verify", "--json",
                            tmp_path / "report.json")
    assert code == 0 and json.loads(stdout)["ok"] is True


def test_bad_input_is_named_not_echoed_and_writes_nothing(running, capsys, tmp_path):
    data_dir, _ = running
    out = tmp_path / "never.pdf"
    code, _, err = run(capsys, "--data-dir", data_dir, "compliance", "report", "--format", "docx-secret",
                       "--out", out)
    assert code != 0 and "format" in err and "docx-secret" not in err
    code, _, err = run(capsys, "--data-dir", data_dir, "compliance", "report", "--format", "pdf",
                       "--out", out, "--until", "2999-01-01")
    assert code != 0 and "future" in err and "2999" not in err
    assert not out.exists()
    (tmp_path / "notes.txt").write_text("Jane Doe 123-45-6789")
    code, _, err = run(capsys, "--data-dir", data_dir, "compliance", "verify", tmp_path / "notes.txt")
    assert code != 0 and "Jane" not in err and "not a Strongroom compliance report" in err
    code, out_text, err = run(capsys, "--data-dir", data_dir, "compliance")    # the score, as before
    assert code == 0 and "compliance score" in out_text
