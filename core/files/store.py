"""Where client file content lives: `[files] target`, or `<data_dir>/files` by default.

Any storage target (core/storage: a local directory, S3) serves, through the same
`put`/`get`/`delete` of whole objects the backups use; content is cut into 4 MiB chunk
objects (core/files/content.py) so no call holds more than one chunk (older files: 1 MiB). The files store
must not be a backup repository: backups prune what their manifests do not name.
"""
from __future__ import annotations

from pathlib import Path

from strongroom.core.config import Settings, backup_target
from strongroom.core.errors import ConfigError
from strongroom.core.storage import Target, open_target


def files_target_url(settings: Settings) -> str:
    """The storage URL of the files store (the default made absolute under data_dir)."""
    return settings.files.target or str(Path(settings.data_dir) / "files")


def open_files_target(settings: Settings) -> Target:
    """The files store; ConfigError if it is one of the backup repositories."""
    url = files_target_url(settings)
    plain = url.removeprefix("file://").rstrip("/")
    for name in ["default", *settings.backup.configurations]:
        if backup_target(settings, name).removeprefix("file://").rstrip("/") == plain:
            raise ConfigError(f"{settings.source or 'configuration'}: files.target: the same place as "
                              f"backup configuration {name!r}; client files need their own store")
    return open_target(url)
