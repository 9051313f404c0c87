"""CSV: one file per table, a header row of field names, empty cell for a missing value.

A cell that a spreadsheet would run as a formula (starting with = @ + - or a tab or
carriage return, unless it is plainly a number or phone number) is prefixed with a
single quote: an export is opened by people, and PHI is typed in by people.

Rows are written exactly as `csv.writer` (excel dialect, QUOTE_MINIMAL, CRLF) writes
them, but built with str methods: the csv module walks every character in a loop of
its own, which made it the largest cost of exporting 300k sessions with 1.5 KB notes
(7 s of CPU for 450 MB); `in` and `replace` scan at memory speed. The header still
goes through csv.writer, and a property test holds the two equal.

With `bom` each file starts with a UTF-8 byte order mark: Excel reads a CSV without one
in the machine's legacy code page, turning every accented name into mojibake.
"""
from __future__ import annotations

import csv
import io
import re

EXTENSION = "csv"
PER_TABLE = True
TEXT = True
BOM = "\ufeff"
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


def cells(values) -> list[str]:
    """`field(v)` for each of `values`. Text without a risky first character (most of
    it) is quoted here as `field` would, without the two calls and the pattern match per
    value (measured: they were a third of writing 300k sessions' notes, which nearly
    all hold a comma); an integer is printed; anything else goes through `field`."""
    out = []
    append = out.append
    for v in values:
        if v.__class__ is str and v and v[0] not in _RISKY:
            if '"' in v:
                append('"' + v.replace('"', '""') + '"')
            elif "," in v or "\n" in v or "\r" in v:
                append('"' + v + '"')
            else:
                append(v)
        elif v.__class__ is int:
            append(str(v))
        elif v.__class__ is bool:
            append("true" if v else "false")
        else:
            append(field(v))
    return out


# First characters _FORMULA may act on; a cell starting with any other is never prefixed.
_RISKY = "=@\t\r+-"
_RISKY_FIRST = frozenset(_RISKY)
_RISKY_AFTER_BREAK = re.compile("\n[" + re.escape(_RISKY) + "]")    # one scan: "\n" is its literal prefix
_TEXT = frozenset((str, type(None)))
_INTEGER = frozenset((int, type(None)))
_BOOLEAN = frozenset((bool, type(None)))


def column_cells(values) -> list[str]:
    """`cells(values)` for one column of a batch, checked whole where it can be: a
    column of text none of whose values needs quoting or a formula prefix (ids, dates,
    times, statuses, masked values: most columns) is seen to be so by a few scans of
    the column joined with line breaks, at memory speed, and taken as it is; a column
    of integers needs neither. Any other column goes cell by cell."""
    kinds = set(map(type, values))
    if kinds <= _TEXT:
        texts = ["" if v is None else v for v in values]
        joined = "\n".join(texts)
        if not ('"' in joined or "," in joined or "\r" in joined or joined[:1] in _RISKY_FIRST
                or joined.count("\n") != len(texts) - 1 or _RISKY_AFTER_BREAK.search(joined)):
            return texts
    elif kinds <= _INTEGER:
        return ["" if v is None else str(v) for v in values]
    elif kinds <= _BOOLEAN:
        return ["" if v is None else "true" if v else "false" for v in values]
    return cells(values)


class Document:
    def __init__(self, stream: io.TextIOBase, *, bom: bool = False) -> None:
        self._stream = stream
        self._writer = csv.writer(stream, lineterminator="\r\n")
        if bom:
            stream.write(BOM)

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._writer.writerow(fields)

    def write_rows(self, rows: list[dict]) -> None:
        if rows:
            self.write_columns([[row[f] for row in rows] for f in self._fields])

    def write_columns(self, columns: list[list]) -> None:
        """The same rows given a column per field (in `begin_table`'s order)."""
        if not columns or not columns[0]:
            return
        if len(columns) == 1:
            # csv.writer's one special case: a record that is one empty field is written "".
            self._stream.write("".join((text or '""') + "\r\n" for text in column_cells(columns[0])))
            return
        self._stream.write("\r\n".join(map(",".join, zip(*map(column_cells, columns)))) + "\r\n")

    def end_table(self) -> None:
        pass

    def close(self) -> None:
        pass
