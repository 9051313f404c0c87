"""Key rotation job: re-encrypt client records under new data keys (resumable)."""
from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from strongroom.core.context import Context
from strongroom.core.crypto.rotation import rotate_deks


def run(ctx: Context, params: dict, progress) -> dict[str, Any]:
    client_ids = [uuid.UUID(str(c)) for c in params.get("client_ids", [])] or None
    result = rotate_deks(ctx, client_ids=client_ids, actor=params.get("actor", "system"),
                         progress=progress)
    return {k: (str(v) if isinstance(v, uuid.UUID) else v)
            for k, v in dataclasses.asdict(result).items()}
