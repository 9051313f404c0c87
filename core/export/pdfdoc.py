"""PDF: a printable report, one file for every table exported (core.pdf, fpdf2).

Each table is a table of its chosen fields, A4 landscape, cells wrapped between words,
its heading row repeated on every page; identifiers and timestamps get the width they
need so they stay whole. When the fields are too many for columns to stay readable (a
table's fixed-width identifiers and timestamps would take most of the line), each
record is printed as a block of `field: value` pairs flowing over the page width. The first page says what the export is: the practice, who
asked, when, the masking profile, the tables and the filters. Every page carries the
confidentiality marking and "page N of M". Text is DejaVu Sans with a CJK fallback
(core.pdf): a name prints as itself.

Rows are rendered as they stream in and are not kept; fpdf2 holds the rendered pages
(compressed, a few kB each) until `close`, which writes the document to the stream.
"""
from __future__ import annotations

import dataclasses
import io
from datetime import datetime

from strongroom.core import pdf
from strongroom.core.db.types import utcnow

EXTENSION = "pdf"
PER_TABLE = False
TEXT = False
ABOUT = True            # the export job passes `about` (requester, masking, filters, practice)
FONT_SIZE = 7
_UUID = "00000000-0000-0000-0000-000000000000"
_MOMENT = "2000-00-00T00:00:00.000000+00:00"
_DAY = "2000-00-00"
_LONG_TEXT = {"notes", "medical_history", "address", "emergency_contact", "description", "file_name"}


def column(field: str) -> pdf.Column:
    """A field's column: identifiers and timestamps as wide as they need, prose wider."""
    heading = field.replace("_", " ")      # wraps between words like the cells do
    if field == "id" or field.endswith("_id"):
        return pdf.Column(heading, sample=_UUID)
    if field.endswith("_at"):
        return pdf.Column(heading, sample=_MOMENT)
    if field.endswith("_date") or field == "date_of_birth":
        return pdf.Column(heading, sample=_DAY)
    return pdf.Column(heading, weight=2.5 if field in _LONG_TEXT else 1.0)


def _describe_filters(filters: dict) -> str:
    parts = [f"{k.replace('_', ' ')} {filters[k]}" for k in ("since", "until", "practice_id", "client_id")
             if filters.get(k)]
    return "; ".join(parts) or "none (every live row)"


class Document:
    def __init__(self, stream: io.RawIOBase | io.BufferedIOBase, title: str = "Strongroom export",
                 about: dict | None = None) -> None:
        about = about or {}
        self._out = stream
        produced_at = about.get("created_at") or utcnow()
        if isinstance(produced_at, str):
            produced_at = datetime.fromisoformat(produced_at)
        settings = [("export", str(about.get("export_id", "-"))),
                    ("masking", str(about.get("masking_profile", "-"))),
                    ("encrypted", "yes" if about.get("encrypted") else "no"),
                    ("tables", ", ".join(about.get("tables", {})) or "-"),
                    ("filters", _describe_filters(about.get("filters") or {}))]
        if about.get("configuration"):
            settings.append(("configuration", str(about["configuration"])))
        header = pdf.Header(title=title, practice=str(about.get("practice") or "-"),
                            produced_by=str(about.get("requested_by") or "-"), produced_at=produced_at,
                            settings=tuple(settings))
        self._doc = pdf.Writer(header, landscape=True, font_size=FONT_SIZE)

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._table, self._fields, self._count = table, fields, 0
        self._doc.heading(f"Table {table}", level=2)
        self._as_table = None

    def _layout(self, rows: list[dict]) -> None:
        """Table or records, decided on the first batch: a column must hold the longest
        word it shows there, or the fields are too many for columns."""
        columns = []
        for f in self._fields:
            words = (w for row in rows if row[f] is not None for w in f"{row[f]}".split())
            columns.append(dataclasses.replace(column(f), longest_word=max(words, key=len, default="")))
        self._as_table = self._doc.fits_table(columns)
        if self._as_table:
            self._doc.start_table(columns)

    def write_rows(self, rows: list[dict]) -> None:
        if self._as_table is None:
            self._layout(rows)
        for row in rows:
            values = ["" if row[f] is None else f"{row[f]}" for f in self._fields]
            if self._as_table:
                self._doc.row(values)
            else:
                self._doc.record(zip(self._fields, values))
        self._count += len(rows)

    def end_table(self) -> None:
        if self._as_table is None:
            self._layout([])
        if self._as_table:
            self._doc.end_table()
        self._doc.paragraph(f"{self._count} row(s) in {self._table}", bold=True)
        self._doc.space()

    def close(self) -> None:
        self._out.write(self._doc.output())
