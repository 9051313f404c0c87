"""`strongroom files add|list|get|remove` against a real daemon: a file round trip
byte-identical through the CLI, --out never overwritten without --force and never
left half-written, bad input a clear error and a non-zero exit."""
import json
import os

import pytest

from tests.console.cli_helpers import run_cli as run
from tests.daemon.conftest import files_daemon  # noqa: F401  (a fixture)


@pytest.fixture
def daemon(files_daemon, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(files_daemon.runtime))
    return files_daemon


def cli(capsys, daemon, *args):
    return run(capsys, "--data-dir", daemon.data_dir, *args)


def test_add_list_get_remove(capsys, daemon, tmp_path):
    source = tmp_path / "referral letter.pdf"
    data = os.urandom(1_800_000)
    source.write_bytes(data)
    client = daemon.clients[0]
    code, out, err = cli(capsys, daemon, "files", "add", client, source, "--description", "from Dr Q", "--json")
    assert code == 0, err
    file_id = json.loads(out)["id"]
    code, out, err = cli(capsys, daemon, "files", "list", client)
    assert code == 0, err
    assert file_id in out and "referral letter.pdf" in out and "application/pdf" in out and "(from Dr Q)" in out
    target = tmp_path / "out" / "copy.pdf"
    target.parent.mkdir()
    code, out, err = cli(capsys, daemon, "files", "get", file_id, "--out", target)
    assert code == 0, err
    assert target.read_bytes() == data and f"saved file {file_id}" in out
    target.write_bytes(b"mine")
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", target)
    assert code != 0 and "--force" in err and target.read_bytes() == b"mine"
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", target, "--force")
    assert code == 0, err
    assert target.read_bytes() == data and sorted(p.name for p in target.parent.iterdir()) == ["copy.pdf"]
    code, out, err = cli(capsys, daemon, "files", "remove", file_id)
    assert code == 0 and f"removed file {file_id}" in out, err
    code, out, _ = cli(capsys, daemon, "files", "list", client)
    assert code == 0 and out.strip() == "no files"


def test_refusals_are_clear_and_leave_nothing(capsys, daemon, tmp_path):
    client = daemon.clients[0]
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ" * 10)
    code, _, err = cli(capsys, daemon, "files", "add", client, exe)
    assert code != 0 and "not allowed" in err
    big = tmp_path / "big.pdf"
    with open(big, "wb") as fh:
        fh.truncate(12_000_001)
    code, _, err = cli(capsys, daemon, "files", "add", client, big)
    assert code != 0 and "limit is 12000000" in err
    good = tmp_path / "a.pdf"
    good.write_bytes(b"%PDF-1.4 synthetic")
    code, out, err = cli(capsys, daemon, "files", "add", client, good, "--json")
    assert code == 0, err
    file_id = json.loads(out)["id"]
    for path in (daemon.data_dir / "files").rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    target = tmp_path / "copy.pdf"
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", target)
    assert code != 0 and file_id in err
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.pdf")]
    assert cli(capsys, daemon, "files", "list", daemon.clients[1])[1].strip() == "no files"


def test_get_refuses_an_out_that_exists_or_has_no_folder_without_echoing_it(capsys, daemon, tmp_path):
    good = tmp_path / "Quillon-intake.pdf"
    good.write_bytes(b"%PDF-1.4 synthetic")
    code, out, err = cli(capsys, daemon, "files", "add", daemon.clients[0], good, "--json")
    assert code == 0, err
    file_id = json.loads(out)["id"]
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", good)
    assert code != 0 and "--out: a file is already there; add --force" in err and "Quillon" not in err
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", tmp_path / "Quillon-dir" / "x.pdf")
    assert code != 0 and "--out: its folder does not exist" in err and "Quillon" not in err
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", good, "--force")
    assert code == 0, err
    assert good.read_bytes() == b"%PDF-1.4 synthetic"


def test_a_file_of_several_pieces_round_trips_and_a_bad_middle_piece_leaves_nothing(capsys, daemon, tmp_path):
    """Three pieces (4 MiB frames): the CLI reads the next piece while one is with the
    daemon, and writes a piece while it asks for the next. The bytes arrive whole and
    in order; a chunk tampered in the middle leaves no file and no temporary beside it."""
    source = tmp_path / "scan.pdf"
    data = os.urandom(11_500_000)
    source.write_bytes(data)
    code, out, err = cli(capsys, daemon, "files", "add", daemon.clients[0], source, "--json")
    assert code == 0, err
    file_id = json.loads(out)["id"]
    target = tmp_path / "copy.pdf"
    code, out, err = cli(capsys, daemon, "files", "get", file_id, "--out", target)
    assert code == 0, err
    assert target.read_bytes() == data
    target.unlink()
    objects = sorted((p for p in (daemon.data_dir / "files").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    middle = [p for p in objects if p.stat().st_size > 3_000_000][1]     # one of the full-size chunks
    raw = bytearray(middle.read_bytes())
    raw[len(raw) // 2] ^= 1
    middle.write_bytes(bytes(raw))
    code, _, err = cli(capsys, daemon, "files", "get", file_id, "--out", target)
    assert code != 0 and file_id in err
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".copy.pdf")]
