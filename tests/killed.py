"""kill -9 at a known moment: a child interpreter runs a script until it says it got
there, and is killed on the spot; then what it left on disk is searched."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

READY = "ready"


def killed_when_ready(script: str) -> None:
    """Run `script` in a fresh interpreter until it prints READY, then kill -9 it (the
    script sleeps after printing, so the kill comes at that point, not after it)."""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == READY
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()


def files_holding(root: Path, needle: bytes) -> list[str]:
    """The files under `root` (any depth, hidden ones too) whose bytes hold `needle`."""
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]
