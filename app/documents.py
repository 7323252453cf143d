"""A4 documents as PDF (reportlab, pure Python): the release certificate, the trace report.

Bitstream Vera ships with reportlab and covers Latin scripts, ≤ and ≥; characters it cannot draw
are shown as '?' rather than as nothing. Free text of any length fits: a word wider than its
column is broken across lines (reportlab's splitLongWords), and a table row taller than a page
is split across pages (splitInRow), so a 4,000-character deviation is a long document, not an
error.

Identifiers (COI, DIN with its check character, vessel codes, batch numbers) never break across
lines (AUD-9): `ident()` makes a `Code`, its parts joined with no-break spaces, and a table cell
holding a `Code` never splits a word, its font shrinking until the longest identifier fits.
Corrected values are stated with what they replaced, by whom, when and why (`corrections_of`).
"""

import io
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

_FONT_DIR = os.path.join(os.path.dirname(reportlab.__file__), "fonts")
NO_BREAK = "\u00a0"
_BREAKS = re.compile(r"[ \t\n]+")  # where a line may break: not at a no-break space
_CELL_PADDING = 12  # points: reportlab's default left plus right padding of a table cell
_SMALLEST = 4.0  # points: an identifier shrinks no further to fit its column


class Code(str):
    """Text made of identifiers (COI, DIN, vessel codes, batch numbers): a document breaks its
    lines only between them, never inside one (AUD-9)."""

    __slots__ = ()


def ident(*parts: str) -> Code:
    """An identifier as one unbreakable word: `ident(din, check)` is the DIN and its check
    character kept on one line (AUD-9)."""
    return Code(NO_BREAK.join(part for part in parts if part))


def codes(values: Sequence[str], separator: str = ", ") -> Code:
    """Several identifiers in one cell: lines break between them only."""
    return Code(separator.join(values))


class Entered(Protocol):
    """A recorded value as a document shows it: a QC result, say."""

    id: int
    value: Any
    unit: str | None
    supersedes_id: int | None
    reason: str | None
    entered_by: str
    entered_at: datetime


@dataclass(frozen=True)
class Correction:
    """One correction of a value: the original, the new value, who, when and why (AUD-9)."""

    original: str
    corrected: str
    by: str
    at: datetime
    reason: str

    def sentence(self) -> str:
        return (
            f"CORRECTED from {self.original} to {self.corrected} by {self.by} on "
            f"{self.at:%Y-%m-%d %H:%M} UTC: {self.reason}"
        )


def value_of(entry: Entered) -> str:
    value = f"{entry.value:g}" if isinstance(entry.value, float) else str(entry.value)
    return f"{value} {entry.unit}" if entry.unit else value


def corrections_of(history: Sequence[Entered], current_id: int | None) -> list[Correction]:
    """Every correction that led to the value `current_id`, oldest first: each new value with
    the one it replaced, its author, time and reason."""
    by_id = {entry.id: entry for entry in history}
    found: list[Correction] = []
    entry = by_id.get(current_id) if current_id is not None else None
    while entry is not None and entry.supersedes_id is not None:
        original = by_id.get(entry.supersedes_id)
        if original is None:
            break
        found.append(
            Correction(
                original=value_of(original),
                corrected=value_of(entry),
                by=entry.entered_by,
                at=entry.entered_at,
                reason=entry.reason or "no reason recorded",
            )
        )
        entry = original
    return found[::-1]


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

    def table(
        self,
        rows: list[list[Any]],
        widths: list[float],
        *,
        header: bool = True,
    ) -> None:
        """A grid of wrapped cells; `widths` in mm; the first row repeats on every page. A
        `Code` cell is never split inside a word (AUD-9)."""
        cells = [
            [
                self._code(c, widths[i]) if isinstance(c, Code) else Paragraph(_text(c), self.small)
                for i, c in enumerate(row)
            ]
            for row in rows
        ]
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

    def _code(self, value: Any, width_mm: float) -> Paragraph:
        """A cell of identifiers: lines break only between them, and the font shrinks until the
        longest fits the column, so no identifier is ever cut in two."""
        text = _text(value)
        room = width_mm * mm - _CELL_PADDING
        words = [w for w in _BREAKS.split(str(value)) if w] or [""]
        size = self.small.fontSize
        while size > _SMALLEST and max(stringWidth(w, "Vera", size) for w in words) > room:
            size -= 0.25
        return Paragraph(text, _code_style(size))

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


@lru_cache(maxsize=64)
def _code_style(size: float) -> ParagraphStyle:
    # No split inside a word, and no hyphenation at a batch number's hyphens either.
    return ParagraphStyle(
        f"code-{size}",
        fontName="Vera",
        fontSize=size,
        leading=size * 1.27,
        splitLongWords=0,
        embeddedHyphenation=0,
        hyphenationLang="",
    )
