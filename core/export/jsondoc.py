"""JSON and NDJSON: one file per table.

NDJSON (one object a line) is the format for large tables: any tool can read it a line
at a time. JSON writes the same objects as one array, still streamed here, but a reader
has to hold it whole, so it suits small exports.
"""
from __future__ import annotations

import io
import json

# Line breaks that JSON leaves raw but many line readers (Python's splitlines among
# them) split on: escaped, so one record is always one line.
_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).translate(_BREAKS)


class NdjsonDocument:
    EXTENSION, PER_TABLE, TEXT = "ndjson", True, True

    def __init__(self, stream: io.TextIOBase) -> None:
        self._out = stream

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        pass

    def write_rows(self, rows: list[dict]) -> None:
        self._out.write("".join(_line(row) + "\n" for row in rows))

    def end_table(self) -> None:
        pass

    def close(self) -> None:
        pass


class JsonDocument:
    EXTENSION, PER_TABLE, TEXT = "json", True, True

    def __init__(self, stream: io.TextIOBase) -> None:
        self._out = stream
        self._first = True

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._out.write("[")

    def write_rows(self, rows: list[dict]) -> None:
        for row in rows:
            self._out.write(("\n" if self._first else ",\n") + _line(row))
            self._first = False

    def end_table(self) -> None:
        self._out.write("\n]\n")

    def close(self) -> None:
        pass
