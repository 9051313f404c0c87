"""XML: one file per table, `<export table="clients" xsi:type="clients-export"><row>
<field>value</field>...</row>`, valid against the published schema docs/export.xsd
(core.export.xsd writes it; the root's xsi:type selects the table's row type).

A missing value is an empty element with `xsi:nil="true"` (an empty string is an empty
element without it). Characters XML 1.0 cannot carry (most control characters) are
replaced with U+FFFD, so the file always parses. A carriage return is written as the
character reference `&#13;`: a parser normalises a literal CR or CRLF to LF, which would
change a note's text (measured: "a\r\nb" came back as "a\nb").
"""
from __future__ import annotations

import io
import re
from xml.sax.saxutils import XMLGenerator, escape

from strongroom.core.export.xsd import XSI, type_name

EXTENSION = "xml"
PER_TABLE = True
TEXT = True
_NIL = {"xsi:nil": "true"}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return _NOT_XML.sub("\ufffd", text)


class _Generator(XMLGenerator):
    """XMLGenerator that keeps carriage returns (as `&#13;`) through a parser's
    end-of-line normalisation."""

    def characters(self, content: str) -> None:
        if "\r" not in content:
            super().characters(content)
            return
        self._finish_pending_start_element()
        self._write(escape(content, {"\r": "&#13;"}))


class Document:
    def __init__(self, stream: io.TextIOBase) -> None:
        self._xml = _Generator(stream, encoding="utf-8", short_empty_elements=True)
        self._xml.startDocument()

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._xml.startElement("export", {"xmlns:xsi": XSI, "table": table, "xsi:type": type_name(table)})
        self._xml.ignorableWhitespace("\n")

    def write_rows(self, rows: list[dict]) -> None:
        xml = self._xml
        for row in rows:
            xml.startElement("row", {})
            for field in self._fields:
                value = row[field]
                xml.startElement(field, _NIL if value is None else {})
                if value is not None:
                    xml.characters(_text(value))
                xml.endElement(field)
            xml.endElement("row")
            xml.ignorableWhitespace("\n")

    def end_table(self) -> None:
        self._xml.endElement("export")
        self._xml.ignorableWhitespace("\n")

    def close(self) -> None:
        self._xml.endDocument()
