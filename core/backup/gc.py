"""Garbage collection: which chunks no snapshot needs any more, and when that is safe to say.

Snapshots share chunks (deduplication), so deleting a snapshot deletes only its
manifest; its chunks go here, once nothing references them. A wrongly deleted chunk
silently breaks a snapshot, so the rules for when the answer can be trusted (an
exclusive lock, every manifest accounted for, the lease re-checked) are in
`unreferenced_chunks`.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from strongroom.core.backup.layout import CHUNKS, chunk_key, manifest_key
from strongroom.core.backup.locks import Lock
from strongroom.core.backup.manifest import Manifest
from strongroom.core.errors import ConflictError

if TYPE_CHECKING:
    from strongroom.core.backup.repository import Repository


def referenced_chunks(manifests: Iterable[Manifest]) -> set[str]:
    """Object keys of every chunk the manifests reference."""
    return {chunk_key(ref.address) for m in manifests for ref in m.chunk_refs()}


def unreferenced_chunks(repository: Repository, live_manifests: Iterable[Manifest], lock: Lock) -> Iterator[str]:
    """Chunk keys no live manifest references: what garbage collection may delete.

    Safety rules, because a wrongly deleted chunk silently breaks a snapshot:

    - `lock` must be this repository's live *exclusive* lock. Backups hold a shared
      lock from before their first chunk until after their manifest is written, so
      no backup is running: no freshly written, not-yet-referenced chunk exists,
      and none can be deduplicated against (a backup that finds chunk X present
      and skips it would break if X were deleted a moment later — which is why a
      lease listing in-progress chunks, or a grace period by object age, is not
      enough on its own).
    - every manifest in the repository must be among `live_manifests` (else
      ConflictError): a caller that forgot one would otherwise delete its chunks.
      Delete expired manifests first, then collect.
    - the lease is re-checked before each key is yielded (and renewed when half
      spent); if it has lapsed, ConflictError stops the collection.
    """
    if lock.repository is not repository or lock.kind != "exclusive":
        raise ConflictError("garbage collection needs this repository's exclusive lock")
    lock.check()
    live = list(live_manifests)
    given = {m.snapshot_id for m in live}
    missing = [sid for sid in repository.list_snapshots() if sid not in given]
    if missing:
        raise ConflictError(f"{len(missing)} manifest(s) in the repository were not passed "
                            f"as live (first: {manifest_key(missing[0])}); refusing to "
                            "collect garbage")
    referenced = referenced_chunks(live)
    for key in repository.target.list(CHUNKS):
        if key not in referenced:
            lock.check()
            yield key
