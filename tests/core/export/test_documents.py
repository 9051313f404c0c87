"""Every text format parses back to what was written, whatever the text (property
tests): quotes, separators, newlines, markup, control characters, formula starts."""
from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strongroom.core.export import csvdoc, jsondoc, xmldoc

XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"

FIELDS = ("id", "name", "count")
values = st.one_of(st.none(), st.text(max_size=40), st.integers(-10**12, 10**12), st.booleans())
rows = st.lists(st.fixed_dictionaries({f: values for f in FIELDS}), max_size=8)


def written(document_class, batch: list[dict]) -> str:
    out = io.StringIO(newline="")
    document = document_class(out)
    document.begin_table("t", FIELDS)
    document.write_rows(batch)
    document.end_table()
    document.close()
    return out.getvalue()


def text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.one_of(values, st.text(alphabet=',"\r\n =+-@\tx1', max_size=8)),
                         min_size=1, max_size=4), max_size=6))
def test_csv_rows_are_what_the_csv_module_writes(table):
    """Byte for byte csv.writer's output (excel dialect, CRLF), one-field rows included."""
    for width in {len(row) for row in table}:
        batch = [row for row in table if len(row) == width]
        names = tuple(f"f{i}" for i in range(width))
        expected = io.StringIO(newline="")
        writer = csv.writer(expected, lineterminator="\r\n")
        writer.writerow(names)
        writer.writerows([csvdoc.cell(v) for v in row] for row in batch)
        out = io.StringIO(newline="")
        document = csvdoc.Document(out)
        document.begin_table("t", names)
        document.write_rows([dict(zip(names, row)) for row in batch])
        assert out.getvalue() == expected.getvalue()


@settings(max_examples=150, deadline=None)
@given(rows)
def test_csv_round_trip(batch):
    back = list(csv.DictReader(io.StringIO(written(csvdoc.Document, batch), newline="")))
    assert back == [{f: csvdoc.cell(r[f]) for f in FIELDS} for r in batch]
    for sent, got in zip(batch, back):
        for f in FIELDS:
            plain = "" if sent[f] is None else text(sent[f])
            assert got[f] in (plain, "'" + plain)       # quoted only against formulas


@settings(max_examples=150, deadline=None)
@given(rows)
def test_ndjson_and_json_round_trip(batch):
    assert [json.loads(line) for line in written(jsondoc.NdjsonDocument, batch).splitlines()] == batch
    assert json.loads(written(jsondoc.JsonDocument, batch)) == batch


@settings(max_examples=150, deadline=None)
@given(rows)
def test_xml_round_trip(batch):
    root = ET.fromstring(written(xmldoc.Document, batch).encode())
    back = [{c.tag: None if c.get(XSI_NIL) == "true" else (c.text or "") for c in row} for row in root.findall("row")]
    expected = [{f: None if r[f] is None else xmldoc._NOT_XML.sub("\ufffd", text(r[f]))
                 for f in FIELDS} for r in batch]
    assert back == expected


def test_xml_keeps_carriage_returns_that_a_parser_would_fold():
    batch = [{f: None for f in FIELDS} | {FIELDS[0]: "line one\r\nline two\rthree"}]
    root = ET.fromstring(written(xmldoc.Document, batch).encode())
    assert root.find("row")[0].text == "line one\r\nline two\rthree"


def test_formulas_are_quoted_but_numbers_and_phone_numbers_are_not():
    assert [csvdoc.cell(v) for v in ("=1+2", "@SUM(A1)", "+cmd", "-2+3*x", "\tx")] == [
        "'=1+2", "'@SUM(A1)", "'+cmd", "'-2+3*x", "'\tx"]
    assert [csvdoc.cell(v) for v in ("+1 555 0100", "-12.5", "555-0101", -4)] == ["+1 555 0100", "-12.5", "555-0101", "-4"]


@pytest.fixture(scope="module")
def writer():
    from datetime import datetime, timezone

    from strongroom.core import pdf
    return pdf.Writer(pdf.Header("t", "p", "u", datetime(2026, 1, 1, tzinfo=timezone.utc)))


@given(st.text(alphabet=st.characters(exclude_categories=("Zl", "Zp", "Cc", "Cs"), exclude_characters="["), max_size=300))
def test_pdf_text_keeps_every_character_printed_or_named(writer, value):
    """What no font can draw is printed as its code point, never dropped or turned to "?"."""
    import re

    from strongroom.core import pdf
    cleaned = writer.clean(value)
    restored = re.sub(r"\[U\+([0-9A-F]{4,6})\]", lambda m: chr(int(m.group(1), 16)), cleaned)
    expected = "".join(" " if pdf.unicodedata.category(c) in ("Cf", "Co", "Cn") else c for c in value)
    assert restored == expected

any_text = st.text(alphabet=st.characters(codec=None), max_size=30)   # lone surrogates, U+2028, controls
json_values = st.one_of(st.none(), any_text, st.integers(-2**70, 2**70), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({f: json_values for f in FIELDS}), max_size=6))
def test_ndjson_and_json_are_what_json_dumps_writes(batch):
    """Byte for byte the standard library's compact, non-ASCII output with the line
    breaks escaped, one record a line (what every export wrote before orjson)."""
    by_json = [json.dumps(r, ensure_ascii=False, separators=(",", ":")).translate(jsondoc._BREAKS) for r in batch]
    assert written(jsondoc.NdjsonDocument, batch) == "".join(line + "\n" for line in by_json)
    try:
        expected = "".join(line + "\n" for line in by_json).encode()
    except UnicodeEncodeError:           # a lone surrogate: no UTF-8 file can hold it, then or now
        expected = None
    if expected is not None:             # an export file: a UTF-8 TextIOWrapper (bytes written straight through)
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        document = jsondoc.NdjsonDocument(stream)
        document.begin_table("t", FIELDS)
        document.write_rows(batch[:2])
        document.write_rows(batch[2:])
        stream.flush()
        assert raw.getvalue() == expected
    assert written(jsondoc.JsonDocument, batch) == "[" + "".join(
        ("\n" if i == 0 else ",\n") + line for i, line in enumerate(by_json)) + "\n]\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(values, json_values, st.text(alphabet=',"\r\n =+-@\tx1', max_size=8)), max_size=20))
def test_csv_cells_are_fields(column):
    assert csvdoc.cells(column) == [csvdoc.field(v) for v in column]
    assert csvdoc.column_cells(column) == [csvdoc.field(v) for v in column]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.one_of(st.none(), st.text(alphabet=',"\r\n =+-@\tx1*', max_size=8)), max_size=20),
                 st.lists(st.one_of(st.none(), st.integers(-10**30, 10**30)), max_size=20),
                 st.lists(st.one_of(st.none(), st.booleans()), max_size=20),
                 st.lists(st.one_of(st.none(), st.uuids().map(str), st.datetimes().map(lambda d: d.isoformat())),
                          max_size=20)))
def test_csv_columns_checked_whole_are_their_fields(column):
    assert csvdoc.column_cells(column) == [csvdoc.field(v) for v in column]


def test_csv_with_bom_starts_with_the_mark_and_reads_back_with_utf8_sig():
    out = io.StringIO(newline="")
    document = csvdoc.Document(out, bom=True)
    document.begin_table("t", FIELDS)
    document.write_rows([{"id": "1", "name": "Zoë", "count": 2}])
    data = out.getvalue().encode()
    assert data.startswith(b"\xef\xbb\xbfid,name,count\r\n")
    assert list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))) == [
        {"id": "1", "name": "Zoë", "count": "2"}]


def written_columns(batch: list[dict], *, utf8_file: bool, as_rows: bool = False) -> str | bytes:
    """`batch` given to an NDJSON document in two writes, as columns (as exports give
    it), or `as_rows`."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", newline="") if utf8_file else io.StringIO(newline="")
    document = jsondoc.NdjsonDocument(out)
    document.begin_table("t", FIELDS)
    for part in (batch[:2], batch[2:]):
        if as_rows:
            document.write_rows(part)
        else:
            document.write_columns([[row[f] for row in part] for f in FIELDS] if part else [[] for _ in FIELDS])
    if utf8_file:
        out.flush()
        return raw.getvalue()
    return out.getvalue()


@settings(max_examples=400, deadline=None)
@given(st.lists(st.fixed_dictionaries({f: st.one_of(json_values, st.floats(allow_nan=False)) for f in FIELDS}),
                max_size=6))
def test_ndjson_from_columns_is_what_the_rows_write(batch):
    """Columns written in C are the bytes rows write, and a batch holding a value C does
    not write (a lone surrogate, an integer beyond 64 bits, a float) is written as rows."""
    assert jsondoc._ndjson_lines is not None, "core/repository/_text.c is not built (make install)"
    batch = [{f: row[f] for f in FIELDS} for row in batch]      # keys in the fields' order, as exports make rows
    assert written_columns(batch, utf8_file=False) == written_columns(batch, utf8_file=False, as_rows=True)
    try:
        written(jsondoc.NdjsonDocument, batch).encode()
    except UnicodeEncodeError:       # a lone surrogate: no UTF-8 file holds it, either way
        return
    assert written_columns(batch, utf8_file=True) == written_columns(batch, utf8_file=True, as_rows=True)


def test_ndjson_columns_without_the_c_writer_are_written_as_rows(monkeypatch):
    batch = [{"id": "a\u2028b", "name": None, "count": 2**70}, {"id": "x", "name": "é", "count": True}]
    with_c = written_columns(batch, utf8_file=False)
    monkeypatch.setattr(jsondoc, "_ndjson_lines", None)
    assert written_columns(batch, utf8_file=False) == with_c == written(jsondoc.NdjsonDocument, batch)
