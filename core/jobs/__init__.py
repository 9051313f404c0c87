"""Job kinds: each a module with one `run(ctx, params, progress) -> dict` function.

The daemon wraps every run in a job_runs row, an audit entry, metrics and progress
events; the functions here know nothing about the daemon. Kinds whose issue has not
landed yet are listed in PLANNED so schedules and commands can name them and get a
clear "not implemented yet" instead of an unknown-kind error.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from strongroom.core.context import Context

Progress = Callable[[int, int | None, str], None]
JobFunction = Callable[[Context, dict, Progress], dict[str, Any]]

PLANNED = ("sync",)


def registry() -> dict[str, JobFunction]:
    """The job kinds this build can run, by name."""
    from strongroom.core.jobs import (backup, export, integrity, key_rotation, prune, restore, restore_drill,
                                      retention, verify)

    return {"backup": backup.run, "verify": verify.run, "restore_drill": restore_drill.run,
            "prune": prune.run, "integrity": integrity.run, "key_rotation": key_rotation.run,
            "restore": restore.run, "export": export.run, "retention": retention.run}


# Kinds that need a person's arguments (which snapshot, into which database; which
# tables, and a ZIP password that must not sit in a config file).
ON_REQUEST_ONLY = ("restore", "export")


# The kinds `registry` returns, by name, so that validating a config file (every CLI
# command does) need not import every job module (a test keeps the two equal).
RUNNABLE = ("backup", "verify", "restore_drill", "prune", "integrity", "key_rotation", "restore", "export",
            "retention")


def all_kinds() -> tuple[str, ...]:
    return tuple(sorted(set(PLANNED) | set(RUNNABLE)))


def schedulable_kinds() -> tuple[str, ...]:
    return tuple(k for k in all_kinds() if k not in ON_REQUEST_ONLY)
