"""Labels as ZPL II for Zebra printers at 203 or 300 dpi: text in the printer's scalable font,
the QR (^BQ) and Data Matrix (^BX) drawn by the printer itself, so they stay sharp."""

from functools import lru_cache

from app.labels.layout import Box, Label, LabelContent, Line, Symbol, Text, layout
from app.labels.symbols import matrix

DPIS = (203, 300, 600)


def _field(text: str) -> str:
    """A ^FD value: ^ and ~ start commands, so they are written as hex escapes (^FH)."""
    return text.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E")


def render(label: Label, dpi: int) -> str:
    per_mm = dpi / 25.4

    def dots(value: float) -> int:
        return round(value * per_mm)

    out = [f"^XA^CI28^PW{dots(label.width)}^LL{dots(label.height)}^LH0,0"]
    for item in label.items:
        if isinstance(item, Text):
            height = dots(item.size)
            top = dots(item.y) - round(0.8 * height)  # ^FO places the top; the layout a baseline
            out.append(
                f"^FO{dots(item.x)},{max(top, 0)}^A0N,{height},{round(height * 0.75)}"
                f"^FH^FD{_field(item.text)}^FS"
            )
        elif isinstance(item, Box):
            out.append(
                f"^FO{dots(item.x)},{dots(item.y)}^GB{dots(item.w)},{dots(item.h)},"
                f"{max(1, dots(item.stroke))}^FS"
            )
        elif isinstance(item, Line):
            continue  # zero slashes belong to the layout's font; the printer font has its own
        else:
            out.append(_symbol(item, dots))
    out.append("^XZ")
    return "\n".join(out) + "\n"


def _symbol(item: Symbol, dots) -> str:  # type: ignore[no-untyped-def]
    modules = len(matrix(item.kind, item.payload))
    unit = max(1, dots(item.size) // modules)
    origin = f"^FO{dots(item.x)},{dots(item.y)}"
    if item.kind == "qr":
        # Model 2, magnification = dots per module; "MA," = error correction M, automatic mode.
        return f"{origin}^BQN,2,{min(unit, 10)}^FH^FDMA,{_field(item.payload)}^FS"
    return f"{origin}^BXN,{unit},200^FH^FD{_field(item.payload)}^FS"


@lru_cache(maxsize=4096)
def zpl(content: LabelContent, dpi: int = 203) -> str:
    """The label of `content` as ZPL II at `dpi` (cached: a label is immutable per content)."""
    return render(layout(content), dpi)
