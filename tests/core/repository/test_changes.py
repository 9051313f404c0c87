"""Row checksums: the same digest whatever the order of columns and however values are typed."""
from __future__ import annotations

import enum
import hashlib
import uuid
from datetime import date, datetime, timezone

import pytest

from strongroom.core.repository.changes import _canonical, canonical_json, row_checksum


class Colour(str, enum.Enum):
    RED = "red"


class Flags(bytes):
    pass


def _reference(row: dict) -> str:
    """The checksum as first written (one update per column), which the PostgreSQL
    trigger and every stored checksum follow."""
    digest = hashlib.sha256()
    for name in sorted(row):
        if name not in ("data_checksum", "sync_version"):
            digest.update(f"{name}={_canonical(row[name])}\n".encode())
    return digest.hexdigest()


def test_a_checksum_is_the_reference_digest_over_every_kind_of_value():
    row = {"id": uuid.uuid4(), "name_enc": b"\x00\xff" * 700, "status": Colour.RED, "count": 3, "flag": True,
           "born": date(1990, 1, 2), "at": datetime(2026, 12, 2, 16, 0, tzinfo=timezone.utc), "none": None,
           "view": memoryview(b"ab"), "sub": Flags(b"cd"), "data_checksum": "x", "sync_version": 9}
    assert row_checksum(row) == _reference(row)
    assert row_checksum(dict(reversed(list(row.items())))) == row_checksum(row)


def test_values_of_a_type_seen_once_encode_the_same_the_second_time():
    for value in (Colour.RED, Flags(b"cd"), memoryview(b"ab"), bytearray(b"ef")):
        assert _canonical(value) == _canonical(value)
    assert _canonical(Colour.RED) == "s:red" and _canonical(Flags(b"cd")) == "b:6364"
    assert _canonical(True) == "i:1" and _canonical(1) == "s:1"


def test_the_local_counters_are_not_part_of_a_checksum():
    row = {"id": uuid.uuid4(), "x": "y", "data_checksum": "a", "sync_version": 1}
    assert row_checksum(row) == row_checksum({**row, "data_checksum": "b", "sync_version": 2})


def test_a_json_document_checksums_the_same_whatever_order_its_keys_come_back_in():
    # jsonb returns keys shortest first, SQLite as the writer wrote them.
    written = {"id": uuid.uuid4(), "settings": {"encryption_level": "high", "tz": "UTC", "hours": {"tue": [], "mon": []}}}
    from_jsonb = {"id": written["id"], "settings": {"tz": "UTC", "hours": {"mon": [], "tue": []}, "encryption_level": "high"}}
    assert row_checksum(from_jsonb) == row_checksum(written)
    assert row_checksum({**written, "settings": {"tz": "UTC"}}) != row_checksum(written)


def test_canonical_json_spells_each_document_one_way():
    document = {"b": 1, "aa": [1.0, 1.5, 1e-07, 1e20, -0.0, True, False, None, 'q"\\\n\x01\x7fé']}
    assert canonical_json(document) == (
        '{"aa":[1,1.5,0.0000001,100000000000000000000,0,true,false,null,"q\\"\\\\\\n\\u0001\x7fé"],"b":1}')
    assert canonical_json({"é": 1, "z": 2, "Z": 3}) == '{"Z":3,"z":2,"é":1}'   # code-point order
    assert canonical_json([]) == "[]" and canonical_json({}) == "{}"


def test_a_document_json_cannot_hold_is_refused_not_guessed():
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
