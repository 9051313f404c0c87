"""The configuration: one TOML file validated into one typed model tree.

A bad file produces a single ConfigError that names the file, the dotted key path and
the problem, so `strongroom` can print it and exit 2 without a traceback. Paths in the
file are resolved relative to the file's own directory, so a data directory can be moved
as a whole.
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from strongroom.core.errors import ConfigError
from strongroom.core.notify import NotifySettings
from strongroom.core.sync.settings import SyncSettings

CONFIG_NAME = "strongroom.toml"
ENV_DATA_DIR = "STRONGROOM_DATA_DIR"
ENV_CONFIG = "STRONGROOM_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = Field(description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://...")
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if not (value.startswith("sqlite") or value.startswith("postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value


class KeySettings(_Section):
    """Where the key-encryption key comes from. Exactly one source is used, in this
    order: a systemd credential (when $CREDENTIALS_DIRECTORY holds it), the environment
    variable, the file."""

    kek_file: Path | None = None
    kek_env: str | None = "STRONGROOM_KEK"
    kek_credential: str | None = "strongroom-kek"
    # A KEK protected by AWS KMS (core.crypto.kms): kek_file then holds a KMS envelope,
    # written by `strongroom keys rotate-kek --to kms`. kms_key_id (ARN, key id or
    # alias/NAME) is the key it must be under; a different one is refused. Credentials
    # come from the standard AWS chain (environment, shared config, instance role), never
    # from this file.
    kms_key_id: Annotated[str, StringConstraints(
        pattern=r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+"
                r"|alias/[A-Za-z0-9/_-]{1,250}|[0-9a-fA-F-]{36}|mrk-[0-9a-f]{32})$")] | None = None
    kms_endpoint_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")] | None = None
    kms_region: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]$")] | None = None


class Argon2Settings(_Section):
    time_cost: Annotated[int, Field(ge=1, le=20)] = 3
    memory_kib: Annotated[int, Field(ge=8, le=4_194_304)] = 65536
    parallelism: Annotated[int, Field(ge=1, le=16)] = 4


class AuthSettings(_Section):
    password_min_length: Annotated[int, Field(ge=8, le=256)] = 12
    max_failed_logins: Annotated[int, Field(ge=1, le=100)] = 5
    lockout_minutes: Annotated[int, Field(ge=1, le=10080)] = 15
    login_rate_limit_attempts: Annotated[int, Field(ge=1, le=10000)] = 10
    login_rate_limit_window_seconds: Annotated[int, Field(ge=1, le=86400)] = 60
    session_idle_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    session_absolute_hours: Annotated[int, Field(ge=1, le=720)] = 12
    max_sessions_per_user: Annotated[int, Field(ge=1, le=100)] = 5
    require_2fa_roles: list[str] = ["ADMIN", "admin", "operator"]
    totp_issuer: str = "Strongroom"
    argon2: Argon2Settings = Argon2Settings()
    # Control commands a signed-in person may make per hour, by class (the first part of
    # the command's name as classes were first named: `exports` for export.run and
    # export.list, once exports.run and exports.list; daemon/ratelimit.py). A user's profile may
    # set a lower limit, never a higher one; classes not named here are not limited.
    rate_limits: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")],
                      Annotated[int, Field(ge=1, le=1_000_000)]] = {"exports": 30}
    # Client file content a user may have added (MB); a profile may set less. None: no limit.
    storage_quota_mb: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    # The HIPAA acknowledgement version in force; users who have not consented to it are
    # shown by `strongroom user profile show` (and user.profile.show). None: not tracked.
    hipaa_consent_version: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    # A first login from a device an account has not used before is a security event;
    # with this, also a notification (to the channels in [notify], at warning level).
    notify_new_device: bool = True


class DaemonSettings(_Section):
    """The strongroomd process: where its sockets live and how it behaves."""

    # Default: $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) or <data_dir>/run.
    runtime_dir: Path | None = None
    tcp_endpoint: str | None = None
    curve_secret_key_file: Path | None = None
    curve_allowed_clients_dir: Path | None = None
    # 4 MiB, the files store's chunk: a file's content crosses the socket a chunk per
    # round trip (at 1 MiB a 1 GiB get took 2.5 s through the daemon, at 4 MiB 1.7 s)
    max_frame_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    health_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    shutdown_grace_seconds: Annotated[float, Field(ge=0, le=3600)] = 30.0
    local_operator_token: bool = True
    leader_retry_seconds: Annotated[float, Field(gt=0, le=600)] = 5.0
    misfire_grace_seconds: Annotated[int, Field(ge=1, le=7 * 86400)] = 3600
    catch_up_missed: bool = True

    @field_validator("tcp_endpoint")
    @classmethod
    def _tcp(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^tcp://[^:/\s]+:\d{1,5}$", value):
            raise ValueError("must look like tcp://HOST:PORT")
        return value


class AuditSettings(_Section):
    """Where signed checkpoints of the audit chain's head are kept outside the database
    (core/checkpoints.py): every backup repository that exists, and this file if set."""

    # Minutes between the daemon's checkpoints while the log grows (0: only at backups
    # and at shutdown).
    checkpoint_minutes: Annotated[int, Field(ge=0, le=7 * 24 * 60)] = 60
    # A file outside the database's reach (another disk, a mount the DBA cannot write).
    checkpoint_file: Path | None = None


class IntegritySettings(_Section):
    """What the integrity job (core/integrity/) asks of the data it checks."""

    # Rows per encrypted table opened under their AAD in a run that is not `full`.
    open_sample_rows: Annotated[int, Field(ge=0, le=10_000_000)] = 1000
    # Newest snapshot of every backup configuration at most this old, and verified within it.
    backup_verified_days: Annotated[int, Field(ge=1, le=3650)] = 8
    # Some snapshot of every backup configuration restore-drilled within this many days.
    backup_drilled_days: Annotated[int, Field(ge=1, le=3650)] = 35


class MetricsSettings(_Section):
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9464


class KeepPolicy(_Section):
    """Which snapshots the prune job keeps (each rule adds to the kept set).

    Read from the `[retention]` section (and each backup configuration's `retention`);
    named KeepPolicy so it is not confused with the retention of records (core/retention)."""

    keep_last: Annotated[int, Field(ge=1, le=10000)] = 7
    keep_daily: Annotated[int, Field(ge=0, le=10000)] = 14
    keep_weekly: Annotated[int, Field(ge=0, le=10000)] = 8
    keep_monthly: Annotated[int, Field(ge=0, le=10000)] = 12
    max_age_days: Annotated[int, Field(ge=0, le=36500)] = 0  # 0: no age limit
    # Rewrite a chain whose full base the policy would forget (or that reached the
    # chain limit) onto a new, synthesised full base, so old links can go.
    compact: bool = True


class ExportSettings(_Section):
    """Where exports are written and how often one person may start one."""

    # Default: <data_dir>/exports; a relative path is taken relative to data_dir.
    directory: Path | None = None
    # Exports one actor may start in any rolling hour (the source's export rate limit).
    max_per_hour: Annotated[int, Field(ge=1, le=10000)] = 30
    # Rows read, decrypted and written per step (memory is bounded by this, not the table).
    batch_size: Annotated[int, Field(ge=10, le=10000)] = 500
    # Days an export's files stay in the export directory before the export_retention job
    # deletes them; a saved configuration's own retention_days (same bounds) overrides it.
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 30


class FilesSettings(_Section):
    """Client files: where their encrypted content is stored and what may be added."""

    # A storage URL (an absolute path, file:///..., s3://, azure:// or gs://); default
    # <data_dir>/files. Never the same place as a backup repository.
    target: str | None = None
    # The largest file accepted, in bytes (refused before anything is written).
    max_bytes: Annotated[int, Field(ge=1, le=1 << 40)] = 100 * 1024 * 1024
    # Content types accepted ("type/subtype", or "type/*" for a whole family).
    allowed_types: list[Annotated[str, StringConstraints(min_length=3, max_length=120,
                                                         pattern=r"^[a-z0-9][a-z0-9.+-]*/([a-z0-9][a-z0-9.+-]*|\*)$")]] = [
        "application/pdf", "image/*", "text/plain", "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text", "application/rtf"]
    # zstd-compress each chunk before encryption (kept only where it saves space).
    compress: bool = True
    # Malware scanning of new files by ClamAV's clamd (core/files/scan.py). "off": files
    # are stored unscanned and served. "clamd": a new file is quarantined (status pending,
    # not served without files:quarantine:read) until clamd finds it clean; infected files
    # are refused; the files_rescan job scans files left pending while clamd was down.
    scanner: Literal["off", "clamd"] = "off"
    # Where clamd listens: its LocalSocket (default /run/clamav/clamd.ctl, Debian's), or
    # TCP "host:port" (TCPAddr/TCPSocket); not both.
    clamd_socket: Annotated[str, StringConstraints(min_length=1, max_length=107)] | None = None
    clamd_tcp: Annotated[str, StringConstraints(pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")] | None = None
    # Seconds any one clamd operation (connect, send, the verdict) may take.
    clamd_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0

    @field_validator("clamd_tcp")
    @classmethod
    def _one_clamd_address(cls, value: str | None, info) -> str | None:
        if value is not None and info.data.get("clamd_socket") is not None:
            raise ValueError("set clamd_socket or clamd_tcp, not both")
        if value is not None and not 1 <= int(value.rpartition(":")[2]) <= 65535:
            raise ValueError("the port must be between 1 and 65535")
        return value


_CONFIGURATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class BackupConfigurationSettings(_Section):
    """One backup configuration: where its snapshots go and how they are kept.

    `target` is a storage URL: an absolute path or file:///path for local disk,
    s3://bucket/prefix?region=...&object_lock_days=... for S3, azure://account/container/prefix
    for Azure Blob Storage, gs://bucket/prefix for Google Cloud Storage (core/storage).
    Default: <data_dir>/backups
    for the configuration named "default", <data_dir>/backups-<name> for the others.
    """

    target: str | None = None
    compression_level: Annotated[int, Field(ge=1, le=19)] = 3
    backup_type: Literal["incremental", "full"] = "incremental"
    verify_after: bool = True
    require_approval: bool = False
    approval_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 24
    retention: KeepPolicy = KeepPolicy()
    # Bytes this configuration's snapshots may take on their target; health reports the
    # share used (None: no quota).
    quota_bytes: Annotated[int, Field(ge=1)] | None = None
    # Cron expression for this configuration's backups (named configurations only; the
    # "default" one follows [schedules] backup).
    schedule: str | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        from strongroom.core.schedule import cron_trigger

        if value is not None:
            try:
                cron_trigger(value)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be empty (leave it out for the default)")
        if not (value.startswith(("/", "file:///", "s3://", "azure://", "gs://"))):
            raise ValueError("must be an absolute path, file:///path, s3://bucket/prefix, "
                             "azure://account/container/prefix or gs://bucket/prefix")
        return value


class BackupSettings(BackupConfigurationSettings):
    """The `[backup]` section: its own keys are the configuration named "default" (so a
    file with one `[backup]` section keeps working); `[backup.configurations.NAME]`
    tables declare more, each with the same keys."""

    configurations: dict[str, BackupConfigurationSettings] = {}

    @field_validator("schedule")
    @classmethod
    def _default_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError('the "default" configuration is scheduled by [schedules] backup; '
                             "schedule is for [backup.configurations.NAME] tables")
        return value

    @field_validator("configurations")
    @classmethod
    def _names(cls, value: dict[str, BackupConfigurationSettings]) -> dict[str, BackupConfigurationSettings]:
        for name in value:
            if name == "default":
                raise ValueError('"default" is the [backup] section itself; give this one another name')
            if not _CONFIGURATION_NAME.match(name):
                raise ValueError(f"configuration name {name!r}: use lowercase letters, digits, - and _ "
                                 "(at most 63, starting with a letter or digit)")
        return value


class Settings(_Section):
    """The whole configuration. `source` is the file it came from (None when built in
    code), used to resolve relative paths and in error messages."""

    data_dir: Path
    practice_name: str = "Practice"
    database: DatabaseSettings
    keys: KeySettings = KeySettings()
    auth: AuthSettings = AuthSettings()
    daemon: DaemonSettings = DaemonSettings()
    metrics: MetricsSettings = MetricsSettings()
    audit: AuditSettings = AuditSettings()
    integrity: IntegritySettings = IntegritySettings()
    # Cron expressions (minute hour day month weekday) per job kind, e.g. backup = "0 2 * * *".
    schedules: dict[str, str] = {}
    notify: NotifySettings = NotifySettings()
    backup: BackupSettings = BackupSettings()
    export: ExportSettings = ExportSettings()
    files: FilesSettings = FilesSettings()
    sync: SyncSettings = SyncSettings()
    # The compliance score (0-100) below which the alert rule fires.
    compliance_threshold: Annotated[int, Field(ge=0, le=100)] = 80
    source: Path | None = Field(default=None, exclude=True)

    @field_validator("schedules")
    @classmethod
    def _cron(cls, value: dict[str, str]) -> dict[str, str]:
        from strongroom.core.jobs import schedulable_kinds
        from strongroom.core.schedule import cron_trigger

        for kind, expression in value.items():
            if kind not in schedulable_kinds():
                raise ValueError(f"job kind {kind!r} cannot be scheduled (schedulable: "
                                 f"{', '.join(schedulable_kinds())})")
            try:
                cron_trigger(expression)
            except ValueError as exc:
                raise ValueError(f"{kind}: invalid cron expression {expression!r}: {exc}") from None
        return value


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_settings(data: dict, source: Path | None = None) -> Settings:
    """Validate a parsed TOML document; relative paths resolve against its folder."""
    base = source.parent if source else Path.cwd()
    try:
        settings = Settings.model_validate({**data, "source": source})
    except ValidationError as exc:
        where = str(source) if source else "configuration"
        problems = []
        for err in exc.errors():
            got = err.get("input")
            shown = "" if isinstance(got, dict) or err["type"] == "missing" else f" (got {got!r})"
            problems.append(f"{_key_path(err['loc'])}: {err['msg']}{shown}")
        raise ConfigError(f"{where}: " + "; ".join(problems)) from None
    return _resolve_paths(settings, base)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    data_dir = (base / settings.data_dir).resolve()
    kek_file = settings.keys.kek_file
    keys = settings.keys.model_copy(update={"kek_file": (base / kek_file).resolve() if kek_file else None})
    url = settings.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        url = prefix + str((base / url[len(prefix):]).resolve())
    database = settings.database.model_copy(update={"url": url})
    daemon = settings.daemon.model_copy(update={
        name: (base / getattr(settings.daemon, name)).resolve()
        for name in ("runtime_dir", "curve_secret_key_file", "curve_allowed_clients_dir")
        if getattr(settings.daemon, name) is not None})
    notify = settings.notify
    if notify.email is not None and notify.email.password_file is not None:
        email = notify.email.model_copy(update={"password_file": (base / notify.email.password_file).resolve()})
        notify = notify.model_copy(update={"email": email})
    audit = settings.audit
    if audit.checkpoint_file is not None:
        audit = audit.model_copy(update={"checkpoint_file": (base / audit.checkpoint_file).resolve()})
    resolved = settings.model_copy(update={"data_dir": data_dir, "keys": keys, "database": database,
                                           "daemon": daemon, "notify": notify, "audit": audit})
    _distinct_backup_targets(resolved)
    return resolved


def backup_target(settings: Settings, name: str) -> str:
    """The storage URL of backup configuration `name` (see BackupConfigurationSettings)."""
    configuration = settings.backup if name == "default" else settings.backup.configurations[name]
    if configuration.target:
        return configuration.target
    folder = "backups" if name == "default" else f"backups-{name}"
    return str(Path(settings.data_dir) / folder)


def _distinct_backup_targets(settings: Settings) -> None:
    # Two configurations on one repository would prune each other's snapshots by the
    # wrong policy and share a lock: refuse it at load time.
    seen: dict[str, str] = {}
    for name in ["default", *settings.backup.configurations]:
        url = backup_target(settings, name).removeprefix("file://").rstrip("/")
        if url in seen:
            where = "backup.target" if name == "default" else f"backup.configurations.{name}.target"
            raise ConfigError(f"{settings.source or 'configuration'}: {where}: the same repository as "
                              f"backup configuration {seen[url]!r}; each configuration needs its own")
        seen[url] = name


def load_settings(path: Path) -> Settings:
    """Read and validate one TOML file; every failure is a ConfigError naming the file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_settings(data, source=path.resolve())


def locate_config(config: str | None, data_dir: str | None) -> Path:
    """Find the config from --config, --data-dir, $STRONGROOM_CONFIG or $STRONGROOM_DATA_DIR."""
    if config:
        return Path(config)
    if data_dir:
        return Path(data_dir) / CONFIG_NAME
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    if os.environ.get(ENV_DATA_DIR):
        return Path(os.environ[ENV_DATA_DIR]) / CONFIG_NAME
    raise ConfigError(
        f"no configuration: pass --data-dir DIR or --config FILE, or set {ENV_DATA_DIR}"
    )
