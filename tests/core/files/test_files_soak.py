"""Memory stays flat in a file's size: a ~200 MB generated file added and read back
through core.files, peak RSS growth well under the file's size (soak: `make soak`)."""
from __future__ import annotations

import hashlib
import os
import resource

import pytest

from strongroom.core.db.engine import transaction
from strongroom.core.files.repository import add_file, open_file
from strongroom.core.files.store import open_files_target
from strongroom.core.principal import Principal
from tests.core.conftest import seed_clients

pytestmark = pytest.mark.soak
SIZE = 200 * 1024 * 1024
PIECE = 4 * 1024 * 1024


BLOCK = os.urandom(PIECE // 2) + bytes(PIECE // 2)     # half random, half compressible


def _generated():
    block = BLOCK
    for n in range(SIZE // PIECE):
        yield n.to_bytes(8, "big") + block[8:]


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_200_mb_round_trip_keeps_memory_flat(ctx):
    client = seed_clients(ctx, n=1)[0]
    ctx.settings = ctx.settings.model_copy(update={"files": ctx.settings.files.model_copy(
        update={"max_bytes": SIZE})})
    target = open_files_target(ctx.settings)
    everyone = Principal("user:soak", frozenset({"*"}))
    expected = hashlib.sha256()
    for piece in _generated():
        expected.update(piece)
    before = _peak_mib()
    with transaction(ctx.engine) as conn:
        added = add_file(conn, ctx.keyring, everyone, target, ctx.settings.files, client, name="scan.pdf",
                         content_type="application/pdf", size=SIZE, content=_generated())
    got = hashlib.sha256()
    with transaction(ctx.engine) as conn:
        download = open_file(conn, ctx.keyring, everyone, target, added["id"])
    for chunk in download.chunks:
        got.update(chunk)
    assert got.hexdigest() == expected.hexdigest()
    assert _peak_mib() - before < 64, f"peak RSS grew by {_peak_mib() - before:.0f} MiB for a 200 MiB file"
