"""The single-word commands (help, status, health) and the daemon's configuration.

`help`, `status`, `health` and `whoami` are named for what they answer, not as
noun.verb (core/protocol/names.py SINGLE_WORD)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from strongroom.core.protocol.models.base import Result


class HelpEntry(Result):
    cmd: str
    permission: str | None
    help: str
    # For a deprecated alias: the command's current name (core/protocol/names.py RENAMED).
    alias_of: str | None = None


class RunningJob(Result):
    """A run in progress, as the runner sees it."""
    run_id: str
    kind: str
    done: int
    total: int | None
    # What done and total count (the kind's progress unit: bytes, rows, records...).
    unit: str | None = None
    message: str | None
    elapsed_seconds: float
    # Set (to why) when the caller is bound to one practice of several and the run covers
    # every practice: its message is then left out (as job.list's runs).
    withheld: str | None = None


class KekSource(Result):
    """Where the key-encryption key comes from (never the key)."""
    source: str
    kek_id: str | None = None
    file: str | None = None
    kms_key: str | None = None


class StatusResult(Result):
    version: str
    pid: int
    host: str
    role: Literal["leader", "standby"]
    stopping: bool          # shutting down (after SIGTERM), letting running jobs reach a safe point
    uptime_seconds: float
    database: str
    reloads: int
    running_jobs: list[RunningJob]
    job_kinds: list[str]
    on_request_kinds: list[str]
    # schedule id -> its next fire time (ISO 8601), None while paused; {} on a standby
    next_runs: dict[str, str | None]
    metrics_port: int | None
    kek: KekSource


class HealthSync(Result):
    peers: int
    failing: list[str]
    max_lag_seconds: float | None
    open_conflicts: int
    quarantined: int
    # per peer: whether the last consistency check found the sites equal (core/sync)
    consistency: dict[str, Any]


class HealthIntegrity(Result):
    status: str
    age_seconds: float | None


class HealthCompliance(Result):
    score: int
    threshold: int
    status: Literal["ok", "below threshold"]
    not_configured: list[str]
    generated_at: datetime


class HealthResult(Result):
    """The last health snapshot. Every key is always there: until the daemon's loop has
    taken its first snapshot, the command takes one itself (daemon/lifecycle.py)."""
    open_conflicts: int
    sync_peers: int
    sync_lag_seconds: float | None
    sync: HealthSync
    integrity: HealthIntegrity | None
    role: Literal["leader", "standby"]
    uptime_seconds: float
    running_jobs: list[RunningJob]
    last_success: dict[str, datetime]     # job kind -> last success
    last_backup_age_seconds: float | None
    next_runs: dict[str, str | None]
    audit_chain_ok: bool | None
    # client file scanning: files pending a scan, whether the scanner answers (core/files/scan.py)
    files: dict[str, Any]
    kek: KekSource
    # per table (rows, bytes) and per backup target (used, quota, percent): core/usage.py
    storage: dict[str, Any]
    # backup runs succeeded and failed in the window, by configuration: core/usage.py
    backups: dict[str, Any]
    compliance: HealthCompliance
    usage_as_of: datetime


class ConfigResult(Result):
    """The running configuration with secrets and credentials redacted: one key per
    strongroom.toml setting. Each section's keys are core/config.py's (documented in
    etc/strongroom.toml), kept open here so the protocol does not restate the config file."""
    data_dir: str
    practice_name: str
    database: dict[str, Any]
    keys: dict[str, Any]
    auth: dict[str, Any]
    daemon: dict[str, Any]
    metrics: dict[str, Any]
    audit: dict[str, Any]
    integrity: dict[str, Any]
    schedules: dict[str, str]
    notify: dict[str, Any]
    backup: dict[str, Any]
    export: dict[str, Any]
    files: dict[str, Any]
    sync: dict[str, Any]
    compliance_threshold: int
