"""The snapshot manifest: what a backup contains, sealed with an HMAC.

A snapshot exists exactly when its manifest does: the backup job writes every chunk
first and `snapshots/<id>.json` last, in one atomic put. The manifest lists, per table,
the chunks holding that table's segments in order, with row and tombstone counts and a
SHA-256 over the segment plaintexts, so a restore (or `verify --read-data`) proves it
got back exactly what was written, and the audit chain head (optionally with its signed
checkpoint) that was current when the snapshot was taken.

Threat: whoever can write to the storage target (a compromised NAS, a leaked S3 key)
could edit a manifest to drop a table, point it at other chunks or change counts, so a
restore silently brings back less than was backed up. The manifest therefore carries
`hmac` = HMAC-SHA256 under a key derived from the repository's backup key (HKDF info
"strongroom-backup-manifest") over the canonical JSON of every other field; without the
KEK nobody can produce a manifest that verifies. It does not stop deletion of a whole
manifest (a snapshot going missing is visible to retention and monitoring instead).

The manifest holds no PHI and no key material (format 2: nor do the snapshot's chunks,
whose `data_keys` rows have no wrapped key; see keybag.py): table and column names, counts, sizes,
hashes of ciphertext-bearing segments and content addresses (keyed HMACs) only.
"""
from __future__ import annotations

import hashlib
import hmac as _hmac
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Format 2: the snapshot's `data_keys` rows carry no wrapped key (copytext.REDACTED);
# restore takes the keys from the repository's key bag. Format 1 snapshots (written
# before the bag) carry theirs, and restore only wipes the ones the bag lists as erased.
# Format 3: format 2 with client file content (`files`); a snapshot without files is
# still written as format 2, so an older Strongroom reads it, and one that cannot read
# a snapshot's files says "upgrade" instead of misreading it.
FORMAT = 3
WITHOUT_FILES = 2
_HEX64 = r"^[0-9a-f]{64}$"


class _Model(BaseModel):
    # Frozen and strict about unknown fields: a manifest is evidence, and a field this
    # version does not understand must not be silently dropped on a re-read.
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChunkRef(_Model):
    """One stored chunk: its content address, plaintext size and stored object size."""

    address: str = Field(pattern=_HEX64)
    size: int = Field(ge=0, description="plaintext bytes (before compression)")
    stored_size: int = Field(ge=0, description="bytes of the stored object")


class TableEntry(_Model):
    """One table's part of a snapshot: its segments as chunks, in order."""

    name: str = Field(min_length=1)
    columns: list[str]
    row_count: int = Field(ge=0)
    tombstone_count: int = Field(ge=0)
    sha256: str = Field(pattern=_HEX64, description="over the segment plaintexts in order")
    chunks: list[ChunkRef]
    # How the segments relate to the table: every row ("full"), rows changed since the
    # parent's change watermark ("changes"), or rows appended since the parent's
    # high_water id ("append"). high_water: the largest integer id in the table at the
    # snapshot, for append-only tables; live_rows: the table's row count at the snapshot.
    mode: Literal["full", "changes", "append"] = "full"
    high_water: int | None = None
    live_rows: int | None = Field(default=None, ge=0)


class FileObject(_Model):
    """One object of the files store (core/files/content.py), kept as a chunk: its key
    in the store and the chunk holding its exact bytes (sealed under the client's key)."""

    key: str = Field(pattern=r"^files/[0-9a-f]{2}/[0-9a-f]{32,64}$")
    chunk: ChunkRef


class FileEntry(_Model):
    """One client file with content at the snapshot: its id, plaintext size and its
    objects (chunks first, its manifest last, as the store has them)."""

    file_id: uuid.UUID
    size: int = Field(ge=0)
    objects: list[FileObject] = Field(min_length=1)


class FilesSection(_Model):
    """Client file content in a snapshot. Every snapshot lists every file with content
    (so each restores on its own and garbage collection sees every object it needs);
    an incremental reads and uploads only the objects its parent did not list
    (`added_objects`), and the repository stores an object once whatever lists it."""

    files: list[FileEntry]
    count: int = Field(ge=0)
    objects: int = Field(ge=0)
    plain_bytes: int = Field(ge=0, description="file content bytes (before sealing)")
    stored_bytes: int = Field(ge=0, description="bytes of the store's objects")
    added_objects: int = Field(ge=0)
    added_bytes: int = Field(ge=0)
    missing: int = Field(ge=0, default=0, description="rows whose content was gone when read")

    @model_validator(mode="after")
    def _consistent(self) -> FilesSection:
        if self.count != len(self.files) or self.objects != sum(len(f.objects) for f in self.files):
            raise ValueError("file counts do not match the files")
        if self.plain_bytes != sum(f.size for f in self.files) or \
                self.stored_bytes != sum(o.chunk.size for f in self.files for o in f.objects):
            raise ValueError("file byte totals do not match the files")
        if len({f.file_id for f in self.files}) != len(self.files):
            raise ValueError("a file appears more than once")
        return self

    @classmethod
    def build(cls, files: list[FileEntry], *, added_objects: int, added_bytes: int, missing: int = 0) -> FilesSection:
        return cls(files=files, count=len(files), objects=sum(len(f.objects) for f in files),
                   plain_bytes=sum(f.size for f in files),
                   stored_bytes=sum(o.chunk.size for f in files for o in f.objects),
                   added_objects=added_objects, added_bytes=added_bytes, missing=missing)

    def summary(self) -> dict[str, int]:
        """Counts and bytes, for listings and health (no ids)."""
        return {"files": self.count, "objects": self.objects, "plain_bytes": self.plain_bytes,
                "stored_bytes": self.stored_bytes, "added_objects": self.added_objects,
                "added_bytes": self.added_bytes, "missing": self.missing}


class AuditHead(_Model):
    """The audit chain head when the snapshot was taken (id None: empty chain)."""

    id: int | None
    hash: str = Field(pattern=_HEX64)
    checkpoint: dict[str, Any] | None = None


class Totals(_Model):
    """Sums over the tables; `added_bytes` is what this snapshot newly uploaded."""

    tables: int = Field(ge=0)
    rows: int = Field(ge=0)
    tombstones: int = Field(ge=0)
    chunks: int = Field(ge=0)
    plain_bytes: int = Field(ge=0)
    stored_bytes: int = Field(ge=0)
    added_bytes: int = Field(ge=0, default=0)


def totals_of(tables: Iterable[TableEntry], added_bytes: int = 0) -> Totals:
    tables = list(tables)
    refs = [ref for table in tables for ref in table.chunks]
    return Totals(tables=len(tables), rows=sum(t.row_count for t in tables),
                  tombstones=sum(t.tombstone_count for t in tables), chunks=len(refs),
                  plain_bytes=sum(r.size for r in refs),
                  stored_bytes=sum(r.stored_size for r in refs), added_bytes=added_bytes)


class Manifest(_Model):
    """A snapshot's manifest; build it with `Manifest.build` so the totals add up."""

    format: Literal[1, 2, 3] = WITHOUT_FILES
    repository_id: uuid.UUID
    snapshot_id: uuid.UUID
    kind: Literal["full", "incremental"]
    parent_id: uuid.UUID | None = None
    created_at: AwareDatetime
    schema_revision: str = Field(min_length=1)
    change_watermark: int = Field(ge=0)
    tables: list[TableEntry]
    audit: AuditHead
    totals: Totals
    # Client file content (None: a snapshot from before files were backed up, or of a
    # practice with none; left out of the stored JSON then, so older manifests keep
    # their bytes and HMAC). Not in `totals`, which sum the tables.
    files: FilesSection | None = None
    hmac: str | None = Field(default=None, pattern=_HEX64)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.kind == "incremental" and self.parent_id is None:
            raise ValueError("an incremental snapshot needs a parent_id")
        if self.kind == "full" and self.parent_id is not None:
            raise ValueError("a full snapshot has no parent_id")
        if self.parent_id == self.snapshot_id:
            raise ValueError("a snapshot cannot be its own parent")
        if (self.files is not None) != (self.format >= 3):
            raise ValueError("client files come with format 3, and format 3 with client files")
        names = [t.name for t in self.tables]
        if len(set(names)) != len(names):
            raise ValueError("a table appears more than once")
        expected = totals_of(self.tables, self.totals.added_bytes)
        if self.totals != expected:
            raise ValueError("totals do not match the tables")
        return self

    @classmethod
    def build(cls, *, repository_id: uuid.UUID, snapshot_id: uuid.UUID,
              kind: Literal["full", "incremental"], parent_id: uuid.UUID | None,
              created_at: datetime, schema_revision: str, change_watermark: int,
              tables: list[TableEntry], audit: AuditHead, added_bytes: int = 0,
              format: Literal[1, 2, 3] | None = None, files: FilesSection | None = None) -> Manifest:
        """A manifest with its totals computed from `tables` (unsigned: hmac None).
        `format` 1 only for a copy of a format-1 link (compaction re-parents it); by
        default 3 with files, else 2."""
        if format is None:
            format = FORMAT if files is not None else WITHOUT_FILES
        return cls(format=format, repository_id=repository_id, snapshot_id=snapshot_id, kind=kind,
                   parent_id=parent_id, created_at=created_at, schema_revision=schema_revision,
                   change_watermark=change_watermark, tables=tables, audit=audit,
                   totals=totals_of(tables, added_bytes), files=files)

    @property
    def keys_in_bag(self) -> bool:
        """The data keys are in the repository's key bag, not in the snapshot."""
        return self.format >= 2

    def chunk_refs(self) -> Iterable[ChunkRef]:
        for table in self.tables:
            yield from table.chunks
        if self.files is not None:
            for entry in self.files.files:
                for obj in entry.objects:
                    yield obj.chunk


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: one byte string per JSON value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def _mac(key: bytes, document: dict[str, Any]) -> str:
    body = {k: v for k, v in document.items() if k != "hmac"}
    return _hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def seal(manifest: Manifest, key: bytes) -> tuple[Manifest, bytes]:
    """The signed manifest and the exact bytes to store.

    The HMAC is computed over the JSON form (not the Python objects) and checked by
    `unseal` over the parsed JSON before any model validation, so it never depends on
    how a later pydantic version would re-serialise a datetime.
    """
    document = manifest.model_dump(mode="json", exclude={"hmac"})
    if document.get("files") is None:
        document.pop("files", None)
    document["hmac"] = _mac(key, document)
    return Manifest.model_validate(document), canonical_json(document)


class ManifestError(ValueError):
    """Why stored manifest bytes were refused (the repository names the object)."""


def unseal(data: bytes, key: bytes) -> Manifest:
    """Parse stored bytes, check the format and the HMAC, then validate the fields."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ManifestError("is not valid JSON (corrupted)") from None
    if not isinstance(document, dict):
        raise ManifestError("is not a JSON object (corrupted)")
    version = document.get("format")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT:
        raise ManifestError(f"has format {version}; this Strongroom reads format {FORMAT} "
                            "(upgrade Strongroom to read it)")
    stored = document.get("hmac")
    if not isinstance(stored, str):
        raise ManifestError("has no HMAC (corrupted or not written by Strongroom)")
    if not _hmac.compare_digest(stored.encode(), _mac(key, document).encode()):
        raise ManifestError("failed HMAC verification (corrupted or tampered)")
    try:
        return Manifest.model_validate(document)
    except ValueError as exc:
        # Authentic but invalid: a writer bug. Say which fields, not their values.
        fields = ", ".join(sorted({".".join(map(str, e["loc"])) or "<root>"
                                   for e in getattr(exc, "errors", lambda: [])()}))
        raise ManifestError(f"is authentic but invalid ({fields or exc})") from None
