"""The whole product, as a practice's sysadmin meets it, on each engine.

Every other test drives one part; this one proves the parts fit, through the installed
`strongroom` command and a real `strongroomd`, nothing imported but the console for its
Pilot: a data directory made by `init` (on an empty PostgreSQL database when the engine
is PostgreSQL), synthetic clients, the daemon, a backup verified by reading its data
back, a CSV export, a restore into a new empty database whose clients match the
source's row for row, and a person logging in to the console and seeing the snapshot.
The README's own walkthrough (tests/test_readme.py) covers the SQLite demo line by line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from strongroom.core.db.engine import make_engine
from strongroom.core.db.models import Client
from tests.conftest import PG_AVAILABLE, pg_admin, pg_url
from tests.console.tui import conftest as tui
from tests.daemon.conftest import FAST_AUTH, PASSWORD, running_daemon

patient_pilot = tui.patient_pilot       # autouse here too: the console's Pilot waits in rounds

CLI = [sys.executable, "-m", "strongroom.console.cli"]


# The daemon's runtime directory (as systemd's RuntimeDirectory= gives both sides), once it runs.
RUNTIME: dict[str, str] = {}


def strongroom(data_dir: Path, *args: str, timeout: float = 180) -> str:
    """One CLI command as a person types it; its stdout. Fails the test naming the
    command, with its output, unless it exits 0 without an error line."""
    done = subprocess.run([*CLI, "--data-dir", str(data_dir), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **RUNTIME})
    assert done.returncode == 0 and "Traceback" not in done.stderr, (
        f"strongroom {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """Where `init` puts the practice and where the restore goes: nothing (SQLite: `init`
    makes its own file) or two new, empty PostgreSQL databases, dropped afterwards."""
    if request.param == "sqlite":
        return None, f"sqlite:///{tmp_path / 'restored.db'}"
    if not PG_AVAILABLE:
        pytest.skip("PostgreSQL is not answering")
    names = [f"sr_e2e_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for name in names:
        pg_admin(f'CREATE DATABASE "{name}"')
        request.addfinalizer(lambda name=name: pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    return pg_url(names[0]), pg_url(names[1])


def _clients(url: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        table = Client.__table__
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(table.c.id, table.c.data_checksum, table.c.sync_version)
                                                   .order_by(table.c.id))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_init_backup_verify_export_restore_and_console_fit_together(empty_database, tmp_path):
    database_url, restore_url = empty_database
    data = tmp_path / "practice"
    strongroom(data, "init", "--practice-name", "Day One Practice",
               *(["--database-url", database_url] if database_url else []))
    config = data / "strongroom.toml"
    config.write_text(config.read_text() + FAST_AUTH + "\n[metrics]\nport = 0\n")
    strongroom(data, "demo", "seed", "--clients", "30")
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    strongroom(data, "user", "add", "frontdesk", "--role", "auditor", "--password-file", str(tmp_path / "pw"))
    source_url = database_url or f"sqlite:///{data / 'strongroom.db'}"
    source = _clients(source_url)
    assert len(source) >= 30

    with running_daemon(data, tmp_path) as daemon:
        RUNTIME["RUNTIME_DIRECTORY"] = str(daemon.runtime)
        status = json.loads(strongroom(data, "status", "--json"))
        assert status["role"] == "leader" and status["database"] == ("postgresql" if database_url else "sqlite")
        strongroom(data, "backup", "run", "--wait")
        (snapshot,) = json.loads(strongroom(data, "backup", "list", "--json"))
        strongroom(data, "backup", "verify", snapshot["snapshot_id"], "--read-data", "--wait")

        strongroom(data, "export", "--table", "clients", "--fields", "id,status", "--format", "csv", "--wait")
        (export,) = json.loads(strongroom(data, "exports", "list", "--json"))["items"]
        assert export["status"] == "succeeded" and export["row_count"] == len(source)
        written = [p for p in Path(export["location"]).rglob("*") if p.is_file()]
        assert written and all(p.stat().st_mode & 0o077 == 0 for p in written)   # the owner's alone

        restored_files = tmp_path / "restored-files"     # the demo's files (sealed chunks and manifests)
        strongroom(data, "restore", snapshot["snapshot_id"], "--target", restore_url,
                   "--files-target", str(restored_files))
        assert _clients(restore_url) == source          # every client, as stored, checksums included
        assert sorted(p.relative_to(restored_files) for p in restored_files.rglob("*") if p.is_file()) == \
            sorted(p.relative_to(data / "files") for p in (data / "files").rglob("*") if p.is_file())

        _console_shows_the_snapshot(daemon, snapshot["snapshot_id"])
    RUNTIME.clear()

    strongroom(data, "audit", "verify")


def _console_shows_the_snapshot(daemon, snapshot_id: str) -> None:
    from textual.widgets import DataTable

    from strongroom.console.app import StrongroomConsole
    from strongroom.console.screens.main import MainScreen
    from tests.console.tui.conftest import SIZE, drive, log_in, tab_keys, wait_for

    async def scenario() -> None:
        app = StrongroomConsole(daemon.endpoint, daemon.events_endpoint)
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot, "frontdesk")
            await wait_for(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.identity,
                           what="the main screen after logging in")
            await pilot.press(*tab_keys("backups"))
            table = app.screen.query_one("#backups").query_one(DataTable)
            await wait_for(pilot, lambda: any(snapshot_id in str(key.value) for key in table.rows),
                           what="the snapshot in the Backups tab")
    drive(scenario, timeout=120)
