"""CSV: one file per table, a header row of field names, empty cell for a missing value.

A cell that a spreadsheet would run as a formula (starting with = @ + - or a tab or
carriage return, unless it is plainly a number or phone number) is prefixed with a
single quote: an export is opened by people, and PHI is typed in by people.

Rows are written exactly as `csv.writer` (excel dialect, QUOTE_MINIMAL, CRLF) writes
them, but built with str methods: the csv module walks every character in a loop of
its own, which made it the largest cost of exporting 300k sessions with 1.5 KB notes
(7 s of CPU for 450 MB); `in` and `replace` scan at memory speed. The header still
goes through csv.writer, and a property test holds the two equal.
"""
from __future__ import annotations

import csv
import io
import re

EXTENSION = "csv"
PER_TABLE = True
TEXT = True
_FORMULA = re.compile(r"^[=@\t\r]|^[+-](?![\d\s().-]*$)")


def cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"'{text}" if _FORMULA.match(text) else text


def field(value: object) -> str:
    """`cell(value)` as csv.writer (QUOTE_MINIMAL) writes it: quoted, with quotes
    doubled, when it holds a comma, a quote or a line break."""
    text = cell(value)
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text


class Document:
    def __init__(self, stream: io.TextIOBase) -> None:
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\r\n")

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._writer.writerow(fields)

    def write_rows(self, rows: list[dict]) -> None:
        fields = self._fields
        if len(fields) == 1:
            # csv.writer's one special case: a record that is one empty field is written "".
            (name,) = fields
            self._stream.write("".join((field(row[name]) or '""') + "\r\n" for row in rows))
            return
        self._stream.write("".join(",".join([field(row[f]) for f in fields]) + "\r\n" for row in rows))

    def end_table(self) -> None:
        pass

    def close(self) -> None:
        pass
