"""Row checksums and sync's field hashes computed in C (core/repository/_canon.c) are the
ones Python computes: a checksum stored by one build verifies under the other, and two
sites, one with the extension and one without, see the same field hashes."""
from __future__ import annotations

import binascii
import enum
import hashlib
import os
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType

import pytest
from hypothesis import given, settings, strategies as st

from strongroom.core.repository import changes
from strongroom.core.sync import tables

_canon = changes._canon


def test_the_c_hasher_is_built_in_ci():
    """CI builds core/repository/_canon.c (`make install`); elsewhere its absence is
    allowed (the same hashes come from Python)."""
    if os.environ.get("CI"):
        assert _canon is not None, "core/repository/_canon.c was not built"


pytestmark = pytest.mark.skipif(_canon is None and not os.environ.get("CI"),
                                reason="core/repository/_canon.c was not built here")


class Status(str, enum.Enum):
    ACTIVE = "active"
    ON_HOLD = "on hold"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 20


class Text(str):
    """A str subclass: not the exact type, so spelled through Python."""


values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2 ** 63 - 5, max_value=2 ** 70),
    st.binary(max_size=300), st.text(max_size=40), st.text(max_size=5).map(Text), st.uuids(),
    st.datetimes(timezones=st.just(timezone.utc)),
    st.datetimes(timezones=st.just(timezone(timedelta(hours=-3, minutes=-30)))),
    st.datetimes(), st.dates(), st.sampled_from(list(Status)), st.sampled_from(list(Level)),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.booleans()), max_size=4),
    st.lists(st.integers(), max_size=4), st.decimals(allow_nan=False, allow_infinity=False, places=2),
)
rows = st.dictionaries(st.text(min_size=1, max_size=12), values, min_size=1, max_size=12)


@settings(max_examples=400)
@given(rows)
def test_a_checksum_in_c_is_the_checksum_in_python(row):
    assert changes.row_checksum(row) == changes._row_checksum(row)


@given(rows)
def test_any_mapping_is_read_as_a_dict_is(row):
    assert _canon.checksum(MappingProxyType(row), changes._checksummed(tuple(row)), changes._canonical) == \
        changes._row_checksum(row)


def _reference_field_hash(row, columns) -> str:
    """The definition: BLAKE2b (6-byte digest) of the columns' canonical texts joined
    by NUL bytes, in base64."""
    raw = b"\0".join(changes._canonical(row[c]).encode() for c in columns)
    return binascii.b2a_base64(hashlib.blake2b(raw, digest_size=6).digest(), newline=False).decode()


@settings(max_examples=300)
@given(rows, st.data())
def test_field_hashes_in_c_are_the_definition(row, data):
    names = sorted(row)
    plan = tuple((f"f{i}", tuple(data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))))
                 for i in range(data.draw(st.integers(min_value=0, max_value=6))))
    got = _canon.field_hashes(row, plan, changes._canonical)
    assert list(got) == [name for name, _ in plan]
    assert got == {name: _reference_field_hash(row, columns) for name, columns in plan}


def _synced_row(spec, draw) -> dict:
    """A row of a synced table with values of each column's kind."""
    row = {}
    for column in spec.table.columns:
        name = column.name
        if name.endswith("_enc") or name.endswith("_bidx") or name == "wrapped_key":
            row[name] = draw(st.one_of(st.none(), st.binary(min_size=1, max_size=2000)))
        elif name.endswith("_id") or name == "id":
            row[name] = draw(st.one_of(st.none(), st.uuids()))
        elif name.endswith("_at"):
            row[name] = draw(st.one_of(st.none(), st.datetimes(timezones=st.just(timezone.utc))))
        else:
            row[name] = draw(values)
    return row


@pytest.mark.parametrize("spec", tables.synced(), ids=lambda spec: spec.name)
@given(data=st.data())
def test_a_synced_tables_field_hashes_are_the_ones_python_computes(spec, data):
    """The table's own fields, the blind indexes paired with their encrypted columns, and
    Python's memo of repeated values: the same hashes either way."""
    row = _synced_row(spec, data.draw)
    assert tables.field_hashes(spec, row) == tables._field_hashes(spec, row)
    assert tables._field_hashes(spec, row) == tables.field_hashes(spec, row)    # memo warm


def test_the_edges_of_each_spelling():
    edge = {
        "none": None, "true": True, "false": False, "zero": 0, "min": -2 ** 63, "max": 2 ** 63 - 1,
        "big": 2 ** 64, "empty": b"", "nul": "a\0b", "wide": "\U0001f600é", "uuid": uuid.UUID(int=0),
        "uuid_max": uuid.UUID(int=2 ** 128 - 1), "year_1": datetime(1, 1, 1, tzinfo=timezone.utc),
        "year_9999": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        "date_1": date(1, 1, 1), "decimal": Decimal("1.10"), "float": 0.00001, "enum": Status.ON_HOLD,
        "int_enum": Level.HIGH, "json": {"b": [1, "x"], "a": None},
    }
    assert changes.row_checksum(edge) == changes._row_checksum(edge)
    for name in edge:
        assert _canon.field_hashes(edge, (("f", (name,)),), changes._canonical) == \
            {"f": _reference_field_hash(edge, (name,))}


def test_a_value_python_cannot_spell_fails_as_python_fails():
    lone = {"name": "\ud800"}
    with pytest.raises(UnicodeEncodeError):
        changes._row_checksum(lone)
    with pytest.raises(UnicodeEncodeError):
        changes.row_checksum(lone)
    with pytest.raises(KeyError):
        _canon.checksum({}, ("missing",), changes._canonical)
    with pytest.raises(TypeError):
        _canon.checksum({"a": object()}, ("a",), lambda value: 1)


@pytest.mark.parametrize("size", [0, 1, 127, 128, 129, 255, 256, 257, 3000])
def test_blake2b_is_blake2b(size):
    data = os.urandom(size)
    for digest_size in (1, 6, 32, 64):
        assert _canon.blake2b(data, digest_size) == hashlib.blake2b(data, digest_size=digest_size).digest()
