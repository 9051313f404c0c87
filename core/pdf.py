"""The PDF writer every Strongroom document uses: fpdf2 with embedded TrueType fonts.

A compliance officer files what this writes, so it must read as a document: real fonts
with full Unicode (DejaVu Sans, and a CJK fallback for the names it does not cover),
tables whose cells wrap between words, a header on every page naming the practice and
the document, a first block saying who produced it, when and with which settings, and a
footer with the confidentiality marking and "page N of M".

Fonts come from the system (Debian: fonts-dejavu-core, fonts-droid-fallback; FONT_DIRS).
Without DejaVu Sans nothing is written (ConfigError naming the package). Without a CJK
fallback the document is still written, degraded visibly: a character no font has is
printed as its code point, "[U+6771]", and the settings block says so. It is replaced
before fpdf2 sees it, because fpdf2 logs missing glyphs by value, and a client's name
must never reach a log.

Memory: fpdf2 keeps the rendered pages (compressed content, a few kB each) until
`output`; rows are rendered as they arrive and not kept, so a large table costs its
pages, not its rows.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from strongroom.core.errors import ConfigError

FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/droid"),
    Path("/usr/share/fonts/truetype/wqy"),
)
MAIN_FONT = ("DejaVu Sans", "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "fonts-dejavu-core")
# name, file, Debian package: the first one found covers CJK.
FALLBACK_FONTS = (("Droid Sans Fallback", "DroidSansFallbackFull.ttf", "fonts-droid-fallback"),)
DEFAULT_MARKING = "CONFIDENTIAL - contains protected health information; handle under the practice's HIPAA policies"
_MAIN, _FALLBACK = "main", "fallback"
LINE = 1.25            # line height as a multiple of the font size
PAD = 1.0              # mm of padding inside a table cell
MIN_COLUMN = 14.0       # mm: a column narrower than this cuts too many words
_PAGES = "{pages}"      # fpdf2 replaces it with the page count; as wide as 7 digits


@dataclass(frozen=True)
class Header:
    """What the document says about itself: on every page (practice, title, marking)
    and once at the top (who produced it, when, with which settings)."""
    title: str
    practice: str
    produced_by: str
    produced_at: datetime
    settings: tuple[tuple[str, str], ...] = ()
    marking: str = DEFAULT_MARKING


@dataclass(frozen=True)
class Column:
    """A table column: its heading, its share of the free width, and optionally a sample
    value whose width it always gets (a UUID or a timestamp stays on one line)."""
    name: str
    weight: float = 1.0
    sample: str | None = None
    longest_word: str = ""       # the column is never narrower than this word


def _find(name: str) -> Path | None:
    for directory in FONT_DIRS:
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


@dataclass
class _Fonts:
    names: list[str] = field(default_factory=list)
    covered: set[int] = field(default_factory=set)
    missing_cjk: bool = False


def _load_fonts(pdf) -> _Fonts:
    family, regular, bold, package = MAIN_FONT
    paths = [_find(regular), _find(bold)]
    if None in paths:
        raise ConfigError(f"PDF: the {family} font is not installed (looked for {regular} and {bold} in "
                          f"{', '.join(str(d) for d in FONT_DIRS)}); install the Debian package {package}")
    fonts = _Fonts(names=[family])
    pdf.add_font(_MAIN, "", str(paths[0]))
    pdf.add_font(_MAIN, "B", str(paths[1]))
    fonts.covered |= set(pdf.fonts[_MAIN].cmap) & set(pdf.fonts[_MAIN + "B"].cmap)
    for name, filename, _package in FALLBACK_FONTS:
        path = _find(filename)
        if path is not None:
            pdf.add_font(_FALLBACK, "", str(path))
            pdf.set_fallback_fonts([_FALLBACK], exact_match=False)
            fonts.covered |= set(pdf.fonts[_FALLBACK].cmap)
            fonts.names.append(name)
            break
    else:
        fonts.missing_cjk = True
    return fonts


def _new_pdf(writer: "Writer", landscape: bool):
    from fpdf import FPDF

    class _Document(FPDF):
        def header(self) -> None:
            writer._page_header()

        def footer(self) -> None:
            writer._page_footer()

    return _Document(orientation="L" if landscape else "P", unit="mm", format="A4")


class Writer:
    """One PDF document: paragraphs, headings, key-value blocks and tables, rendered as
    they are added; `output` returns the bytes (`keywords` go into the metadata)."""

    def __init__(self, header: Header, *, landscape: bool = False, font_size: float = 8.0,
                 keywords: str | None = None) -> None:
        self.header = header
        self.size = font_size
        self._pdf = pdf = _new_pdf(self, landscape)
        self._fonts = _load_fonts(pdf)
        self._table_head: tuple[list[Column], list[float]] | None = None
        self._widths_cache: dict[str, float] = {}
        pdf.set_margins(12, 12, 12)
        pdf.set_auto_page_break(True, margin=14)
        pdf.set_title(self.clean(header.title))
        pdf.set_author(self.clean(header.produced_by))
        pdf.set_creator("Strongroom")
        pdf.set_subject(self.clean(f"{header.title} - {header.practice}"))
        pdf.set_creation_date(header.produced_at)
        if keywords is not None:
            pdf.set_keywords(keywords)
        pdf.alias_nb_pages(_PAGES)
        pdf.add_page()
        self._about()

    # -- text ------------------------------------------------------------------------
    def clean(self, text: object) -> str:
        """`text` as printable: controls become spaces, a character no font has becomes
        its code point, visibly."""
        out = []
        for ch in "" if text is None else str(text):
            code = ord(ch)
            if ch == "\n":
                out.append(ch)
            elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
                out.append(" ")
            elif code in self._fonts.covered:
                out.append(ch)
            else:
                out.append(f"[U+{code:04X}]")
        return "".join(out)

    def _font(self, *, bold: bool = False, size: float | None = None) -> None:
        self._pdf.set_font(_MAIN, "B" if bold else "", size or self.size)

    def _line_height(self, size: float | None = None) -> float:
        return (size or self.size) * LINE * 0.3528   # pt -> mm

    # -- page furniture ----------------------------------------------------------------
    def _page_header(self) -> None:
        pdf, h = self._pdf, self.header
        self._font(bold=True, size=9)
        pdf.cell(pdf.epw * 0.6, 5, self.clean(h.practice), new_x="RIGHT", new_y="TOP")
        self._font(size=9)
        pdf.cell(pdf.epw * 0.4, 5, self.clean(h.title), align="R", new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(120)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
        pdf.ln(2)
        if self._table_head is not None:         # a table running over a page break
            self._draw_head(*self._table_head)

    def _page_footer(self) -> None:
        pdf = self._pdf
        pdf.set_y(-11)
        self._font(size=7)
        pdf.cell(pdf.epw * 0.8, 4, self.clean(self.header.marking), new_x="RIGHT", new_y="TOP")
        pdf.cell(pdf.epw * 0.2, 4, f"page {pdf.page_no()} of {_PAGES}", align="R")

    def _about(self) -> None:
        h = self.header
        self.heading(h.title)
        fonts = ", ".join(self._fonts.names)
        if self._fonts.missing_cjk:
            fonts += ("; no CJK font installed (fonts-droid-fallback): characters no font has are printed "
                      "as their code point, [U+XXXX]")
        self.key_values([("practice", h.practice), ("produced by", h.produced_by),
                         ("produced at", f"{h.produced_at:%Y-%m-%d %H:%M:%S} UTC"), *h.settings,
                         ("fonts", fonts)])
        self.space()

    # -- content -------------------------------------------------------------------------
    def heading(self, text: str, *, level: int = 1) -> None:
        size = {1: 13, 2: 11}.get(level, 9)
        self._font(bold=True, size=size)
        self._pdf.multi_cell(0, self._line_height(size), self.clean(text), align="L",
                             new_x="LMARGIN", new_y="NEXT")
        self._pdf.ln(1)

    def paragraph(self, text: str, *, bold: bool = False) -> None:
        self._font(bold=bold)
        self._pdf.multi_cell(0, self._line_height(), self.clean(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def space(self, mm: float = 3) -> None:
        self._pdf.ln(mm)

    def key_values(self, pairs: Iterable[tuple[str, object]]) -> None:
        """`key: value` lines, wrapped with a hanging indent."""
        pdf = self._pdf
        for key, value in pairs:
            self._font(bold=True)
            label = self.clean(key) + ": "
            width = min(pdf.get_string_width(label) + 1, pdf.epw * 0.35)
            y = pdf.get_y()
            if y + self._line_height() > pdf.page_break_trigger:
                pdf.add_page()
            pdf.cell(width, self._line_height(), label, new_x="RIGHT", new_y="TOP")
            self._font()
            pdf.multi_cell(pdf.epw - width, self._line_height(), self.clean(value), align="L",
                           new_x="LMARGIN", new_y="NEXT")

    def table(self, columns: Sequence[Column], rows: Iterable[Sequence[object]]) -> int:
        """A table with a heading row repeated on every page it spans; cells wrap between
        words. Rows are rendered as they come (an iterator is never held whole)."""
        self.start_table(columns)
        count = 0
        try:
            for row in rows:
                self.row(row)
                count += 1
        finally:
            self.end_table()
        return count

    def start_table(self, columns: Sequence[Column]) -> None:
        """Begin a table fed row by row (`row`), closed by `end_table`."""
        widths = self._widths(columns)
        self._draw_head(columns, widths)
        self._table_head = (list(columns), widths)

    def row(self, values: Sequence[object]) -> None:
        assert self._table_head is not None, "row() outside a table"
        self._draw_row([self.clean(v) for v in values], self._table_head[1])

    def end_table(self) -> None:
        self._table_head = None
        self._pdf.ln(2)

    def fits_table(self, columns: Sequence[Column], share: float = 0.6) -> bool:
        """Whether `columns` make a readable table: the fixed-width ones (identifiers,
        timestamps) leave the others room. Too many fields read better as `record`s."""
        pdf = self._pdf
        widths = self._widths([Column(c.name, c.weight, c.sample, c.longest_word) for c in columns])
        self._font()
        fixed = sum(pdf.get_string_width(c.sample) + 2 * PAD for c in columns if c.sample is not None)
        return fixed <= pdf.epw * share and sum(widths) <= pdf.epw + 0.01 and self._unscaled

    def record(self, pairs: Iterable[tuple[str, object]]) -> None:
        """One record as a flowing paragraph of `field: value` pairs, wrapped between
        words, with a rule beneath: compact for records with many fields. Wrapped here
        with cached glyph widths: fpdf2's own line breaking costs ~10 us a character,
        which a 3,000-row export would spend for half a minute."""
        pdf, lh = self._pdf, self._line_height()
        self._font()
        text = "    ".join(f"{self.clean(k)}: {self.clean(v).replace(chr(10), ' ') or '-'}" for k, v in pairs)
        lines = self._wrap(text, pdf.epw)
        if pdf.get_y() + min(len(lines), 2) * lh > pdf.page_break_trigger:
            pdf.add_page()
        for line in lines:
            pdf.cell(0, lh, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(190)
        pdf.line(pdf.l_margin, pdf.get_y() + 0.5, pdf.l_margin + pdf.epw, pdf.get_y() + 0.5)
        pdf.ln(1.2)

    def _width(self, text: str) -> float:
        cache = self._widths_cache
        total = 0.0
        for ch in text:
            w = cache.get(ch)
            if w is None:
                w = cache[ch] = self._pdf.get_string_width(ch)
            total += w
        return total

    def _wrap(self, text: str, width: float) -> list[str]:
        """Greedy lines at spaces; a single word wider than the line (never an
        identifier at these widths) is the only thing ever cut."""
        space = self._width(" ")
        lines, current, used = [], [], 0.0
        for word in text.split(" "):
            w = self._width(word)
            if current and used + space + w > width:
                lines.append(" ".join(current))
                current, used = [], 0.0
            while w > width and not current:
                cut = len(word)
                while cut > 1 and self._width(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
                w = self._width(word)
            used += (space if current else 0.0) + w
            current.append(word)
        if current:
            lines.append(" ".join(current))
        return lines or [""]

    def _widths(self, columns: Sequence[Column]) -> list[float]:
        pdf = self._pdf
        self._font(bold=True)
        floor = [max(pdf.get_string_width(w) for w in (self.clean(c.name).split() or [""])) + 2 * PAD + 0.5
                 for c in columns]
        self._font()
        floor = [max(f, MIN_COLUMN, pdf.get_string_width(self.clean(c.longest_word)) + 2 * PAD + 0.5)
                 for f, c in zip(floor, columns)]
        fixed = [None if c.sample is None else max(floor[i], pdf.get_string_width(c.sample) + 2 * PAD + 0.5)
                 for i, c in enumerate(columns)]
        free = pdf.epw - sum(f for f in fixed if f is not None)
        weights = sum(c.weight for c, f in zip(columns, fixed) if f is None) or 1.0
        widths = [f if f is not None else max(floor[i], free * c.weight / weights)
                  for i, (c, f) in enumerate(zip(columns, fixed))]
        scale = pdf.epw / sum(widths)
        self._unscaled = scale >= 1
        return [w * scale for w in widths] if scale < 1 else widths

    def _cell_lines(self, text: str, width: float) -> int:
        if not text:
            return 1
        return len(self._pdf.multi_cell(width, self._line_height(), text, dry_run=True, output="LINES",
                                        align="L", padding=(0, PAD)))

    def _draw_head(self, columns: Sequence[Column], widths: list[float]) -> None:
        self._font(bold=True)
        names = [self.clean(c.name) for c in columns]
        self._cells(names, widths, fill=True)
        self._font()

    def _draw_row(self, cells: list[str], widths: list[float]) -> None:
        self._font()
        self._cells(cells, widths, fill=False)

    def _cells(self, cells: list[str], widths: list[float], *, fill: bool) -> None:
        pdf = self._pdf
        lh = self._line_height()
        height = max(self._cell_lines(t, w) for t, w in zip(cells, widths)) * lh + 2 * PAD
        room = pdf.h - pdf.b_margin - pdf.t_margin - 12
        if height > room:                       # a row longer than a page: print it as a block
            for cell, width in zip(cells, widths):
                pdf.multi_cell(0, lh, cell, align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
            return
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()                      # the page header redraws the heading row
        x, y = pdf.l_margin, pdf.get_y()
        if fill:
            pdf.set_fill_color(230)
            pdf.rect(x, y, sum(widths), height, style="F")
        pdf.set_auto_page_break(False)
        for cell, width in zip(cells, widths):
            pdf.set_xy(x, y + PAD)
            pdf.multi_cell(width, lh, cell, align="L", padding=(0, PAD), new_x="RIGHT", new_y="TOP")
            x += width
        pdf.set_auto_page_break(True, margin=14)
        pdf.set_draw_color(190)
        pdf.line(pdf.l_margin, y + height, pdf.l_margin + sum(widths), y + height)
        pdf.set_xy(pdf.l_margin, y + height)

    def output(self) -> bytes:
        return bytes(self._pdf.output())
