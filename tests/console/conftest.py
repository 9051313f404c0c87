"""Fixtures the console's tests share with the daemon's: a real daemon over the sync demo."""
from tests.daemon.conftest import sync_daemon  # noqa: F401  (a fixture, registered here for tests/console)
