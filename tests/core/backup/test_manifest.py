"""The manifest model and its seal, without storage: validation, HMAC, canonical bytes."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError as PydanticValidationError

from strongroom.core.backup.manifest import (
    AuditHead,
    ChunkRef,
    Manifest,
    ManifestError,
    TableEntry,
    Totals,
    canonical_json,
    seal,
    unseal,
)
from strongroom.core.ids import new_id

KEY = os.urandom(32)


def ref(n: int) -> ChunkRef:
    return ChunkRef(address=hashlib.sha256(bytes([n])).hexdigest(), size=100 * n, stored_size=40 * n)


def table(name: str, *refs: ChunkRef, rows: int = 3, tombstones: int = 1) -> TableEntry:
    return TableEntry(name=name, columns=["id", "practice_id", "name_enc"], row_count=rows,
                      tombstone_count=tombstones, sha256="ab" * 32, chunks=list(refs))


def manifest(**overrides: object) -> Manifest:
    fields: dict = dict(repository_id=uuid.uuid4(), snapshot_id=new_id(), kind="full",
                        parent_id=None,
                        created_at=datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
                        schema_revision="0007_backups", change_watermark=42,
                        tables=[table("clients", ref(1), ref(2)), table("therapy_sessions", ref(3))],
                        audit=AuditHead(id=17, hash="cd" * 32,
                                        checkpoint={"head_id": 17, "signature": "00"}),
                        added_bytes=80)
    fields.update(overrides)
    return Manifest.build(**fields)


def test_build_computes_totals() -> None:
    m = manifest()
    assert m.totals == Totals(tables=2, rows=6, tombstones=2, chunks=3, plain_bytes=600,
                              stored_bytes=240, added_bytes=80)
    assert [r.address for r in m.chunk_refs()] == [ref(1).address, ref(2).address, ref(3).address]


def test_totals_that_do_not_add_up_are_refused() -> None:
    document = manifest().model_dump(mode="json")
    document["totals"]["rows"] += 1
    with pytest.raises(PydanticValidationError, match="totals"):
        Manifest.model_validate(document)


@pytest.mark.parametrize("kind,parent,message", [
    ("incremental", None, "needs a parent_id"),
    ("full", uuid.uuid4(), "has no parent_id"),
])
def test_kind_and_parent_must_agree(kind: str, parent: uuid.UUID | None, message: str) -> None:
    with pytest.raises(PydanticValidationError, match=message):
        manifest(kind=kind, parent_id=parent)


def test_incremental_with_parent_is_accepted() -> None:
    parent = new_id()
    assert manifest(kind="incremental", parent_id=parent).parent_id == parent


def test_naive_timestamps_duplicate_tables_and_bad_addresses_are_refused() -> None:
    with pytest.raises(PydanticValidationError):
        manifest(created_at=datetime(2030, 1, 1))
    with pytest.raises(PydanticValidationError, match="more than once"):
        manifest(tables=[table("clients"), table("clients")])
    with pytest.raises(PydanticValidationError):
        ChunkRef(address="AB" * 32, size=1, stored_size=1)
    with pytest.raises(PydanticValidationError):
        ChunkRef(address="ab" * 32, size=-1, stored_size=1)


def test_unknown_fields_are_refused() -> None:
    document = manifest().model_dump(mode="json")
    document["extra"] = 1
    with pytest.raises(PydanticValidationError):
        Manifest.model_validate(document)


def test_seal_then_unseal_round_trips() -> None:
    sealed, data = seal(manifest(), KEY)
    assert sealed.hmac is not None and len(sealed.hmac) == 64
    assert unseal(data, KEY) == sealed
    assert data == canonical_json(json.loads(data))  # stored canonical


def test_the_hmac_depends_on_the_key() -> None:
    _, data = seal(manifest(), KEY)
    with pytest.raises(ManifestError, match="HMAC"):
        unseal(data, os.urandom(32))


@pytest.mark.parametrize("path,value", [
    (("tables", 0, "row_count"), 2),
    (("tables", 1, "chunks"), []),
    (("audit", "hash"), "ef" * 32),
    (("created_at",), "2031-01-02T03:04:05.678901Z"),
    (("change_watermark",), 41),
])
def test_any_edited_field_fails_the_hmac(path: tuple, value: object) -> None:
    _, data = seal(manifest(), KEY)
    document = json.loads(data)
    node = document
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(ManifestError, match="failed HMAC verification"):
        unseal(canonical_json(document), KEY)


def test_removed_hmac_garbage_and_newer_formats_are_named() -> None:
    _, data = seal(manifest(), KEY)
    document = json.loads(data)
    with pytest.raises(ManifestError, match="not valid JSON"):
        unseal(data[:-3], KEY)
    with pytest.raises(ManifestError, match="not a JSON object"):
        unseal(b"[]", KEY)
    del document["hmac"]
    with pytest.raises(ManifestError, match="no HMAC"):
        unseal(canonical_json(document), KEY)
    document["format"] = 4      # newer than this release reads
    with pytest.raises(ManifestError, match="format 4"):
        unseal(canonical_json(document), KEY)


def test_key_order_and_whitespace_do_not_matter_to_the_hmac() -> None:
    """The HMAC is over the canonical form of the parsed JSON, not the stored bytes."""
    sealed, data = seal(manifest(), KEY)
    pretty = json.dumps(json.loads(data), indent=2).encode()
    assert unseal(pretty, KEY) == sealed


def test_timestamps_keep_microseconds_and_zone() -> None:
    when = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    sealed, data = seal(manifest(created_at=when), KEY)
    assert unseal(data, KEY).created_at == when
