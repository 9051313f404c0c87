"""Creating a data directory: config, key file and database in one step that either
completes or leaves nothing behind."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from strongroom.core import audit
from strongroom.core.backup.configurations import sync as sync_backup_configurations
from strongroom.core.config import CONFIG_NAME, Settings, load_settings
from strongroom.core.context import Context, open_context
from strongroom.core.crypto.kek import generate_kek, load_keks, write_kek_file
from strongroom.core.crypto.keyring import Keyring
from strongroom.core.db.engine import make_engine, transaction
from strongroom.core.errors import ConflictError, ValidationError
from strongroom.core.fsutil import fsync_dir, write_atomic
from strongroom.core.principal import Principal
from strongroom.core.repository.practices import create_practice, list_practices

DB_NAME = "strongroom.db"
KEK_NAME = "kek.key"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# What a new installation runs unless told otherwise (UTC): a nightly backup, the
# integrity check after it, a weekly read-everything verify and restore drill, and
# retention (of snapshots, and of export files past their retention_days) once a day.
DEFAULT_SCHEDULES = {
    "backup": "0 2 * * *",
    "integrity": "30 3 * * *",
    "prune": "0 4 * * *",
    "verify": "0 5 * * 0",
    "restore_drill": "0 6 * * 0",
    "export_retention": "15 4 * * *",
}


def render_config(practice_name: str, database_url: str, schedules: dict[str, str] | None = None) -> str:
    schedule_lines = "".join(f'{kind} = "{cron}"\n' for kind, cron in (schedules or {}).items())
    schedule_block = f"""
[schedules]
# Cron expressions in UTC (minute hour day month weekday) per job kind.
{schedule_lines}""" if schedules else ""
    return f"""# Strongroom configuration, written by `strongroom init`.
# Every key is documented in etc/strongroom.toml of the source tree.
# Relative paths resolve against this file's folder.
data_dir = "."
practice_name = {_toml_string(practice_name)}

[database]
url = {_toml_string(database_url)}

[keys]
# Keep a copy of this key somewhere else (`strongroom keys export-kit` prints a recovery
# kit). Without it the encrypted records cannot be read.
kek_file = "{KEK_NAME}"
{schedule_block}"""


def init_data_dir(target: Path, *, practice_name: str, principal: Principal,
                  database_url: str | None = None, schedules: dict[str, str] | None = None,
                  join_url: str | None = None, peer_name: str = "central",
                  kek_file: Path | None = None) -> Settings:
    """Create `target` (mode 0700) holding a config, a fresh KEK and a migrated database
    with one practice. Built under a temporary name and renamed into place, so a failure
    part-way leaves no half-made data directory.

    With `join_url` the new site joins an existing practice instead (core.sync.join):
    `kek_file` is the practice's key file, and the practice, its accounts and keys are
    copied from that site, which becomes sync peer `peer_name`."""
    if join_url is not None and kek_file is None:
        raise ValidationError("joining a practice needs its key file (--kek-file; "
                              "strongroom keys recover KIT --out FILE makes one from the recovery kit)")
    target = target.absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConflictError(f"{target} already exists and is not empty; refusing to initialise over it")
    if not practice_name.strip():
        raise ValidationError("practice name must not be empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.init-{uuid.uuid4().hex[:8]}")
    staging.mkdir(mode=0o700)
    try:
        if kek_file is not None:
            write_kek_file(staging / KEK_NAME, _read_kek(kek_file).key)
        else:
            write_kek_file(staging / KEK_NAME, generate_kek())
        url = database_url or f"sqlite:///{DB_NAME}"
        write_atomic(staging / CONFIG_NAME, render_config(practice_name, url, schedules).encode(), mode=0o600)
        settings = load_settings(staging / CONFIG_NAME)
        engine = make_engine(settings.database.url)
        try:
            from strongroom.core.db.migrate import upgrade   # alembic: only init migrates (~90 ms to import)
            upgrade(engine)
            keyring = Keyring(load_keks(settings.keys))
            audit.seal_with(engine, keyring)
            with transaction(engine) as conn:
                if list_practices(conn):
                    raise ConflictError("the database already holds a practice; "
                                        "point a new data directory at an empty database")
                keyring.signing_key(conn)   # the seal's key first: every entry is sealed
                if join_url is not None:
                    from strongroom.core.sync.join import join
                    join(conn, keyring, peer_name=peer_name, peer_url=join_url)
                else:
                    create_practice(conn, principal, practice_name)
                # Recorded with the final data directory (default targets live in it).
                sync_backup_configurations(conn, settings.model_copy(update={"data_dir": target}),
                                           actor=principal.actor)
                audit.append(conn, actor=principal.actor, action="CONFIG",
                             details={"event": "init", "engine": engine.dialect.name,
                                      "joined": join_url is not None})
        finally:
            engine.dispose()
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_settings(target / CONFIG_NAME)


def _read_kek(path: Path):
    from strongroom.core.crypto.kek import decode_kek
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValidationError(f"--kek-file: cannot read the key file ({exc.strerror})") from None
    return decode_kek(text, "--kek-file")


def open_data_dir(path: Path) -> Context:
    return open_context(load_settings(path / CONFIG_NAME))
