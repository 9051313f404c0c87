"""Structured logs to stderr: one JSON object per line, which journald keeps as is.

Under systemd, stderr is a stream to the journal, which stores every line at the unit's
default priority (info) unless the line starts with sd-daemon's `<N>` syslog priority:
without it `journalctl -p err` would never show the daemon's errors. So when stderr is
the journal's stream (JOURNAL_STREAM names its device and inode) each line carries its
priority; anywhere else (a terminal, a file, a test's pipe) the lines are plain JSON.

Log lines name jobs, run ids, table names, counts and error classes; they never carry
PHI, passwords, tokens or key material. Request arguments are not logged at all.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TextIO

_RESERVED = set(vars(logging.makeLogRecord({})))
# syslog(3) priorities, as sd-daemon(3) prefixes them.
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(time.time(), 3), "level": record.levelname.lower(),
                 "logger": record.name, "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)  # one line: newlines in a traceback are escaped


class JournalFormatter(JsonFormatter):
    """The JSON line behind its syslog priority, e.g. `<3>{"level": "error", ...}`."""

    def format(self, record: logging.LogRecord) -> str:
        priority = next((p for level, p in sorted(_PRIORITY.items(), reverse=True)
                         if record.levelno >= level), 7)
        return f"<{priority}>{super().format(record)}"


def goes_to_journal(stream: TextIO) -> bool:
    """Whether `stream` is the one systemd connected to the journal. JOURNAL_STREAM is
    inherited by child processes whose stderr may point elsewhere, so its device and
    inode must be this stream's (systemd.exec(5))."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (io.StringIO)
        return False
    return bool(expected) and expected == f"{st.st_dev}:{st.st_ino}"


def setup(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record to `stream` (stderr by default) as one line each."""
    stream = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if goes_to_journal(stream) else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
