"""The daemon's log lines: one JSON object per line; under systemd, each line starts with
its syslog priority (sd-daemon's `<N>` prefix) so `journalctl -p err` finds the errors."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from strongroom.daemon import logs


@pytest.fixture
def stderr_file(tmp_path, monkeypatch):
    """The daemon's stderr, here a real file (journald's is a socket; what matters is which
    stream it is). The root logger is restored afterwards."""
    path = tmp_path / "stderr"
    stream = path.open("w")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield path, stream
    root.handlers[:], level = saved[0], saved[1]
    root.setLevel(level)
    stream.close()


def _journal_is(stream, monkeypatch) -> None:
    # What systemd sets when it connects stderr to the journal: device and inode of the stream.
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")


def _log_each_level() -> None:
    log = logging.getLogger("strongroom.test")
    log.debug("debug line")
    log.info("info line", extra={"job": "backup"})
    log.warning("warning line")
    log.error("error line")
    log.critical("critical line")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed with a traceback")


def _lines(path: Path, stream) -> list[str]:
    stream.flush()
    return path.read_text().splitlines()


def test_under_the_journal_each_line_starts_with_its_syslog_priority(stderr_file, monkeypatch):
    path, stream = stderr_file
    _journal_is(stream, monkeypatch)
    logs.setup("DEBUG", stream)
    _log_each_level()
    lines = _lines(path, stream)
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>", "<3>"]
    entries = [json.loads(line[3:]) for line in lines]
    assert entries[1]["msg"] == "info line" and entries[1]["job"] == "backup"
    assert "ValueError: boom" in entries[5]["exc"]          # the traceback stays on its line


def test_without_the_journal_each_line_is_plain_json(stderr_file):
    path, stream = stderr_file
    logs.setup("DEBUG", stream)
    _log_each_level()
    entries = [json.loads(line) for line in _lines(path, stream)]
    assert [e["level"] for e in entries] == ["debug", "info", "warning", "error", "critical", "error"]


def test_a_journal_stream_inherited_by_a_redirected_stderr_is_not_the_journal(stderr_file, tmp_path,
                                                                               monkeypatch):
    # JOURNAL_STREAM passes to children whose stderr may go elsewhere (a file, a pipe):
    # only a stderr that is that very stream gets the prefixes.
    path, stream = stderr_file
    with (tmp_path / "journal").open("w") as journal:
        _journal_is(journal, monkeypatch)
    logs.setup("INFO", stream)
    logging.getLogger("strongroom.test").error("error line")
    assert json.loads(_lines(path, stream)[0])["msg"] == "error line"
