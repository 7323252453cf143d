"""A4 documents as PDF (reportlab, pure Python): the release certificate, the trace report.

Bitstream Vera ships with reportlab and covers Latin scripts, ≤ and ≥; characters it cannot draw
are shown as '?' rather than as nothing. Free text of any length fits: a word wider than its
column is broken across lines (reportlab's splitLongWords), and a table row taller than a page
is split across pages (splitInRow), so a 4,000-character deviation is a long document, not an
error.
"""

import io
import os
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

_FONT_DIR = os.path.join(os.path.dirname(reportlab.__file__), "fonts")


@lru_cache(maxsize=1)
def _drawable() -> frozenset[int]:
    regular = TTFont("Vera", os.path.join(_FONT_DIR, "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont("VeraBd", os.path.join(_FONT_DIR, "VeraBd.ttf")))
    return frozenset(regular.face.charToGlyph)


def _text(value: Any) -> str:
    drawable = _drawable()
    text = "".join(
        ch if ord(ch) in drawable or ch == "\n" else (" " if ch.isspace() else "?")
        for ch in str(value)
    )
    return escape(text)


class Document:
    """Paragraphs, headings and tables flowing over A4 pages."""

    def __init__(self) -> None:
        _drawable()
        # splitLongWords (reportlab's default, stated here): a word wider than its line breaks.
        self.body = ParagraphStyle(
            "body", fontName="Vera", fontSize=8.5, leading=11, splitLongWords=1
        )
        self.small = ParagraphStyle("small", parent=self.body, fontSize=7.5, leading=9.5)
        self.heading_style = ParagraphStyle(
            "heading", parent=self.body, fontName="VeraBd", fontSize=11, leading=15
        )
        self.title_style = ParagraphStyle(
            "title", parent=self.body, fontName="VeraBd", fontSize=16, leading=20
        )
        self.alarm_style = ParagraphStyle(
            "alarm", parent=self.heading_style, textColor=colors.HexColor("#a4161a")
        )
        self.story: list[Any] = []

    def title(self, text: str) -> None:
        self.story += [Paragraph(_text(text), self.title_style), Spacer(1, 3 * mm)]

    def alarm(self, text: str) -> None:
        self.story += [Paragraph(_text(text), self.alarm_style), Spacer(1, 2 * mm)]

    def heading(self, text: str) -> None:
        self.story += [Spacer(1, 4 * mm), Paragraph(_text(text), self.heading_style)]

    def paragraph(self, text: str, *, small: bool = False) -> None:
        self.story.append(Paragraph(_text(text), self.small if small else self.body))

    def space(self, millimetres: float = 2) -> None:
        self.story.append(Spacer(1, millimetres * mm))

    def table(self, rows: list[list[Any]], widths: list[float], *, header: bool = True) -> None:
        """A grid of wrapped cells; `widths` in mm; the first row repeats on every page."""
        cells = [[Paragraph(_text(c), self.small) for c in row] for row in rows]
        grid = Table(
            cells,
            colWidths=[w * mm for w in widths],
            repeatRows=1 if header else 0,
            splitInRow=1,  # a row taller than a page continues on the next
        )
        style = [
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#9aa5b1")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8edf3")))
        grid.setStyle(TableStyle(style))
        self.story.append(grid)

    def render(self, title: str) -> bytes:
        buffer = io.BytesIO()
        margin = 15 * mm
        SimpleDocTemplate(
            buffer,
            pagesize=A4,
            leftMargin=margin,
            rightMargin=margin,
            topMargin=margin,
            bottomMargin=margin,
            title=title,
            author="Homeward",
        ).build(self.story)
        return buffer.getvalue()
