"""CSV: one file per table, a header row of field names, empty cell for a missing value.

A cell that a spreadsheet would run as a formula (starting with = @ + - or a tab or
carriage return, unless it is plainly a number or phone number) is prefixed with a
single quote: an export is opened by people, and PHI is typed in by people.
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


class Document:
    def __init__(self, stream: io.TextIOBase) -> None:
        self._writer = csv.writer(stream, lineterminator="\r\n")

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._writer.writerow(fields)

    def write_rows(self, rows: list[dict]) -> None:
        self._writer.writerows([cell(row[f]) for f in self._fields] for row in rows)

    def end_table(self) -> None:
        pass

    def close(self) -> None:
        pass
