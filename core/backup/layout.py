"""Where a backup repository keeps its chunks and manifests on a target.

The object keys are the repository's on-storage format: writing, verifying, garbage
collection and the integrity checks all name the same objects, so the names are made
in one place (the whole layout is described in repository.py).
"""
from __future__ import annotations

import uuid

CHUNKS = "chunks/"
SNAPSHOTS = "snapshots/"


def chunk_key(address: str) -> str:
    """The object key of a chunk: sharded by its first two hex digits."""
    return f"{CHUNKS}{address[:2]}/{address}"


def manifest_key(snapshot_id: uuid.UUID) -> str:
    return f"{SNAPSHOTS}{snapshot_id}.json"
