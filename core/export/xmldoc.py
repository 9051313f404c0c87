"""XML: one file per table, `<export table="clients"><row><field>value</field>...</row>`.

A missing value is an empty element with `null="true"` (an empty string is an empty
element without it). Characters XML 1.0 cannot carry (most control characters) are
replaced with U+FFFD, so the file always parses.
"""
from __future__ import annotations

import io
import re
from xml.sax.saxutils import XMLGenerator

EXTENSION = "xml"
PER_TABLE = True
TEXT = True
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _text(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return _NOT_XML.sub("\ufffd", text)


class Document:
    def __init__(self, stream: io.TextIOBase) -> None:
        self._xml = XMLGenerator(stream, encoding="utf-8", short_empty_elements=True)
        self._xml.startDocument()

    def begin_table(self, table: str, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._xml.startElement("export", {"table": table})
        self._xml.ignorableWhitespace("\n")

    def write_rows(self, rows: list[dict]) -> None:
        xml = self._xml
        for row in rows:
            xml.startElement("row", {})
            for field in self._fields:
                value = row[field]
                xml.startElement(field, {"null": "true"} if value is None else {})
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
