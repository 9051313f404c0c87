"""JSON and NDJSON: one file per table.

NDJSON (one object a line) is the format for large tables: any tool can read it a line
at a time. JSON writes the same objects as one array, still streamed here, but a reader
has to hold it whole, so it suits small exports.
"""
from __future__ import annotations

import io
import json

PER_TABLE = True


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


class NdjsonDocument:
    EXTENSION = "ndjson"

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
    EXTENSION = "json"

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
