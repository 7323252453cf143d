"""Label sheets as PDF (reportlab): each label at its real size on a roll (one label a page), or
laid out on A4 sheets for office printers. Symbols are vector rectangles, text DejaVu Sans Mono."""

import io
from collections.abc import Iterable
from functools import lru_cache

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from app.labels.layout import Box, Label, Line, Symbol, Text
from app.labels.raster import BOLD, REGULAR
from app.labels.symbols import matrix, runs

SHEET_MARGIN = 5.0  # mm around the grid on an A4 sheet


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str]:
    pdfmetrics.registerFont(TTFont("LabelMono", str(REGULAR)))
    pdfmetrics.registerFont(TTFont("LabelMono-Bold", str(BOLD)))
    return "LabelMono", "LabelMono-Bold"


def _draw(canvas: Canvas, label: Label, left: float, top: float) -> None:
    """Draw `label` with its top-left corner at (left, top) mm from the page's top-left."""
    regular, bold = _fonts()
    page_height = canvas._pagesize[1] / mm

    def x(value: float) -> float:
        return (left + value) * mm

    def y(value: float) -> float:
        return (page_height - top - value) * mm

    for item in label.items:
        if isinstance(item, Text):
            canvas.setFont(bold if item.bold else regular, item.size * mm)
            canvas.drawString(x(item.x), y(item.y), item.text)
        elif isinstance(item, Box):
            canvas.setLineWidth(item.stroke * mm)
            canvas.rect(x(item.x), y(item.y + item.h), item.w * mm, item.h * mm)
        elif isinstance(item, Line):
            canvas.setLineWidth(item.stroke * mm)
            canvas.setLineCap(1)
            canvas.line(x(item.x1), y(item.y1), x(item.x2), y(item.y2))
        else:
            _symbol(canvas, item, x, y)


def _symbol(canvas: Canvas, item: Symbol, x, y) -> None:  # type: ignore[no-untyped-def]
    unit = item.size / len(matrix(item.kind, item.payload))
    path = canvas.beginPath()
    for row, column, length in runs(item.kind, item.payload):
        path.rect(
            x(item.x + column * unit),
            y(item.y + (row + 1) * unit),
            length * unit * mm,
            unit * mm,
        )
    canvas.drawPath(path, stroke=0, fill=1)


def roll(labels: Iterable[Label]) -> bytes:
    """One label a page, each page the label's own size (a label printer's roll)."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pageCompression=1)
    canvas.setTitle("Homeward labels")
    for label in labels:
        canvas.setPageSize((label.width * mm, label.height * mm))
        _draw(canvas, label, 0.0, 0.0)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def sheets(labels: Iterable[Label]) -> bytes:
    """Labels in a grid on A4 pages (50 x 25 mm: 4 x 11 a page; 100 x 50 mm: 2 x 5), each size
    in reading order; a new page when the grid is full or the size changes."""
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1)
    canvas.setTitle("Homeward labels")
    page_w, page_h = A4[0] / mm, A4[1] / mm
    slot, size = 0, None
    for label in labels:
        columns = int((page_w - 2 * SHEET_MARGIN) // label.width)
        rows = int((page_h - 2 * SHEET_MARGIN) // label.height)
        if size is not None and (slot >= columns * rows or size != (label.width, label.height)):
            canvas.showPage()
            slot = 0
        size = (label.width, label.height)
        row, column = divmod(slot, columns)
        _draw(
            canvas,
            label,
            SHEET_MARGIN + column * label.width,
            SHEET_MARGIN + row * label.height,
        )
        slot += 1
    if size is not None:
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
