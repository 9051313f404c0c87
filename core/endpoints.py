"""Where the daemon's sockets and token live, for the daemon and its clients alike
(in core so that the CLI finds the socket without importing the daemon)."""
from __future__ import annotations

import os
from pathlib import Path

from strongroom.core.config import Settings

LOCAL_TOKEN_FILE = "operator.token"


def runtime_dir_for(settings: Settings) -> Path:
    """Config, then systemd's $RUNTIME_DIRECTORY, then <data_dir>/run."""
    if settings.daemon.runtime_dir:
        return settings.daemon.runtime_dir
    if os.environ.get("RUNTIME_DIRECTORY"):
        return Path(os.environ["RUNTIME_DIRECTORY"].split(":")[0])
    return settings.data_dir / "run"


def control_endpoint(runtime_dir: Path) -> str:
    return f"ipc://{runtime_dir / 'control.sock'}"


def events_endpoint(runtime_dir: Path) -> str:
    return f"ipc://{runtime_dir / 'events.sock'}"
