"""JSON and NDJSON: one file per table.

NDJSON (one object a line) is the format for large tables: any tool can read it a line
at a time. JSON writes the same objects as one array, still streamed here, but a reader
has to hold it whole, so it suits small exports.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence

import orjson

try:    # optional, as records.py's use of it (built by `make install`)
    from strongroom.core.repository._text import ndjson_lines as _ndjson_lines
except ImportError:
    _ndjson_lines = None

# Line breaks that JSON leaves raw but many line readers (Python's splitlines among
# them) split on: escaped, so one record is always one line.
_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})
_BREAKS_UTF8 = (b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).translate(_BREAKS)


def lines(rows: list[dict]) -> str:
    """Each row as `_line` writes it, each followed by a newline, in one string."""
    out = _lines(rows)
    return out if isinstance(out, str) else out.decode()


def _lines(rows: list[dict]) -> bytes | str:
    """`lines(rows)`, as the UTF-8 orjson wrote when it could write them (bytes), else
    as json's text (str: a lone surrogate has no UTF-8; writing it fails where it did).

    orjson writes what json.dumps(ensure_ascii=False, compact separators) writes for
    these values (text, integers, booleans, None; the same escapes) at a tenth of the
    cost, for the whole batch in one go; a batch that is not all ASCII is searched for
    the breaks to escape (and translated whole in the rare case it holds one), and
    what orjson refuses (a lone surrogate, an integer beyond 64 bits) goes through json
    as before. A property test holds the two equal."""
    try:
        body = b"\n".join(map(orjson.dumps, rows))
    except (TypeError, orjson.JSONEncodeError):
        return "".join(_line(row) + "\n" for row in rows)
    if not body.isascii() and any(mark in body for mark in _BREAKS_UTF8):
        body = body.decode().translate(_BREAKS).encode()
    return body + b"\n" if rows else b""


def _write_utf8(stream: io.TextIOBase, data: bytes) -> None:
    """`data` (UTF-8) onto a text stream: straight to its buffer when it is a UTF-8
    TextIOWrapper (as export files are: core.export.archive, newline=''), saving a
    decode and an encode of every byte; as text otherwise."""
    if isinstance(stream, io.TextIOWrapper) and stream.encoding.lower().replace("-", "") == "utf8":
        stream.flush()
        stream.buffer.write(data)
    else:
        stream.write(data.decode())


def columns_lines(names: Sequence[str], columns: list, *, sort_keys: bool = False) -> bytes | None:
    """Each row of `columns` (one sequence of values per name) as one line of JSON, the
    bytes `lines` writes for the rows as dicts (keys in `names`' order, or sorted with
    `sort_keys`), written in C (ndjson_lines); None where C is not built or a value is
    not one it writes (see NdjsonDocument.write_columns), for the caller's own way."""
    if _ndjson_lines is None or not names:
        return None
    order = sorted(range(len(names)), key=names.__getitem__) if sort_keys else range(len(names))
    return _ndjson_lines([_line(names[i]).encode() + b":" for i in order], [columns[i] for i in order])


class NdjsonDocument:
    EXTENSION, PER_TABLE, TEXT = "ndjson", True, True

    def __init__(self, stream: io.TextIOBase) -> None:
        self._out = stream

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields

    def write_columns(self, columns: list) -> None:
        """A batch as one sequence of values per field (core.jobs.export._write_batch):
        written in C from the columns (core/repository/_text.c, ndjson_lines), the same
        bytes `write_rows` writes, where every value is None, a boolean, a 64-bit
        integer or text UTF-8 holds; otherwise made rows and given to `write_rows`."""
        out = columns_lines(self._fields, columns)
        if out is None:
            self.write_rows([dict(zip(self._fields, values)) for values in zip(*columns)])
        elif out:
            _write_utf8(self._out, out)

    def write_rows(self, rows: list[dict]) -> None:
        out = _lines(rows)
        if isinstance(out, str):
            self._out.write(out)
        else:
            _write_utf8(self._out, out)

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
        if not rows:
            return
        self._out.write(("\n" if self._first else ",\n") + lines(rows)[:-1].replace("\n", ",\n"))
        self._first = False

    def end_table(self) -> None:
        self._out.write("\n]\n")

    def close(self) -> None:
        pass
