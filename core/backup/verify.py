"""Repository verification: does every chunk a snapshot needs exist, and does it read back?

Two depths, because they cost very differently: `verify_fast` only asks the target for
each chunk's size (cheap on any storage, run after every backup), `verify_read_data`
downloads, authenticates and decrypts every chunk and recomputes each table's SHA-256
(what a scheduled verify and compaction's read-back run). Either returns the problems it
found, each naming the object at fault and never its content, rather than stopping at
the first one, so an operator sees the whole extent of a damage at once.
"""
from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from strongroom.core.backup.layout import chunk_key, manifest_key
from strongroom.core.backup.manifest import ChunkRef, Manifest
from strongroom.core.errors import IntegrityError, NotFoundError

if TYPE_CHECKING:
    from strongroom.core.backup.repository import Repository

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Problem:
    """One thing verification found wrong: the object at fault and what is wrong."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


def bytes_checked(manifest: Manifest, *, read_data: bool) -> int:
    """The total a check of `manifest` counts its progress against: every chunk
    reference's plaintext bytes (a chunk shared by two tables counts for each) for the
    fast check; the tables' plaintext and the client files' stored bytes when reading
    back. A job checking several snapshots adds these up for one total."""
    if not read_data:
        return sum(ref.size for ref in manifest.chunk_refs())
    return manifest.totals.plain_bytes + (manifest.files.stored_bytes if manifest.files is not None else 0)


def verify_fast(repository: Repository, manifest: Manifest, progress: Progress | None = None) -> list[Problem]:
    """Every chunk the manifest references exists with the recorded stored size.

    Progress counts the plaintext bytes the checked chunks hold (a chunk shared by two
    tables counts for each), as the backup that ends with this check and
    verify_read_data count theirs: one unit per run, so a run's bar and count never
    switch from bytes to chunks half-way."""
    refs = _unique_refs(manifest)
    uses = Counter(ref.address for ref in manifest.chunk_refs())
    total = bytes_checked(manifest, read_data=False)
    problems: list[Problem] = []
    done = 0
    for ref in refs.values():
        key = chunk_key(ref.address)
        size = repository.target.size(key)
        if size is None:
            problems.append(Problem(key, "missing"))
        elif size != ref.stored_size:
            problems.append(Problem(key, f"is {size} bytes; the manifest records "
                                         f"{ref.stored_size}"))
        done += ref.size * uses[ref.address]
        if progress:
            progress(done, total, "checking chunks")
    return problems


def verify_read_data(repository: Repository, manifest: Manifest,
                     progress: Progress | None = None, *, workers: int = 1) -> list[Problem]:
    """Load every chunk (authenticate, decrypt, re-check its address) and recompute
    each table's SHA-256 over its chunk plaintexts in order.

    With `workers` > 1 chunks are loaded in a thread pool (decryption and zstd release
    the GIL), at most 2 x workers in flight, so memory stays bounded.
    """
    problems: list[Problem] = []
    total = manifest.totals.plain_bytes
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for table in manifest.tables:
            digest = hashlib.sha256()
            complete = True
            for ref, outcome in _ordered(pool, partial(_try_load, repository), table.chunks, 2 * max(1, workers)):
                if isinstance(outcome, Problem):
                    if outcome not in problems:  # a chunk shared by two tables
                        problems.append(outcome)
                    complete = False
                else:
                    digest.update(outcome)
                done += ref.size
                if progress:
                    progress(done, total, f"reading {table.name}")
            if complete and digest.hexdigest() != table.sha256:
                problems.append(Problem(manifest_key(manifest.snapshot_id),
                                        f"table {table.name}: SHA-256 over its chunks "
                                        "does not match the manifest"))
        if manifest.files is not None:
            problems.extend(_verify_files(repository, manifest, pool, max(1, workers), done, progress))
    return problems


def _verify_files(repository: Repository, manifest: Manifest, pool: ThreadPoolExecutor, workers: int, done: int,
                  progress: Progress | None) -> list[Problem]:
    """Load every file object the snapshot lists (each authenticated and re-addressed
    by `load_chunk`); a problem names the file it belongs to, never its content."""
    assert manifest.files is not None
    problems: list[Problem] = []
    total = manifest.totals.plain_bytes + manifest.files.stored_bytes
    for entry in manifest.files.files:
        refs = [obj.chunk for obj in entry.objects]
        for ref, outcome in _ordered(pool, partial(_try_load, repository), refs, 2 * workers):
            if isinstance(outcome, Problem):
                problems.append(Problem(outcome.key, f"file {entry.file_id}: {outcome.message}"))
            done += ref.size
            if progress:
                progress(done, total, "reading client files")
    return problems


def _try_load(repository: Repository, ref: ChunkRef) -> bytes | Problem:
    key = chunk_key(ref.address)
    try:
        return repository.load_chunk(ref)
    except NotFoundError:
        return Problem(key, "missing")
    except IntegrityError as exc:
        return Problem(key, str(exc))


def _unique_refs(manifest: Manifest) -> dict[str, ChunkRef]:
    refs: dict[str, ChunkRef] = {}
    for ref in manifest.chunk_refs():
        refs.setdefault(ref.address, ref)
    return refs


def _ordered(pool: ThreadPoolExecutor, fn: Callable[[ChunkRef], Any], refs: list[ChunkRef],
             window: int) -> Iterator[tuple[ChunkRef, Any]]:
    """Apply `fn` in `pool`, results in input order, at most `window` in flight."""
    pending: deque[tuple[ChunkRef, Future[Any]]] = deque()
    for ref in refs:
        pending.append((ref, pool.submit(fn, ref)))
        if len(pending) >= window:
            head, future = pending.popleft()
            yield head, future.result()
    while pending:
        head, future = pending.popleft()
        yield head, future.result()
