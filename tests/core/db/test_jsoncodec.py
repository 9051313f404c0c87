"""JSON columns: orjson's speed, and everything the standard library accepted still accepted."""
from __future__ import annotations

import json
import uuid

from strongroom.core.db import jsoncodec


def test_documents_round_trip_as_the_standard_library_reads_them():
    doc = {"vv": {str(uuid.uuid4()): 2**62}, "dots": {"*": ["site", 7]}, "n": None, "f": 1.5, "s": "Zéllér 東京"}
    assert json.loads(jsoncodec.dumps(doc)) == doc
    assert jsoncodec.loads(json.dumps(doc)) == doc


def test_what_orjson_refuses_falls_back_to_the_standard_library():
    deep = json.dumps(nested := _nested(600))            # orjson stops at 254 levels
    assert jsoncodec.loads(deep) == nested
    assert jsoncodec.loads(jsoncodec.dumps(nested)) == nested
    assert jsoncodec.loads(jsoncodec.dumps({"big": 2**70})) == {"big": 2**70}
    assert jsoncodec.loads("[NaN]")[0] != jsoncodec.loads("[NaN]")[0]   # json reads NaN; orjson does not


def test_keys_that_are_not_strings_are_written_as_the_standard_library_writes_them():
    assert json.loads(jsoncodec.dumps({1: "a", 2: "b"})) == json.loads(json.dumps({1: "a", 2: "b"}))


def _nested(depth: int) -> list:
    doc: list = []
    for _ in range(depth):
        doc = [doc]
    return doc
