"""This build's version, from the installed package's metadata (pyproject.toml).

Read here, not from the daemon's metrics module, so the console and the CLI can name
their version without importing prometheus_client or the database models.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("strongroom")
except PackageNotFoundError:     # running from a source tree that was never installed
    VERSION = "0+unknown"
