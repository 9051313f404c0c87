"""Fixtures the console's tests share with the daemon's: real daemons over the sync demo
and over the retention demo, with the CLI pointed at them."""
import pytest

from tests.daemon.conftest import make_data_dir, running_daemon, seed_retention_demo, sync_daemon  # noqa: F401  (sync_daemon: a fixture)


@pytest.fixture
def retention_daemon(tmp_path, db_url, monkeypatch):
    """A daemon over the retention demo (what was seeded is `.seeded`); the CLI's token
    directory and runtime directory point at it."""
    data_dir = make_data_dir(tmp_path, db_url)
    seeded = seed_retention_demo(data_dir)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    with running_daemon(data_dir, tmp_path) as proc:
        monkeypatch.setenv("RUNTIME_DIRECTORY", str(proc.runtime))
        proc.seeded = seeded
        yield proc
