"""PDF: a printable report, one file for every table exported, written page by page.

A minimal PDF 1.4 writer of our own rather than a layout library: the libraries at hand
build the whole document in memory before writing it, and an export's memory must not
grow with the table. Each page is written as soon as it is full; only the byte offsets
of the objects (a few integers a page) are kept for the cross-reference table at the
end. Text is Courier (one of the 14 standard fonts every reader has), A4 landscape;
each record is a block of `field: value` lines, long values wrapped, never cut.
Characters outside Windows-1252 (the standard fonts' encoding) print as "?".
"""
from __future__ import annotations

import io

from strongroom.core.db.types import utcnow

EXTENSION = "pdf"
PER_TABLE = False
TEXT = False   # bytes: the writer counts offsets
WIDTH, HEIGHT, MARGIN = 842, 595, 36
FONT_SIZE, LEADING = 8, 10
LINES_PER_PAGE = (HEIGHT - 2 * MARGIN) // LEADING
CHARS_PER_LINE = int((WIDTH - 2 * MARGIN) / (FONT_SIZE * 0.6))   # Courier: 0.6 em a glyph
_CATALOG, _PAGES, _FONT, _BOLD, _INFO = 1, 2, 3, 4, 5


def pdf_string(text: str) -> bytes:
    """A PDF literal string: Windows-1252 bytes, ( ) and \\ escaped, controls as spaces."""
    raw = "".join(" " if ord(ch) < 32 else ch for ch in text).encode("cp1252", errors="replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def wrap(text: str, width: int = CHARS_PER_LINE, indent: str = "    ") -> list[str]:
    out = []
    for part in text.splitlines() or [""]:
        first = True
        while first or part:
            room = width if first else width - len(indent)
            out.append(("" if first else indent) + part[:room])
            part = part[room:]
            first = False
    return out


class Document:
    def __init__(self, stream: io.RawIOBase | io.BufferedIOBase, title: str = "Strongroom export") -> None:
        self._out = stream
        self._pos = 0
        self._offsets: dict[int, int] = {}
        self._next = _INFO + 1
        self._pages: list[int] = []
        self._lines: list[tuple[str, bool]] = []
        self._write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self._object(_FONT, b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>")
        self._object(_BOLD, b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier-Bold /Encoding /WinAnsiEncoding >>")
        self._object(_INFO, b"<< /Title " + pdf_string(title) + b" /Producer (Strongroom) /CreationDate "
                     + pdf_string(utcnow().strftime("D:%Y%m%d%H%M%SZ")) + b" >>")
        self._line(title, bold=True)
        self._line(f"Written {utcnow().isoformat(timespec='seconds')}")

    # -- the report ------------------------------------------------------------------
    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._table, self._fields, self._count = table, fields, 0
        self._line("")
        self._line(f"Table {table}", bold=True)

    def write_rows(self, rows: list[dict]) -> None:
        for row in rows:
            self._count += 1
            self._line(f"{self._table} #{self._count}", bold=True)
            for field in self._fields:
                value = row[field]
                for line in wrap(f"  {field}: {'' if value is None else value}"):
                    self._line(line)

    def end_table(self) -> None:
        self._line(f"{self._count} row(s) in {self._table}", bold=True)

    def close(self) -> None:
        if self._lines or not self._pages:
            self._flush_page()
        kids = b" ".join(b"%d 0 R" % n for n in self._pages)
        self._object(_PAGES, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(self._pages))
        self._object(_CATALOG, b"<< /Type /Catalog /Pages 2 0 R >>")
        xref, size = self._pos, self._next
        entries = [b"0000000000 65535 f \n"] + [b"%010d 00000 n \n" % self._offsets[n] for n in range(1, size)]
        self._write(b"xref\n0 %d\n" % size + b"".join(entries))
        self._write(b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref))

    # -- pages and objects -----------------------------------------------------------
    def _line(self, text: str, *, bold: bool = False) -> None:
        self._lines.append((text, bold))
        if len(self._lines) >= LINES_PER_PAGE:
            self._flush_page()

    def _flush_page(self) -> None:
        ops = [b"BT", b"%d TL" % LEADING, b"%d %d Td" % (MARGIN, HEIGHT - MARGIN - FONT_SIZE)]
        font = None
        for n, (text, bold) in enumerate(self._lines):
            if bold != font:
                ops.append(b"/F%d %d Tf" % (2 if bold else 1, FONT_SIZE))
                font = bold
            ops.append((b"" if n == 0 else b"T* ") + pdf_string(text) + b" Tj")
        ops += [b"ET", b"BT /F1 %d Tf %d %d Td " % (FONT_SIZE, WIDTH - MARGIN - 60, MARGIN // 2)
                + pdf_string(f"page {len(self._pages) + 1}") + b" Tj ET"]
        content = b"\n".join(ops)
        stream_id, page_id = self._allocate(), self._allocate()
        self._object(stream_id, b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        self._object(page_id, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font "
                     b"<< /F1 3 0 R /F2 4 0 R >> >> /Contents %d 0 R >>" % (WIDTH, HEIGHT, stream_id))
        self._pages.append(page_id)
        self._lines = []

    def _allocate(self) -> int:
        self._next += 1
        return self._next - 1

    def _object(self, number: int, body: bytes) -> None:
        self._offsets[number] = self._pos
        self._write(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._pos += len(data)
