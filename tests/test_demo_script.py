"""scripts/demo.sh (`make demo`): what it leaves in the demo data directory is readable by
its owner only, like everything else Strongroom writes there."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.prefix) / "bin"


def test_the_daemon_log_of_make_demo_is_readable_by_its_owner_only(tmp_path):
    demo = tmp_path / "demo"
    ours = ("STRONGROOM_", "NOTIFY_SOCKET", "WATCHDOG_", "RUNTIME_DIRECTORY", "JOURNAL_STREAM")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(HOME=str(tmp_path), BIN=str(BIN), DEMO=str(demo))
    init = subprocess.run([str(BIN / "strongroom"), "--data-dir", str(demo), "init", "--demo",
                           "--practice-name", "Demo Practice"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    with open(demo / "strongroom.toml", "a") as config:
        config.write("\n[metrics]\nport = 0\n")       # never collide with a daemon on 9464
    # A usual login umask (022), as a developer typing `make demo` has.
    run = subprocess.run(["bash", "-c", f"umask 022; exec {REPO / 'scripts' / 'demo.sh'}"], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    log = demo / "daemon.log"
    assert log.stat().st_size > 0                     # the daemon did write to it
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
