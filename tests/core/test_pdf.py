"""The shared PDF writer (fpdf2, embedded TrueType fonts): Unicode prints as itself,
tables wrap at word boundaries, every page carries the header, "page N of M" and the
confidentiality marking, and a missing font is an error or a visible, documented
degradation, never "??" and never a character of the document in a log."""
from __future__ import annotations

import io
import logging
from datetime import datetime, timezone

import pytest
from pypdf import PdfReader

from strongroom.core import pdf
from strongroom.core.errors import ConfigError

HEADER = pdf.Header(title="Test document", practice="Zéllér 東京 Practice", produced_by="user:auditor",
                    produced_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
                    settings=(("format", "pdf"), ("period", "2025-10-01 to 2025-12-31")))
SENTENCE = ("the fortnightly review of unaccompanied appointments continues as planned "
            "notwithstanding extraordinary circumstances")


def _pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data), strict=True).pages]


def test_unicode_names_print_as_themselves():
    doc = pdf.Writer(HEADER)
    doc.paragraph("Client Zéllér 東京 attended.")
    doc.table([pdf.Column("name", 1), pdf.Column("note", 2)], [["Zéllér 東京", "Ünïcödé ñ — ok"]])
    text = "\n".join(_pages(doc.output()))
    assert "Client Zéllér 東京 attended." in text
    assert "Zéllér 東京" in text and "Ünïcödé ñ — ok" in text
    assert "??" not in text


def test_every_page_names_the_practice_producer_settings_and_says_page_n_of_m():
    doc = pdf.Writer(HEADER)
    doc.table([pdf.Column("n", 1), pdf.Column("text", 4)], ([str(i), SENTENCE] for i in range(300)))
    pages = _pages(doc.output())
    assert len(pages) > 2
    for number, text in enumerate(pages, start=1):
        assert f"page {number} of {len(pages)}" in text
        assert "CONFIDENTIAL" in text
        assert "Zéllér 東京 Practice" in text
    assert "user:auditor" in pages[0] and "2026-01-02 03:04:05 UTC" in pages[0]
    assert "period: 2025-10-01 to 2025-12-31" in pages[0]


def test_table_cells_wrap_at_word_boundaries_and_the_header_row_repeats():
    doc = pdf.Writer(HEADER)
    doc.table([pdf.Column("n", 1), pdf.Column("text", 2), pdf.Column("more", 6)],
              ([str(i), SENTENCE, "x"] for i in range(120)))
    pages = _pages(doc.output())
    words = {w for text in pages for w in text.split()}
    # the narrow column forced wrapping, and no word was cut to do it
    assert set(SENTENCE.split()) <= words
    whole = set(SENTENCE.split())
    cut = {t for t in words for w in whole if t not in whole and len(t) >= 3 and t != w
           and (w.startswith(t) or w.endswith(t))}
    assert not cut
    assert all("more" in text.split() for text in pages)      # the column heads on every page


def test_a_missing_main_font_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(pdf, "FONT_DIRS", (tmp_path,))
    with pytest.raises(ConfigError) as caught:
        pdf.Writer(HEADER)
    assert "DejaVu Sans" in str(caught.value) and "fonts-dejavu-core" in str(caught.value)


def test_without_a_cjk_font_characters_show_as_code_points_and_never_reach_the_log(monkeypatch, caplog):
    monkeypatch.setattr(pdf, "FONT_DIRS", tuple(d for d in pdf.FONT_DIRS if "dejavu" in str(d)))
    caplog.set_level(logging.DEBUG)
    doc = pdf.Writer(HEADER)
    doc.paragraph("Client Zéllér 東京")
    text = "\n".join(_pages(doc.output()))
    assert "Zéllér [U+6771][U+4EAC]" in text
    assert "no CJK font" in text                       # the document says it is degraded
    assert not any("東" in r.getMessage() or "京" in r.getMessage() for r in caplog.records)


def test_with_the_cjk_font_the_document_names_its_fonts():
    doc = pdf.Writer(HEADER)
    text = _pages(doc.output())[0]
    assert "DejaVu Sans" in text and "Droid Sans Fallback" in text
