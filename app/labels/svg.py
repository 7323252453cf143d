"""Labels as SVG: real size in millimetres, text in DejaVu Sans Mono, the QR as qrcode's path."""

from functools import lru_cache
from xml.sax.saxutils import escape

from app.labels.layout import Box, Label, LabelContent, Line, Symbol, Text, layout
from app.labels.symbols import matrix, qr_svg_path, runs

FONT = "'DejaVu Sans Mono', 'Menlo', 'Consolas', monospace"


def _symbol(item: Symbol) -> str:
    if item.kind == "qr":
        d, modules = qr_svg_path(item.payload)
    else:
        d = "".join(f"M{c},{r}h{n}v1h-{n}z" for r, c, n in runs(item.kind, item.payload))
        modules = len(matrix(item.kind, item.payload))
    scale = item.size / modules
    return (
        f'<g transform="translate({item.x:g},{item.y:g}) scale({scale:.6g})">'
        f'<path d="{d}" fill="#000"/></g>'
    )


def _item(item: object) -> str:
    if isinstance(item, Text):
        weight = ' font-weight="bold"' if item.bold else ""
        return (
            f'<text x="{item.x:.3f}" y="{item.y:.3f}" font-size="{item.size:.3f}"'
            f'{weight} xml:space="preserve">{escape(item.text)}</text>'
        )
    if isinstance(item, Box):
        return (
            f'<rect x="{item.x:.3f}" y="{item.y:.3f}" width="{item.w:.3f}" height="{item.h:.3f}" '
            f'fill="none" stroke="#000" stroke-width="{item.stroke:g}"/>'
        )
    if isinstance(item, Line):
        return (
            f'<line x1="{item.x1:.3f}" y1="{item.y1:.3f}" x2="{item.x2:.3f}" y2="{item.y2:.3f}" '
            f'stroke="#000" stroke-width="{item.stroke:.3f}" stroke-linecap="round"/>'
        )
    assert isinstance(item, Symbol)
    return _symbol(item)


def render(label: Label) -> str:
    body = "".join(_item(item) for item in label.items)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label.width:g}mm" '
        f'height="{label.height:g}mm" viewBox="0 0 {label.width:g} {label.height:g}">'
        f'<rect width="100%" height="100%" fill="#fff"/>'
        f'<g font-family="{FONT}" fill="#000">{body}</g></svg>'
    )


@lru_cache(maxsize=4096)
def svg(content: LabelContent) -> str:
    """The label of `content` as SVG (cached: a label is immutable per content)."""
    return render(layout(content))
