"""Key rotation: the DEK job (re-encrypt client records, resumable) and the backup
repositories a KEK rotation must rewrap along with the database."""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from strongroom.core.backup import configurations
from strongroom.core.backup.rekey import RepositoryKeyHolder
from strongroom.core.context import Context
from strongroom.core.jobs.kinds import parse
from strongroom.core.crypto.dek_rotation import rotate_deks
from strongroom.core.backup.snapshots import target_url
from strongroom.core.storage import open_target


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    client_ids = list(parse("key_rotation", params).client_ids) or None
    result = rotate_deks(ctx, client_ids=client_ids, actor=params.get("actor", "system"),
                         progress=progress)
    return {k: (str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in dataclasses.asdict(result).items()}


def repository_holders(ctx: Context) -> list[RepositoryKeyHolder]:
    """The repository of every backup configuration, for `rotate_kek(holders=...)`."""
    urls = dict.fromkeys(target_url(ctx, name) for name in configurations.names(ctx.settings))
    return [RepositoryKeyHolder(open_target(url)) for url in urls]
