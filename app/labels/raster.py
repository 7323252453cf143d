"""Labels as PNG at a printer's resolution (Pillow): symbols snapped to whole pixels per module,
so they scan back exactly; text in the vendored DejaVu Sans Mono."""

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from app.labels.layout import Box, Label, LabelContent, Line, Symbol, Text, layout
from app.labels.symbols import matrix, runs

FONTS = Path(__file__).resolve().parent.parent / "static" / "fonts"
REGULAR = FONTS / "DejaVuSansMono.ttf"
BOLD = FONTS / "DejaVuSansMono-Bold.ttf"


@lru_cache(maxsize=256)
def _font(bold: bool, pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(BOLD if bold else REGULAR), max(pixels, 1))


def _symbol(draw: ImageDraw.ImageDraw, item: Symbol, px: float) -> None:
    modules = len(matrix(item.kind, item.payload))
    area = int(item.size * px)
    unit = max(area // modules, 1)
    left = round(item.x * px) + (area - unit * modules) // 2
    top = round(item.y * px) + (area - unit * modules) // 2
    for row, column, length in runs(item.kind, item.payload):
        x0, y0 = left + column * unit, top + row * unit
        draw.rectangle((x0, y0, x0 + length * unit - 1, y0 + unit - 1), fill=0)


def render(label: Label, dpi: int) -> bytes:
    px = dpi / 25.4  # pixels per millimetre
    # One bit per pixel, as a thermal label printer prints: crisp text, a quick PNG encode.
    image = Image.new("1", (round(label.width * px), round(label.height * px)), 1)
    draw = ImageDraw.Draw(image)
    for item in label.items:
        if isinstance(item, Text):
            font = _font(item.bold, round(item.size * px))
            draw.text((item.x * px, item.y * px), item.text, font=font, fill=0, anchor="ls")
        elif isinstance(item, Box):
            draw.rectangle(
                (item.x * px, item.y * px, (item.x + item.w) * px, (item.y + item.h) * px),
                outline=0,
                width=max(1, round(item.stroke * px)),
            )
        elif isinstance(item, Line):
            draw.line(
                (item.x1 * px, item.y1 * px, item.x2 * px, item.y2 * px),
                fill=0,
                width=max(1, round(item.stroke * px)),
            )
        else:
            _symbol(draw, item, px)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, dpi=(dpi, dpi))
    return buffer.getvalue()


@lru_cache(maxsize=4096)
def png(content: LabelContent, dpi: int = 300) -> bytes:
    """The label of `content` as PNG at `dpi` (cached: a label is immutable per content)."""
    return render(layout(content), dpi)
