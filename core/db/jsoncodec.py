"""How JSON columns are written and read: orjson, with the standard library behind it.

Sync keeps four small JSON documents per synced row (version vector, dots, field
hashes, pending) and reads and writes them for every row a pass moves; the standard
library's json spent a seventh of a pass on them (measured: 8 calls per row, about
2 µs each under cProfile), orjson a tenth of that. The values are the same; what orjson
refuses (documents nested deeper than 254 levels, integers beyond 64 bits, NaN) falls
back to json, so nothing that was readable or writable before stops being so.
"""
from __future__ import annotations

import json

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: object) -> str:
    try:
        return orjson.dumps(value, option=_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)


def loads(text: str | bytes) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class Encoded(str):
    """JSON text already encoded (as read from a JSON column), for the bulk writers
    (core.sync.writes, core.db.bulkwrite) to write as it is rather than encode as a
    JSON string. Only those writers know it: SQLAlchemy's own JSON binding would store
    it as a string document."""

    __slots__ = ()


def text_or(process):
    """A JSON column's bind processing that writes `Encoded` text as it is (a plain str)."""
    def bind(value):
        if value.__class__ is Encoded:
            return str.__str__(value)
        return process(value)
    return bind
